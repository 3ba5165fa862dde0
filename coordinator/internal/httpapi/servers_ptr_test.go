package httpapi

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// ptrEvents are the data of acc's server.ptr.changed events in the outbox.
func (s *srvAPI) ptrEvents(acc string) []string {
	s.t.Helper()
	var out []string
	_ = s.node.FSM.Read(func(r store.ReadTx) error {
		r.ScanOutbox(nil, math.MaxInt, func(e store.Event, err error) {
			if err != nil {
				s.t.Fatal(err)
			}
			if e.Type == "server.ptr.changed" && e.AccountID == acc {
				out = append(out, string(e.Data))
			}
		})
		return nil
	})
	return out
}

func ptrEvent(id, ptr string) string {
	p := "null"
	if ptr != "" {
		p = `"` + ptr + `"`
	}
	return `{"ip":"203.0.113.7","ptr":` + p + `,"serverId":"` + id + `"}`
}

func TestServerPTR(t *testing.T) {
	s, acc, key, id := newServerOwner(t)
	base := "/v1/servers/" + id
	ptr := base + "/ips/203.0.113.7/ptr"
	want := func(r reply, status int, body string) {
		t.Helper()
		if r.status != status || string(bytes.TrimSpace(r.body)) != body {
			t.Fatalf("%d %s, want %d %s", r.status, r.body, status, body)
		}
	}
	const view = `,"primary":true,"gateway":null,"netmask":"255.255.255.0","prefix":24,"zoneHosted":false,"ptrSync":"not_hosted"`
	ips := func(body string) {
		t.Helper()
		want(s.call(key, "GET", base+"/ips", ""), 200, `{"data":[`+body+`]}`)
	}
	events := func(want ...string) {
		t.Helper()
		if got := s.ptrEvents(acc); !slices.Equal(got, want) {
			t.Fatalf("events:\n%q\nwant\n%q", got, want)
		}
	}
	// The address view adds primary, gateway, netmask/prefix, zoneHosted and
	// ptrSync (issue 12's customer view) after the fields this test was
	// written for.
	set := `{"ip":"203.0.113.7","version":4,"ptr":"mail.example.com"` + view + `}`
	unset := `{"ip":"203.0.113.7","version":4,"ptr":null` + view + `}`

	ips(unset)
	// Set (the trailing dot is dropped), then repeat without it: one event.
	want(s.call(key, "PUT", ptr, `{"hostname":"mail.example.com."}`), 200, set)
	ips(set)
	want(s.call(key, "PUT", ptr, `{"hostname":"mail.example.com"}`), 200, set)
	events(ptrEvent(id, "mail.example.com"))
	// Change.
	want(s.call(key, "PUT", ptr, `{"hostname":"smtp-1.mx.example.org"}`), 200, `{"ip":"203.0.113.7","version":4,"ptr":"smtp-1.mx.example.org"`+view+`}`)
	ips(`{"ip":"203.0.113.7","version":4,"ptr":"smtp-1.mx.example.org"` + view + `}`)
	// Delete, then delete again (a no-op 200 with no event).
	want(s.call(key, "DELETE", ptr, ""), 200, unset)
	ips(unset)
	want(s.call(key, "DELETE", ptr, ""), 200, unset)
	events(ptrEvent(id, "mail.example.com"), ptrEvent(id, "smtp-1.mx.example.org"), ptrEvent(id, ""))
	var stored store.Server
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Server(id); return })
	if stored.PTRs != nil {
		t.Fatalf("stored after delete: %+v", stored.PTRs)
	}
	want(s.call(key, "PUT", ptr, `{"hostname":"mail.example.com"}`), 200, set)
	events(ptrEvent(id, "mail.example.com"), ptrEvent(id, "smtp-1.mx.example.org"), ptrEvent(id, ""), ptrEvent(id, "mail.example.com"))
	n := len(s.ptrEvents(acc))

	// Bad hostnames: a 400 naming the field; nothing changes.
	for _, body := range []string{
		`{"hostname":""}`, `{"hostname":"localhost"}`, `{"hostname":"Mail.example.com.."}`, `{"hostname":"mail..example.com"}`,
		`{"hostname":".example.com"}`, `{"hostname":"mail.example.com.."}`, `{"hostname":"-mail.example.com"}`,
		`{"hostname":"mail-.example.com"}`, `{"hostname":"mail_1.example.com"}`, `{"hostname":"mail example.com"}`,
		`{"hostname":"xn--bcher-kva.example.com\u0000"}`, `{"hostname":"bücher.example.com"}`, `{"hostname":"203.0.113.7/24"}`,
		`{"hostname":"192.0.2.1"}`, `{"hostname":"192.0.2.1."}`, `{"hostname":"mail.123"}`, `{"hostname":"127.1"}`,
		`{"hostname":"` + strings.Repeat("a", 64) + `.example.com"}`,
		`{"hostname":"` + strings.Repeat("abcdefghi.", 25) + `example.com"}`, // 261 characters
		`{"hostname":42}`, `{"hostname":null}`, `{}`, ``,
	} {
		r := s.call(key, "PUT", ptr, body)
		if r.status != 400 || !strings.Contains(r.msg(), "hostname") && body != `` {
			t.Errorf("PUT %.60s: %d %s (want 400 naming hostname)", body, r.status, r.body)
		}
	}
	for _, c := range []struct{ body, says string }{
		{`{"hostname":"mail.example.com","ttl":60}`, "ttl"},
		{`{"hostname":"mail.example.com"} {}`, "after the JSON object"},
		{`[]`, "JSON object"},
	} {
		if r := s.call(key, "PUT", ptr, c.body); r.status != 400 || !strings.Contains(r.msg(), c.says) {
			t.Errorf("PUT %s: %d %s", c.body, r.status, r.body)
		}
	}
	// The longest names pass: 63-character labels, 253 characters in all.
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)
	if len(long) != 253 {
		t.Fatal(len(long))
	}
	want(s.call(key, "PUT", ptr, `{"hostname":"`+long+`."}`), 200, `{"ip":"203.0.113.7","version":4,"ptr":"`+long+`"`+view+`}`)
	want(s.call(key, "PUT", ptr, `{"hostname":"mail.example.com"}`), 200, set)
	if got := len(s.ptrEvents(acc)); got != n+2 {
		t.Fatalf("%d events, want %d", got, n+2)
	}
	n += 2

	// An address that is not the server's is a 404, before the body is read
	// (a DELETE takes none: one is refused 400 whoever asks).
	bodyOf := map[string]string{"PUT": `{"hostname":"Bad"}`, "DELETE": ""}
	for _, ip := range []string{"203.0.113.8", "203.0.113.0", "2001:db8::1", "::ffff:203.0.113.7", "203.0.113.007", "nope", "203.0.113.7%25eth0", "203.0.113.7%2F24"} {
		for _, m := range []string{"PUT", "DELETE"} {
			r := s.call(key, m, base+"/ips/"+ip+"/ptr", bodyOf[m])
			if r.status != 404 {
				t.Errorf("%s ip %s: %d %s", m, ip, r.status, r.body)
			}
		}
	}
	// Another account's server (or an unknown one) is a 404, body unread.
	_, other := s.account(allServerScopes...)
	for _, c := range []struct{ key, path string }{{other, ptr}, {key, "/v1/servers/srv_nope/ips/203.0.113.7/ptr"}} {
		for _, m := range []string{"PUT", "DELETE"} {
			if r := s.call(c.key, m, c.path, bodyOf[m]); r.status != 404 {
				t.Errorf("%s %s: %d %s", m, c.path, r.status, r.body)
			}
		}
	}
	// servers:read cannot write.
	_, reader := s.account(api.ScopeServersRead)
	if r := s.call(reader, "PUT", ptr, `{"hostname":"x.example.com"}`); r.status != 403 || !strings.Contains(r.msg(), api.ScopeServersWrite) {
		t.Fatalf("servers:read: %d %s", r.status, r.body)
	}
	ips(set)
	if got := len(s.ptrEvents(acc)); got != n {
		t.Fatalf("refused requests emitted: %d events, want %d", got, n)
	}

	// A DHCP server has no address to name.
	now := time.Now()
	dhcp := ids.New("srv", now)
	prov := store.Action{Action: api.Action{ID: ids.New("act", now), Command: api.ActionServerProvision, ResourceID: dhcp},
		NodeID: "hv-secret-node", Target: "hp-vm-dhcp", Deadline: now.Add(time.Hour)}
	s.apply(fsm.CmdServerCreate, fsm.ServerCreate{Server: store.Server{Server: api.Server{ID: dhcp, Label: "dhcp", OSTemplate: "debian-12", Plan: api.DefaultPlans[1]},
		AccountID: acc, NodeID: "hv-secret-node", VMName: "hp-vm-dhcp"}, Action: prov})
	s.finish(prov.ID, true)
	if r := s.call(key, "PUT", "/v1/servers/"+dhcp+"/ips/203.0.113.7/ptr", `{"hostname":"mail.example.com"}`); r.status != 404 {
		t.Fatalf("dhcp server: %d %s", r.status, r.body)
	}

	// A terminated server is a 409 (its address is no longer listed).
	act := actionID(t, s.call(key, "DELETE", base, ""))
	s.finish(act, true)
	n++ // terminating removes the name and announces it
	ips("")
	for _, c := range [][2]string{{"PUT", `{"hostname":"other.example.com"}`}, {"PUT", `{"hostname":"mail.example.com"}`}, {"DELETE", ""}} {
		if r := s.call(key, c[0], ptr, c[1]); r.status != 409 || r.code() != "conflict" {
			t.Errorf("%s on a terminated server: %d %s", c[0], r.status, r.body)
		}
	}
	if got := len(s.ptrEvents(acc)); got != n {
		t.Fatalf("%d events after termination, want %d", got, n)
	}
}
