package audit

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// p64Domain is key's GET /v1/domains/{id} through coordinator i, sent with
// this probe's own client (p62Do), decoded; any answer but a 200 fails t.
func p64Domain(t *testing.T, r *rig, i int, key, id string) api.Domain {
	t.Helper()
	rep := p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/domains/"+id, p62Key(key), "")
	var d api.Domain
	if rep.status != 200 || json.Unmarshal(rep.body, &d) != nil {
		t.Fatalf("%s", rep)
	}
	return d
}

// p64Order orders name for key's account (funded) and waits until the
// registry has it (active); it returns the domain's id.
func p64Order(t *testing.T, r *rig, key, name string) string {
	t.Helper()
	rep := r.write(0, key, "POST", "/v1/domains", domainBody(name))
	var d api.Domain
	if rep.Status != 201 && rep.Status != 202 {
		t.Fatalf("order %s: %s", name, rep)
	}
	rep.Decode(t, &d)
	framework.WaitFor(t, name+" active", 45*time.Second, 100*time.Millisecond, func() bool {
		d = p64Domain(t, r, 0, key, d.ID)
		if d.Status == api.DomainFailed {
			t.Fatalf("%s failed: %+v", name, d)
		}
		return d.Status == api.DomainActive
	})
	return d.ID
}

// p64Ended waits until key's domain id has no change pending and returns
// it (read through coordinator i, a live one).
func p64Ended(t *testing.T, r *rig, i int, key, id string) api.Domain {
	t.Helper()
	var d api.Domain
	framework.WaitFor(t, "the domain's change ended", 45*time.Second, 50*time.Millisecond, func() bool {
		d = p64Domain(t, r, i, key, id)
		return d.Change == nil || d.Change.Status != api.ChangePending
	})
	return d
}

// p64Host sends a host PUT (addresses; nil: a DELETE) of name on domain id
// as key through coordinator i with the Idempotency-Key idem ("" none), and
// waits until the change it opened (a 202) has ended; the answer and the
// domain after it.
func p64Host(t *testing.T, r *rig, i int, key, id, name, idem string, addresses ...string) (p58Reply, api.Domain) {
	t.Helper()
	h := p62Key(key)
	if idem != "" {
		h.Set("Idempotency-Key", idem)
	}
	method, body := "DELETE", ""
	if addresses != nil {
		raw, _ := json.Marshal(map[string]any{"addresses": addresses})
		method, body = "PUT", string(raw)
	}
	rep := p62Do(t, r.ctx, r.c.URL(i), method, "/v1/domains/"+id+"/hosts/"+name, h, body)
	if rep.status != 202 {
		return rep, p64Domain(t, r, i, key, id)
	}
	return rep, p64Ended(t, r, i, key, id)
}

// p64Glue is what the registry holds of host name, asked over EPP as a
// registrar would (login, host:info, logout; the coordinator's registrar
// account): nil when it has no such host, else its addresses as the
// registry writes them. Any other answer fails t.
func p64Glue(t *testing.T, reg *framework.EPPD, name string) []string {
	t.Helper()
	conn, err := tls.Dial("tcp", reg.Addr, reg.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := eppxml.ReadFrame(conn, eppxml.MaxFrame); err != nil { // the greeting
		t.Fatal(err)
	}
	send := func(cmd *eppxml.Command) (int, *eppxml.Response) {
		t.Helper()
		b, err := eppxml.Marshal(&eppxml.EPP{Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		if err := eppxml.WriteFrame(conn, b); err != nil {
			t.Fatal(err)
		}
		raw, err := eppxml.ReadFrame(conn, eppxml.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		e, err := eppxml.Unmarshal(raw)
		if err != nil || e.Response == nil || len(e.Response.Results) == 0 {
			t.Fatalf("EPP %s answered %s (%v)", cmd.ClTRID, raw, err)
		}
		return e.Response.Results[0].Code, e.Response
	}
	if code, _ := send(&eppxml.Command{ClTRID: "p64-login", Login: &eppxml.Login{ClID: framework.EPPDClientID, PW: framework.EPPDPassword,
		Options: eppxml.Options{Version: "1.0", Lang: "en"}, Svcs: eppxml.LoginSvc{ObjURI: []string{eppxml.NSDomain, eppxml.NSContact, eppxml.NSHost}}}}); code != 1000 {
		t.Fatalf("EPP login: %d", code)
	}
	defer send(&eppxml.Command{ClTRID: "p64-logout", Logout: &eppxml.Empty{}})
	code, resp := send(&eppxml.Command{ClTRID: "p64-info", Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: name}}})
	switch {
	case code == eppxml.CodeNotExist:
		return nil
	case code != 1000 || resp.ResData == nil || resp.ResData.HostInf == nil:
		t.Fatalf("EPP host:info %s: %d", name, code)
	}
	out := []string{}
	for _, a := range resp.ResData.HostInf.Addr {
		out = append(out, a.Addr)
	}
	return out
}

// p64HostsOf is d's child name servers, name → addresses.
func p64HostsOf(d api.Domain) map[string][]string {
	out := map[string][]string{}
	for _, h := range d.Hosts {
		out[h.Name] = h.Addresses
	}
	return out
}

// TestProbe64ChildNameServersFromOutside: README's child name server
// routes (PUT/DELETE /v1/domains/:id/hosts/:name, domains:write,
// Idempotency-Key honoured; 1–8 public unicast addresses; a name outside
// the domain a 400 naming "name"; another account's domain, or a host the
// domain lacks on DELETE, a 404; nothing recorded) as a client written from
// SPEC.md and README sees them, with this probe's own HTTP client and, for
// the registry, its own EPP session (host:info):
//   - B's PUT and DELETE on A's domain, on A's host that exists and on one
//     that does not, REST and the MCP tools, answer the 404 an id nobody
//     has answers (the same body, the id aside): nothing tells B the host
//     exists;
//   - hostile names (empty labels, `..`, `*`, a label of 64, a name of 254,
//     the domain itself, a name outside it, one that merely ends like it,
//     another account's domain) are 400s naming "name"; an upper-case or
//     dotted-at-the-end name is the same host;
//   - hostile addresses (private, loopback, link-local, shared, multicast,
//     unspecified, documentation, v4-mapped private, a zone, a prefix,
//     leading zeros, non-IP strings, duplicates, also across a v4-mapped
//     spelling, 9 and 100 addresses, a number, null) are 400s naming
//     addresses[i] or addresses;
//   - hostile bodies (empty, null, an array, duplicate members, trailing
//     data, an unknown member, 2 MiB) are 400 or 413;
//   - a key missing domains:write is a 403 naming it; one with it but
//     without domains:read (or with it alone) creates and deletes a host;
//   - an Idempotency-Key sent again with another body or another host is a
//     422;
//   - after all of them A's domain and the registry are what they were:
//     no host created, changed or deleted, no registry command applied.
func TestProbe64ChildNameServersFromOutside(t *testing.T) {
	r := newRig(t, "--registrar-epp-host-objects", "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.c.Credit(r.ctx, r.accA.ID, 10*domainPrice)
	r.c.Credit(r.ctx, r.accB.ID, 10*domainPrice)
	const domA, domB = "p64-a.test", "p64-b.test"
	idA, idB := p64Order(t, r, r.keyA, domA), p64Order(t, r, r.keyB, domB)
	ld, f := r.leaderAndFollower()

	// A's host ns1, made through the follower.
	rep, d := p64Host(t, r, f, r.keyA, idA, "ns1."+domA, "p64-a-ns1", "8.8.8.8")
	if rep.status != 202 || d.Change == nil || d.Change.Status != api.ChangeApplied || !slices.Equal(p64HostsOf(d)["ns1."+domA], []string{"8.8.8.8"}) {
		t.Fatalf("A's ns1: %s, then %+v %+v", rep, d.Change, d.Hosts)
	}
	if g := p64Glue(t, r.reg, "ns1."+domA); !slices.Equal(g, []string{"8.8.8.8"}) {
		t.Fatalf("the registry's ns1.%s: %v", domA, g)
	}
	before := p62Agreed(t, r, r.keyA, []string{"/v1/domains/" + idA}, "A's domain on every coordinator")
	beforeB := p62Agreed(t, r, r.keyB, []string{"/v1/domains/" + idB}, "B's domain on every coordinator")
	applied := r.reg.Stats().Applied
	markers := []string{domA, idA, "ns1." + domA, "8.8.8.8", r.accA.ID, r.accA.Email}

	// B on A's domain: A's existing host, a host A lacks, and an id nobody
	// has, through each coordinator; the same 404.
	nobody := unknown(idA)
	for i := range r.c.Len() {
		for _, host := range []string{"ns1." + domA, "ns9." + domA} {
			for _, m := range []struct{ method, body string }{{"PUT", `{"addresses":["9.9.9.9"]}`}, {"DELETE", ""}} {
				h := p62Key(r.keyB)
				h.Set("Idempotency-Key", fmt.Sprintf("p64-b-%d-%s-%s", i, m.method, host))
				mine := p62Do(t, r.ctx, r.c.URL(i), m.method, "/v1/domains/"+idA+"/hosts/"+host, h, m.body)
				h.Set("Idempotency-Key", fmt.Sprintf("p64-n-%d-%s-%s", i, m.method, host))
				none := p62Do(t, r.ctx, r.c.URL(i), m.method, "/v1/domains/"+nobody+"/hosts/"+host, h, m.body)
				what := fmt.Sprintf("B's %s of A's domain's %s through coordinator %d", m.method, host, i)
				if p62Refused(t, what, mine, "", markers[1:], 404) && p62Refused(t, what+" (an id nobody has)", none, "", nil, 404) &&
					!sameError(string(mine.body), string(none.body), idA) {
					t.Errorf("%s: %s; an id nobody has: %s (existence shows)", what, mine, none)
				}
			}
		}
	}
	// The MCP tools of the routes, as B.
	bs := &mcpSession{t: t, endpoint: r.c.URL(f) + "/mcp", token: r.keyB}
	bs.initialize()
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"put_domain_host", map[string]any{"id": idA, "name": "ns1." + domA, "body": map[string]any{"addresses": []string{"9.9.9.9"}}}},
		{"put_domain_host", map[string]any{"id": idA, "name": "ns9." + domA, "body": map[string]any{"addresses": []string{"9.9.9.9"}}}},
		{"delete_domain_host", map[string]any{"id": idA, "name": "ns1." + domA}},
		{"delete_domain_host", map[string]any{"id": idA, "name": "ns9." + domA}},
	} {
		a := p60Call(t, bs, c.tool, c.args)
		if a.http != 200 || a.rpcErr != nil || !a.isError || a.status != 404 {
			t.Errorf("B's %s %v: %s; want a tool error with status 404", c.tool, c.args, a)
		}
		for _, m := range markers[2:] {
			if strings.Contains(a.text, m) {
				t.Errorf("B's %s %v shows A's %q: %s", c.tool, c.args, m, a)
			}
		}
	}

	// Hostile names on A's own domain, with a valid body.
	long := strings.Repeat("a", 63)
	n254 := strings.Repeat(long+".", 3) + strings.Repeat("b", 254-3*64-1-len(domA)) + "." + domA
	for n, name := range []string{
		"ns1..p64-a.test", ".ns1.p64-a.test", "ns1.p64-a.test..", "..", "...", "*", "*." + domA, "ns1.*." + domA,
		strings.Repeat("a", 64) + "." + domA, n254, domA, domA + ".", "P64-A.TEST",
		"ns1." + domB, "ns1.xp64-a.test", "xp64-a.test", "ns1.p64-a.test.evil", "ns1.p64-a.test.test", "ns1.test", "test",
		"ns1%2Fp64-a.test", "ns1%00.p64-a.test", "ns_1.p64-a.test", "-ns1.p64-a.test", "ns1-.p64-a.test", "ns%201.p64-a.test",
		"ns1.p64-a.test%20", "192.0.2.1", "ns1.p64-a.test:53",
	} {
		h := p62Key(r.keyA)
		h.Set("Idempotency-Key", fmt.Sprintf("p64-name-%d", n))
		rep := p62Do(t, r.ctx, r.c.URL(f), "PUT", "/v1/domains/"+idA+"/hosts/"+name, h, `{"addresses":["9.9.9.9"]}`)
		if name == ".." || name == "..." {
			// A dot segment is the client's: not a host name the route sees.
			if rep.status/100 == 2 || rep.status >= 500 {
				t.Errorf("PUT hosts/%s: %s; want a refusal", name, rep)
			}
			continue
		}
		if rep.status != 400 {
			t.Errorf("PUT hosts/%.80s: %s; want a 400 naming name", name, rep)
			continue
		}
		rep.wantMemberRefusal(t, "PUT hosts/"+name[:min(len(name), 80)], `"name"`, "")
	}
	if n254len := len(n254); n254len != 254 {
		t.Fatalf("the 254-character name is %d", n254len)
	}

	// Hostile addresses, on a name that would be valid.
	addrs := func(n int) []string {
		var out []string
		for k := range n {
			out = append(out, fmt.Sprintf("8.8.%d.%d", k/200, 1+k%200))
		}
		return out
	}
	for n, c := range []struct {
		body  any
		field string
	}{
		{[]string{"10.0.0.1"}, "addresses[0]"}, {[]string{"8.8.8.8", "192.168.1.1"}, "addresses[1]"},
		{[]string{"172.16.0.1"}, "addresses[0]"}, {[]string{"127.0.0.1"}, "addresses[0]"}, {[]string{"::1"}, "addresses[0]"},
		{[]string{"169.254.169.254"}, "addresses[0]"}, {[]string{"fe80::1"}, "addresses[0]"}, {[]string{"fe80::1%eth0"}, "addresses[0]"},
		{[]string{"fc00::1"}, "addresses[0]"}, {[]string{"100.64.0.1"}, "addresses[0]"}, {[]string{"224.0.0.1"}, "addresses[0]"},
		{[]string{"ff02::1"}, "addresses[0]"}, {[]string{"0.0.0.0"}, "addresses[0]"}, {[]string{"::"}, "addresses[0]"},
		{[]string{"255.255.255.255"}, "addresses[0]"}, {[]string{"192.0.2.1"}, "addresses[0]"}, {[]string{"2001:db8::1"}, "addresses[0]"},
		{[]string{"::ffff:10.0.0.1"}, "addresses[0]"}, {[]string{"::ffff:127.0.0.1"}, "addresses[0]"},
		{[]string{"8.8.8.8", "::ffff:8.8.8.8"}, "addresses[1]"}, {[]string{"8.8.8.8", "8.8.8.8"}, "addresses[1]"},
		{[]string{"2606:4700::53", "2606:4700:0::53"}, "addresses[1]"},
		{[]string{"8.8.8.8/32"}, "addresses[0]"}, {[]string{"08.8.8.8"}, "addresses[0]"}, {[]string{" 8.8.8.8"}, "addresses[0]"},
		{[]string{"8.8.8.8 "}, "addresses[0]"}, {[]string{"ns1.example.net"}, "addresses[0]"}, {[]string{""}, "addresses[0]"},
		{[]string{"134744072"}, "addresses[0]"}, {[]string{"8.8.8"}, "addresses[0]"}, {[]string{"[2606:4700::53]"}, "addresses[0]"},
		{addrs(9), "addresses"}, {addrs(100), "addresses"}, {[]string{}, "addresses"}, {nil, "addresses"},
		{[]any{8}, "addresses"}, {"8.8.8.8", "addresses"}, {[]any{nil}, "addresses[0]"},
	} {
		raw, _ := json.Marshal(map[string]any{"addresses": c.body})
		h := p62Key(r.keyA)
		h.Set("Idempotency-Key", fmt.Sprintf("p64-addr-%d", n))
		rep := p62Do(t, r.ctx, r.c.URL(f), "PUT", "/v1/domains/"+idA+"/hosts/ns2."+domA, h, string(raw))
		rep.wantMemberRefusal(t, fmt.Sprintf("PUT hosts/ns2 %.120s", raw), `"`+c.field+`"`, "")
	}

	// Hostile bodies.
	for n, c := range []struct {
		body string
		want int
	}{
		{"", 400}, {"null", 400}, {"[]", 400}, {`"x"`, 400}, {"{", 400}, {`{"addresses":["8.8.8.8"]}x`, 400},
		{`{"addresses":["8.8.8.8"]}{"addresses":["8.8.4.4"]}`, 400}, {`{"addresses":["10.0.0.1"],"addresses":["8.8.8.8"]}`, 400},
		{`{"addresses":["8.8.8.8"],"Addresses":["10.0.0.1"]}`, 400}, {`{"addresses":["8.8.8.8"],"name":"ns1.p64-b.test"}`, 400},
		{"\ufeff" + `{"addresses":["8.8.8.8"]}`, 400}, {`{"addresses":[` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `]}`, 400},
		{`{"addresses":["` + strings.Repeat("8", 2<<20) + `"]}`, 413},
	} {
		h := p62Key(r.keyA)
		h.Set("Idempotency-Key", fmt.Sprintf("p64-body-%d", n))
		rep := p62Do(t, r.ctx, r.c.URL(f), "PUT", "/v1/domains/"+idA+"/hosts/ns2."+domA, h, c.body)
		if rep.status != c.want {
			t.Errorf("PUT hosts/ns2 with the body %.60q: %s; want %d", c.body, rep, c.want)
		} else if e := rep.envelopeErr(); e != "" {
			t.Errorf("PUT hosts/ns2 with the body %.60q: %s: %s", c.body, e, rep)
		}
	}

	// Scopes: a key of A without domains:write, and one with domains:read
	// alone.
	without, only := p58ScopeKeys(t, r, "p64", []string{api.ScopeDomainsWrite, api.ScopeDomainsRead})
	for what, key := range map[string]string{"without domains:write": without[api.ScopeDomainsWrite], "with domains:read alone": only[api.ScopeDomainsRead]} {
		for _, m := range []struct{ method, host, body string }{
			{"PUT", "ns2." + domA, `{"addresses":["9.9.9.9"]}`}, {"PUT", "ns1." + domA, `{"addresses":["9.9.9.9"]}`}, {"DELETE", "ns1." + domA, ""},
			{"DELETE", "ns9." + domA, ""},
		} {
			h := p62Key(key)
			h.Set("Idempotency-Key", strings.ReplaceAll("p64-scope-"+what+m.method+m.host, " ", "-"))
			rep := p62Do(t, r.ctx, r.c.URL(f), m.method, "/v1/domains/"+idA+"/hosts/"+m.host, h, m.body)
			if rep.status != 403 || !strings.Contains(string(rep.body), api.ScopeDomainsWrite) {
				t.Errorf("A's key %s: %s %s: %s; want a 403 naming domains:write", what, m.method, m.host, rep)
			} else if e := rep.envelopeErr(); e != "" {
				t.Errorf("A's key %s: %s: %s", what, e, rep)
			}
		}
	}

	if after := p62Agreed(t, r, r.keyA, []string{"/v1/domains/" + idA}, "A's domain on every coordinator after"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("A's domain changed by refused requests: %v → %v", before, after)
	}
	if after := p62Agreed(t, r, r.keyB, []string{"/v1/domains/" + idB}, "B's domain on every coordinator after"); fmt.Sprint(after) != fmt.Sprint(beforeB) {
		t.Errorf("B's domain changed: %v → %v", beforeB, after)
	}
	if got := r.reg.Stats().Applied; got != applied {
		t.Errorf("refused requests reached the registry: %d commands applied", got-applied)
	}
	for _, h := range []string{"ns1." + domA, "ns2." + domA, "ns9." + domA, "p64-a.test.p64-a.test"} {
		want := []string(nil)
		if h == "ns1."+domA {
			want = []string{"8.8.8.8"}
		}
		if g := p64Glue(t, r.reg, h); !slices.Equal(g, want) {
			t.Errorf("the registry's %s after the refused requests: %v; want %v", h, g, want)
		}
	}

	// The same name spelled upper-case with a dot at the end is A's ns1:
	// its addresses again answer 200 with nothing sent.
	if rep, d := p64Host(t, r, ld, r.keyA, idA, "NS1.P64-A.Test.", "", "8.8.8.8"); rep.status != 200 || len(d.Hosts) != 1 || r.reg.Stats().Applied != applied {
		t.Errorf("NS1.P64-A.Test. with ns1's address: %s; hosts %+v", rep, d.Hosts)
	}

	// An Idempotency-Key sent again with another body, or for another
	// host, is a 422 and changes nothing.
	rep, d = p64Host(t, r, f, r.keyA, idA, "ns2."+domA, "p64-idem", "8.8.4.4")
	if rep.status != 202 || d.Change.Status != api.ChangeApplied {
		t.Fatalf("A's ns2: %s, then %+v", rep, d.Change)
	}
	applied = r.reg.Stats().Applied
	for _, c := range []struct{ host, body string }{
		{"ns2." + domA, `{"addresses":["1.1.1.1"]}`}, {"ns3." + domA, `{"addresses":["8.8.4.4"]}`}, {"ns2." + domA, ""},
	} {
		method := "PUT"
		if c.body == "" {
			method = "DELETE"
		}
		for _, i := range []int{ld, f} {
			h := p62Key(r.keyA)
			h.Set("Idempotency-Key", "p64-idem")
			rep := p62Do(t, r.ctx, r.c.URL(i), method, "/v1/domains/"+idA+"/hosts/"+c.host, h, c.body)
			if rep.status != 422 {
				t.Errorf("the key of A's ns2 PUT again on %s %s %s through coordinator %d: %s; want 422", method, c.host, c.body, i, rep)
			} else if e := rep.envelopeErr(); e != "" {
				t.Errorf("the key of A's ns2 PUT again: %s: %s", e, rep)
			}
		}
	}
	time.Sleep(time.Second)
	if d := p64Ended(t, r, ld, r.keyA, idA); !slices.Equal(p64HostsOf(d)["ns2."+domA], []string{"8.8.4.4"}) || len(d.Hosts) != 2 || r.reg.Stats().Applied != applied {
		t.Errorf("after the reused keys: hosts %+v, %d registry commands", d.Hosts, r.reg.Stats().Applied-applied)
	}
	if g := p64Glue(t, r.reg, "ns3."+domA); g != nil {
		t.Errorf("the registry has ns3.%s: %v", domA, g)
	}

	// domains:write is the routes' one scope: a key with it alone, and
	// one with every scope but domains:read, create and delete a host.
	for n, key := range []string{only[api.ScopeDomainsWrite], without[api.ScopeDomainsRead]} {
		host := fmt.Sprintf("ns%d.%s", 4+n, domA)
		h := p62Key(key)
		h.Set("Idempotency-Key", fmt.Sprintf("p64-write-only-%d", n))
		rep := p62Do(t, r.ctx, r.c.URL(f), "PUT", "/v1/domains/"+idA+"/hosts/"+host, h, `{"addresses":["8.8.4.4"]}`)
		if rep.status != 202 {
			t.Errorf("PUT %s with a key without domains:read (%d): %s; want 202", host, n, rep)
			continue
		}
		if d := p64Ended(t, r, f, r.keyA, idA); d.Change.Status != api.ChangeApplied || !slices.Equal(p64Glue(t, r.reg, host), []string{"8.8.4.4"}) {
			t.Errorf("PUT %s with a key without domains:read: %+v", host, d.Change)
		}
		h.Set("Idempotency-Key", fmt.Sprintf("p64-write-only-del-%d", n))
		if rep := p62Do(t, r.ctx, r.c.URL(ld), "DELETE", "/v1/domains/"+idA+"/hosts/"+host, h, ""); rep.status != 202 {
			t.Errorf("DELETE %s with a key without domains:read (%d): %s; want 202", host, n, rep)
		} else if d := p64Ended(t, r, ld, r.keyA, idA); d.Change.Status != api.ChangeApplied || p64Glue(t, r.reg, host) != nil {
			t.Errorf("DELETE %s with a key without domains:read: %+v", host, d.Change)
		}
	}
}

// TestProbe64HostPutDeleteRaceThroughTwoCoordinators: A's PUT and DELETE
// of the same child name server sent at once through two coordinators
// (the leader and a follower, which forwards), 12 rounds with other
// addresses each time: each answer is a 202, a 200 (nothing to do), a 404
// (a DELETE of a host the domain lacks) or a 409 change_pending (the other
// one's change is open), never a 5xx; every 202's change ends applied or
// failed with a reason; and at the end the registry (host:info over EPP)
// and the API (each coordinator's own state) agree on the host and its
// addresses (after each round too), and no registry command was applied
// twice for one transaction id.
func TestProbe64HostPutDeleteRaceThroughTwoCoordinators(t *testing.T) {
	r := newRig(t, "--registrar-epp-host-objects", "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.c.Credit(r.ctx, r.accA.ID, 10*domainPrice)
	const dom = "p64-race.test"
	id := p64Order(t, r, r.keyA, dom)
	host := "ns1." + dom
	ld, f := r.leaderAndFollower()
	answers := map[string]int{}
	var mu sync.Mutex
	for round := range 12 {
		addr := fmt.Sprintf("8.8.%d.%d", round, 1+round)
		var wg sync.WaitGroup
		for k, i := range []int{ld, f} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if round%2 == 1 {
					k = 1 - k // the other coordinator sends the PUT
				}
				var rep p58Reply
				if k == 0 {
					rep, _ = p64Host(t, r, i, r.keyA, id, host, fmt.Sprintf("p64-race-put-%d", round), addr)
				} else {
					rep, _ = p64Host(t, r, i, r.keyA, id, host, fmt.Sprintf("p64-race-del-%d", round))
				}
				mu.Lock()
				answers[fmt.Sprintf("%s %d %s", strings.Fields(rep.what)[0], rep.status, rep.code())]++
				mu.Unlock()
				switch {
				case rep.status == 202 || rep.status == 200:
				case rep.status == 404 && strings.HasPrefix(rep.what, "DELETE"):
				case rep.status == 409 && rep.code() == "change_pending":
				default:
					t.Errorf("round %d: %s", round, rep)
				}
			}()
		}
		wg.Wait()
		d := p64Ended(t, r, ld, r.keyA, id)
		if d.Change != nil && d.Change.Status == api.ChangeFailed && d.Change.Reason == "" {
			t.Errorf("round %d: a failed change without a reason: %+v", round, d.Change)
		}
		if mine, glue := p64HostsOf(d)[host], p64Glue(t, r.reg, host); !slices.Equal(slices.Sorted(slices.Values(mine)), slices.Sorted(slices.Values(glue))) {
			t.Errorf("round %d: the API says %s has %v, the registry %v", round, host, mine, glue)
		}
		// Each round starts with the host present half the time.
		if round%3 == 0 {
			p64Host(t, r, ld, r.keyA, id, host, fmt.Sprintf("p64-race-set-%d", round), "1.0.0.1")
		}
	}
	t.Logf("answers: %v", answers)
	st := p62Agreed(t, r, r.keyA, []string{"/v1/domains/" + id}, "the domain on every coordinator")
	var d api.Domain
	for _, v := range st {
		_, body, _ := strings.Cut(v, " ")
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
	}
	mine, glue := p64HostsOf(d)[host], p64Glue(t, r.reg, host)
	t.Logf("the API's %s: %v; the registry's: %v", host, mine, glue)
	if !slices.Equal(slices.Sorted(slices.Values(mine)), slices.Sorted(slices.Values(glue))) {
		t.Errorf("the API says %s has %v, the registry %v", host, mine, glue)
	}
	seen := map[string]int{}
	for _, tx := range r.reg.Transactions("", host) {
		if tx.Code < 2000 {
			seen[tx.ClTRID]++
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("the registry applied %s %d times", id, n)
		}
	}
}
