package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDomainHostRoutes: a child name server's routes need every coordinator
// at level 16 (503 cluster_upgrading before, nothing recorded), domains:write
// (403), the caller's domain (404); then a host is created through the
// leader's driver (202, applied, listed in hosts), after which the domain's
// PATCH takes it as an in-bailiwick name server, which it refused before
// (TestInBailiwickNameserversRefused); a DELETE of a host the domain lacks
// is a 404.
func TestDomainHostRoutes(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	_, readOnly := s.account(api.ScopeDomainsRead)
	_, other := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
	r := s.call(key, "POST", "/v1/domains", `{"name":"ada.test","nameservers":["ns1.other.test","ns2.other.test"],`+testContact+`}`)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	id := r.m["id"].(string)
	path := "/v1/domains/" + id + "/hosts/ns1.ada.test"
	body := `{"addresses":["8.8.8.8"]}`
	if r := s.call(key, "PUT", path, body); r.status != 503 || r.code() != "cluster_upgrading" {
		t.Fatalf("PUT at level 1: %d %s", r.status, r.body)
	}
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelDomainHosts})
	if r := s.call(readOnly, "PUT", path, body); r.status != 403 {
		t.Fatalf("PUT without domains:write: %d %s", r.status, r.body)
	}
	if r := s.call(other, "PUT", path, body); r.status != 404 {
		t.Fatalf("PUT on another account's domain: %d %s", r.status, r.body)
	}
	// The public-address policy is the API's: a private or documentation
	// address is a 400 naming it, and no command reaches the log.
	for _, b := range []string{`{"addresses":["8.8.8.8","10.0.0.1"]}`, `{"addresses":["2001:db8::1"]}`, `{"addresses":["::ffff:192.168.1.1"]}`} {
		if r := s.call(key, "PUT", path, b); r.status != 400 || !strings.Contains(r.msg(), `"addresses[`) {
			t.Fatalf("PUT %s: %d %s", b, r.status, r.body)
		}
	}
	if r := s.call(key, "DELETE", path, ""); r.status != 404 {
		t.Fatalf("DELETE of a host the domain lacks: %d %s", r.status, r.body)
	}
	applied := reg.Applied()
	if r := s.call(key, "GET", "/v1/domains/"+id, ""); r.m["change"] != nil || r.m["hosts"] != nil || reg.Applied() != applied {
		t.Fatalf("refused requests changed the domain: %s", r.body)
	}
	r = s.call(key, "PUT", path, `{"addresses":["2606:4700::53","8.8.8.8"]}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = s.call(key, "GET", "/v1/domains/"+id, "")
		if fmt.Sprint(r.m["hosts"]) == "[map[addresses:[8.8.8.8 2606:4700::53] name:ns1.ada.test]]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host was not applied: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The same addresses again: 200 with nothing sent, and its key's
	// replay answers the same 200.
	applied = reg.Applied()
	for range 2 {
		if r := s.call(key, "PUT", path, `{"addresses":["8.8.8.8","2606:4700::53"]}`, "Idempotency-Key", "same-1"); r.status != 200 || reg.Applied() != applied {
			t.Fatalf("the same addresses again: %d %s", r.status, r.body)
		}
	}
	r = s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.ada.test","ns2.other.test"]}`)
	if r.status != http.StatusOK || fmt.Sprint(r.m["nameservers"]) != "[ns1.ada.test ns2.other.test]" {
		t.Fatalf("PATCH to its child name server: %d %s", r.status, r.body)
	}
	if r := s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.ada.test","ns3.ada.test"]}`); r.status != 400 || !strings.Contains(r.msg(), `"nameservers[1]"`) {
		t.Fatalf("PATCH to a name server inside it that is no child name server: %d %s", r.status, r.body)
	}
}

// FuzzDecodeDomainHost: what DecodeDomainHost accepts is 1 to
// api.MaxHostAddresses distinct canonical public unicast addresses, IPv4
// first, and reads the same again (the form the command checks).
func FuzzDecodeDomainHost(f *testing.F) {
	seeds := []string{`{"addresses":["8.8.8.8"]}`, `{"addresses":["2606:4700::53","8.8.8.8"]}`, `{"addresses":["::ffff:8.8.8.8"]}`,
		`{"addresses":[]}`, `{"addresses":["10.0.0.1"]}`, `{"addresses":["fe80::1%eth0"]}`, `{"addresses":["8.8.8.8","8.8.8.8"]}`,
		`{"addresses":["2606:4700:0:0:0:0:0:53"]}`, `{}`, `{`, ``, `null`, `{"addresses":null}`, `{"addresses":["8.8.8.8"],"x":1}`}
	fuzzDecoder(f, seeds, DecodeDomainHost, func(t *testing.T, req api.DomainHostRequest) {
		if len(req.Addresses) < 1 || len(req.Addresses) > api.MaxHostAddresses {
			t.Fatalf("accepted %d addresses", len(req.Addresses))
		}
		again, _, err := fsm.CheckHostAddresses(req.Addresses)
		for _, a := range again {
			if !publicGlueAddress(netip.MustParseAddr(a)) {
				t.Fatalf("accepted address %q", a)
			}
		}
		if err != nil || !slices.Equal(again, req.Addresses) {
			t.Fatalf("accepted %v, which reads again as %v, %v", req.Addresses, again, err)
		}
		for _, a := range req.Addresses {
			if ip, err := netip.ParseAddr(a); err != nil || ip.String() != a || !ip.IsGlobalUnicast() || ip.IsPrivate() {
				t.Fatalf("accepted address %q", a)
			}
		}
	})
}

// TestPublicGlueAddress: the API admits public unicast glue only.
func TestPublicGlueAddress(t *testing.T) {
	for _, good := range []string{"8.8.8.8", "1.1.1.1", "2606:4700::1", "2a00:1450::1"} {
		if !publicGlueAddress(netip.MustParseAddr(good)) {
			t.Errorf("%s refused", good)
		}
	}
	for _, bad := range []string{"10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1", "100.64.0.1", "224.0.0.1",
		"255.255.255.255", "0.1.2.3", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "240.0.0.1", "::", "::1", "fe80::1",
		"fc00::1", "ff02::1", "2001:db8::53", "2002::1", "3fff::1"} {
		if publicGlueAddress(netip.MustParseAddr(bad)) {
			t.Errorf("%s admitted", bad)
		}
	}
}

// attrRegistrar is a registrar that delegates with host attributes: it
// cannot make host objects.
type attrRegistrar struct{ registrar.Registrar }

func (attrRegistrar) HostObjects() bool { return false }

// waitHosts polls the domain until its hosts read want.
func (s *srvAPI) waitHosts(key, id, want string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.call(key, "GET", "/v1/domains/"+id, "")
		if fmt.Sprint(r.m["hosts"]) == want && r.m["change"].(map[string]any)["status"] != api.ChangePending {
			return r.m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("hosts not %s: %s", want, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDomainHostRefusedUpFront: what the registry or the registrar would
// refuse in the leader's job is refused at the API, nothing recorded: a
// host change when the registrar cannot make host objects (409
// host_objects_not_offered), and the deletion of a host that the caller's
// domains still delegate to (409 host_in_use naming them all). Another
// account's call is a 404 either way; the deletion goes through once the
// delegations moved away.
func TestDomainHostRefusedUpFront(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	_, other := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelDomainHosts})
	var ids []string
	for _, n := range []string{"ada.test", "bob.test", "cy.test"} {
		r := s.call(key, "POST", "/v1/domains", `{"name":"`+n+`","nameservers":["ns1.other.test","ns2.other.test"],`+testContact+`}`)
		if r.status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", n, r.status, r.body)
		}
		ids = append(ids, r.m["id"].(string))
	}
	path := "/v1/domains/" + ids[0] + "/hosts/ns1.ada.test"
	deps := *s.a.domainReg.Load()
	attr := deps
	attr.Registrar = attrRegistrar{reg}
	s.a.SetDomainDeps(&attr)
	applied := reg.Applied()
	for m, body := range map[string]string{"PUT": `{"addresses":["8.8.8.8"]}`, "DELETE": ""} {
		if r := s.call(other, m, path, body); r.status != 404 {
			t.Fatalf("%s on another account's domain: %d %s", m, r.status, r.body)
		}
		r := s.call(key, m, path, body)
		if r.status != http.StatusConflict || r.code() != "host_objects_not_offered" || !strings.Contains(r.msg(), "host objects") {
			t.Fatalf("%s without host objects: %d %s", m, r.status, r.body)
		}
	}
	if r := s.call(key, "GET", "/v1/domains/"+ids[0], ""); r.m["change"] != nil || r.m["hosts"] != nil || reg.Applied() != applied {
		t.Fatalf("a refused host change was recorded: %s", r.body)
	}
	s.a.SetDomainDeps(&deps)
	if r := s.call(key, "PUT", path, `{"addresses":["8.8.8.8"]}`); r.status != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	s.waitHosts(key, ids[0], "[map[addresses:[8.8.8.8] name:ns1.ada.test]]")
	for _, id := range ids[:2] {
		if r := s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.ada.test","ns2.other.test"]}`); r.status != http.StatusOK {
			t.Fatalf("PATCH %s to the host: %d %s", id, r.status, r.body)
		}
	}
	before := s.call(key, "GET", "/v1/domains/"+ids[0], "").body
	applied = reg.Applied()
	if r := s.call(other, "DELETE", path, ""); r.status != 404 {
		t.Fatalf("another account's DELETE: %d %s", r.status, r.body)
	}
	r := s.call(key, "DELETE", path, "")
	if r.status != http.StatusConflict || r.code() != "host_in_use" || !strings.Contains(r.msg(), "ada.test, bob.test:") || strings.Contains(r.msg(), "cy.test") {
		t.Fatalf("DELETE of a host in use: %d %s", r.status, r.body)
	}
	if after := s.call(key, "GET", "/v1/domains/"+ids[0], "").body; string(after) != string(before) || reg.Applied() != applied {
		t.Fatalf("a refused host deletion changed the domain or reached the registry:\n%s\n%s", before, after)
	}
	// One domain moved away: the other is still named.
	if r := s.call(key, "PATCH", "/v1/domains/"+ids[0], `{"nameservers":["ns1.other.test","ns2.other.test"]}`); r.status != http.StatusOK {
		t.Fatalf("PATCH away: %d %s", r.status, r.body)
	}
	if r := s.call(key, "DELETE", path, ""); r.status != http.StatusConflict || !strings.Contains(r.msg(), "of bob.test:") {
		t.Fatalf("DELETE of a host bob.test uses: %d %s", r.status, r.body)
	}
	if r := s.call(key, "PATCH", "/v1/domains/"+ids[1], `{"nameservers":["ns1.other.test","ns2.other.test"]}`); r.status != http.StatusOK {
		t.Fatalf("PATCH away: %d %s", r.status, r.body)
	}
	if r := s.call(key, "DELETE", path, ""); r.status != http.StatusAccepted {
		t.Fatalf("DELETE of a host no longer used: %d %s", r.status, r.body)
	}
	if m := s.waitHosts(key, ids[0], "<nil>"); m["change"].(map[string]any)["status"] != api.ChangeApplied {
		t.Fatalf("deletion not applied: %v", m)
	}
}

// TestDomainHostDeleteNotBlockedByALapsedDomain (review64 R1): an expired
// domain that still names the host cannot be PATCHed (409
// domain_not_active), so it must not make the deletion a 409 host_in_use
// for good. The deletion is recorded and the registry judges it: here the
// registry still has bob.test delegated to the host, so the change fails
// with the registry's reason and the host stays.
func TestDomainHostDeleteNotBlockedByALapsedDomain(t *testing.T) {
	s, _ := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelDomainHosts})
	var ids []string
	for _, n := range []string{"ada.test", "bob.test"} {
		r := s.call(key, "POST", "/v1/domains", `{"name":"`+n+`","nameservers":["ns1.other.test","ns2.other.test"],`+testContact+`}`)
		if r.status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", n, r.status, r.body)
		}
		ids = append(ids, r.m["id"].(string))
	}
	path := "/v1/domains/" + ids[0] + "/hosts/ns1.ada.test"
	if r := s.call(key, "PUT", path, `{"addresses":["8.8.8.8"]}`); r.status != http.StatusAccepted {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	hosts := "[map[addresses:[8.8.8.8] name:ns1.ada.test]]"
	s.waitHosts(key, ids[0], hosts)
	bob := s.call(key, "PATCH", "/v1/domains/"+ids[1], `{"nameservers":["ns1.ada.test","ns2.other.test"]}`)
	if bob.status != http.StatusOK {
		t.Fatalf("PATCH bob.test to the host: %d %s", bob.status, bob.body)
	}
	if r := s.call(key, "DELETE", path, ""); r.status != http.StatusConflict || r.code() != "host_in_use" {
		t.Fatalf("DELETE while active bob.test names the host: %d %s", r.status, r.body)
	}
	exp, err := time.Parse(time.RFC3339Nano, bob.m["expires_at"].(string))
	if err != nil {
		t.Fatalf("bob.test's expires_at: %v %s", err, bob.body)
	}
	env, _ := fsm.NewEnvelope(fsm.CmdDomainSweep, exp.Add(time.Hour), fsm.DomainSweep{Policy: fsm.DomainPolicy{RenewDays: 30}, Domains: []string{ids[1]}})
	if _, err := s.a.Apply(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if r := s.call(key, "GET", "/v1/domains/"+ids[1], ""); r.m["status"] != api.DomainExpired {
		t.Fatalf("bob.test after a sweep past its expiry: %s", r.body)
	}
	if r := s.call(key, "PATCH", "/v1/domains/"+ids[1], `{"nameservers":["ns1.other.test","ns2.other.test"]}`); r.status != http.StatusConflict {
		t.Fatalf("PATCH of the expired bob.test: %d %s (the case this test is about needs it refused)", r.status, r.body)
	}
	if r := s.call(key, "DELETE", path, ""); r.status != http.StatusAccepted {
		t.Fatalf("DELETE with only an expired domain naming the host: %d %s", r.status, r.body)
	}
	m := s.waitHosts(key, ids[0], hosts)
	if ch := m["change"].(map[string]any); ch["status"] != api.ChangeFailed || !strings.Contains(fmt.Sprint(ch["reason"]), "bob.test") {
		t.Fatalf("the registry's refusal is not what the customer sees: %v", ch)
	}
}
