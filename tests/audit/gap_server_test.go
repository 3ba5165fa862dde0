package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestTerminatedServerShowsNoAddresses: the pool has one IPv4 address. A
// buys a server and terminates it; after the quarantine B's new server gets
// that address. A's terminated server, read alone and in A's list, shows no
// ipv4 or ipv6 (the addresses are released, and now B's), while B's server
// shows them; it stays listed, terminated.
func TestTerminatedServerShowsNoAddresses(t *testing.T) {
	const quarantine = 2
	r := newNetRig(t, "198.51.100.0/30", quarantine) // .2 is the one address
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	r.c.Credit(r.ctx, r.accB.ID, serverPrice)
	srvA := r.order(0, r.keyA, "gone-a")
	if !strings.HasPrefix(srvA.IPv4, "198.51.100.2") || srvA.IPv6 == "" {
		t.Fatalf("A's server holds %q %q, want the pool's one address and a /64", srvA.IPv4, srvA.IPv6)
	}
	if rep := r.write(1, r.keyA, "DELETE", "/v1/servers/"+srvA.ID, nil); rep.Status != 202 {
		t.Fatalf("terminate: %s", rep)
	}
	get := func(i int, key, id string) (api.Server, string) {
		t.Helper()
		var s api.Server
		rep := r.get(t, i, key, "/v1/servers/"+id, &s)
		return s, string(rep.Body)
	}
	framework.WaitFor(t, "A's server terminated", 30*time.Second, 100*time.Millisecond, func() bool {
		s, _ := get(0, r.keyA, srvA.ID)
		return s.Status == api.ServerTerminated
	})
	time.Sleep(quarantine*time.Second + 500*time.Millisecond)
	srvB := r.order(2, r.keyB, "next-b")
	if !strings.HasPrefix(srvB.IPv4, "198.51.100.2") {
		t.Fatalf("B's server holds %q, want 198.51.100.2 after the quarantine", srvB.IPv4)
	}
	addr4, _, _ := strings.Cut(srvA.IPv4, "/")
	addr6, _, _ := strings.Cut(srvA.IPv6, "/")
	for i := range r.c.Len() {
		s, body := get(i, r.keyA, srvA.ID)
		if s.Status != api.ServerTerminated || s.TerminatedAt == nil || s.IPv4 != "" || s.IPv6 != "" ||
			strings.Contains(body, addr4) || strings.Contains(body, addr6) {
			t.Fatalf("A's terminated server on coordinator %d shows its released addresses: %s", i, body)
		}
	}
	rep := r.call(1, r.keyA, "GET", "/v1/servers", nil, nil)
	if rep.Status != 200 || !strings.Contains(string(rep.Body), srvA.ID) || strings.Contains(string(rep.Body), addr4) || strings.Contains(string(rep.Body), addr6) {
		t.Fatalf("A's list: %s", rep)
	}
	if s, _ := get(0, r.keyB, srvB.ID); s.IPv4 != srvB.IPv4 || s.IPv6 == "" {
		t.Fatalf("B's live server %+v, want its addresses shown", s)
	}
}

// TestSuspendedServerKeepsItsPTRs: a suspended server (an operator's
// suspension here; one for non-payment is the same state) refuses PTR
// changes as it refuses a power-on: PUT and DELETE of a PTR are 409
// suspended, naming the reason, and the name set before stays recorded and
// served. Lifted, the same PUT is a 200 again.
func TestSuspendedServerKeepsItsPTRs(t *testing.T) {
	r := newNetRig(t, "198.51.100.0/24", 0)
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	srv := r.order(0, r.keyA, "susp-a").ID
	v4, v6 := r.addrs(r.keyA, srv)
	ptr := func(ip string) string { return "/v1/servers/" + srv + "/ips/" + ip + "/ptr" }
	if rep := r.call(1, r.keyA, "PUT", ptr(v4), map[string]string{"hostname": "mail.example.test"}, nil); rep.Status != 200 {
		t.Fatalf("PTR before the suspension: %s", rep)
	}
	r.waitServed(v4, "mail.example.test.")
	if _, err := r.adm().Suspend(r.ctx, "servers", srv, "abuse report 42"); err != nil {
		t.Fatal(err)
	}
	if rep := r.call(2, r.keyA, "POST", "/v1/servers/"+srv+"/power/start", nil, nil); rep.Status != 409 || rep.Code() != "suspended" {
		t.Fatalf("power start of the suspended server: %s", rep)
	}
	for _, c := range []struct {
		method, ip string
		body       any
	}{
		{"PUT", v4, map[string]string{"hostname": "other.example.test"}},
		{"PUT", v6, map[string]string{"hostname": "v6.example.test"}},
		{"DELETE", v4, nil},
	} {
		for i := range r.c.Len() {
			rep := r.call(i, r.keyA, c.method, ptr(c.ip), c.body, nil)
			if rep.Status != 409 || rep.Code() != "suspended" || !strings.Contains(string(rep.Body), "abuse report 42") {
				t.Fatalf("%s PTR of %s on the suspended server (coordinator %d): %s, want 409 suspended with the reason", c.method, c.ip, i, rep)
			}
		}
	}
	for _, v := range r.ips(0, r.keyA, srv) {
		if want := map[string]string{v4: "mail.example.test"}[v.IP]; (v.PTR == nil) != (want == "") || (v.PTR != nil && *v.PTR != want) {
			t.Fatalf("PTRs after the refused changes: %+v", r.ips(0, r.keyA, srv))
		}
	}
	if got, _ := r.served(v4); len(got) != 1 || got[0] != "mail.example.test." {
		t.Fatalf("PowerDNS serves %v for %s after the refused changes", got, v4)
	}
	if _, err := r.adm().Unsuspend(r.ctx, "servers", srv); err != nil {
		t.Fatal(err)
	}
	if rep := r.call(1, r.keyA, "PUT", ptr(v4), map[string]string{"hostname": "other.example.test"}, nil); rep.Status != 200 {
		t.Fatalf("PTR after the suspension was lifted: %s", rep)
	}
	r.waitServed(v4, "other.example.test.")
}
