package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestInBailiwickNameserversRefused: a name server inside the domain it
// serves (ns1.ada.test for ada.test, or ada.test itself), on an order, a
// quote or a PATCH, is a 400 naming it, with nothing charged, registered or
// recorded: a registry takes such a host only with glue addresses (tests/eppd
// refuses it as a real registry does), which the API does not take. Before,
// it was accepted and paid for, and a real registry refused the registration
// afterwards. A name server under another domain, or one that only ends in
// the same letters (ns1.xada.test), is accepted.
func TestInBailiwickNameserversRefused(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
	order := func(name string, ns ...string) string {
		return `{"name":"` + name + `","nameservers":["` + strings.Join(ns, `","`) + `"],` + testContact + `}`
	}
	for _, c := range []struct {
		body, field, host string
	}{
		{order("ada.test", "ns1.ada.test", "ns2.example.net"), "nameservers[0]", "ns1.ada.test"},
		{order("ada.test", "ns1.example.net", "a.b.ada.test"), "nameservers[1]", "a.b.ada.test"},
		{order("ada.test", "ns1.example.net", "ada.test"), "nameservers[1]", "ada.test"},
		// The host-name input rule first: capitals and a dot are the same host.
		{order("Ada.TEST.", "ns1.example.net", "NS2.Ada.Test."), "nameservers[1]", "ns2.ada.test"},
		{order("пример.рф", "ns1.example.net", "ns.xn--e1afmkfd.xn--p1ai"), "nameservers[1]", "ns.xn--e1afmkfd.xn--p1ai"},
	} {
		for _, path := range []string{"/v1/domains/quote", "/v1/domains"} {
			r := s.call(key, "POST", path, c.body)
			if r.status != http.StatusBadRequest || !strings.Contains(r.msg(), `"`+c.field+`"`) || !strings.Contains(r.msg(), c.host+" is inside") ||
				!strings.Contains(r.msg(), "glue") {
				t.Errorf("POST %s %s: %d %s, want 400 naming %s", path, c.body, r.status, r.body, c.field)
			}
		}
	}
	if b := s.balance(acc); b != 5000 || reg.Applied() != 0 {
		t.Fatalf("refused orders charged or registered: balance %d, registry applied %d", b, reg.Applied())
	}

	r := s.call(key, "POST", "/v1/domains", order("ada.test", "ns1.xada.test", "ns2.other.test"))
	if r.status != http.StatusCreated || fmt.Sprint(r.m["nameservers"]) != "[ns1.xada.test ns2.other.test]" {
		t.Fatalf("register with name servers outside it: %d %s", r.status, r.body)
	}
	id := r.m["id"].(string)
	applied := reg.Applied()
	for i, ns := range []string{`["ns1.ada.test","ns2.other.test"]`, `["ns1.other.test","ADA.TEST."]`} {
		r := s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":`+ns+`}`)
		if r.status != http.StatusBadRequest || !strings.Contains(r.msg(), fmt.Sprintf(`"nameservers[%d]"`, i)) {
			t.Errorf("PATCH %s: %d %s, want 400 naming nameservers[%d]", ns, r.status, r.body, i)
		}
	}
	if r := s.call(key, "GET", "/v1/domains/"+id, ""); fmt.Sprint(r.m["nameservers"]) != "[ns1.xada.test ns2.other.test]" || r.m["change"] != nil || reg.Applied() != applied {
		t.Fatalf("a refused PATCH changed something: %s (registry applied %d, was %d)", r.body, reg.Applied(), applied)
	}
}
