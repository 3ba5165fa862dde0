package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// TestReservedDomainRule: a reserved name as an operator writes it is
// taken in its canonical form (lower case, no trailing dot, punycode), and
// it covers itself and every subdomain, in the form validate.HostingDomain
// gives a customer's domain; whole labels only (notprovider.example is not
// under provider.example); a non-domain is refused. The rule is a
// customer's domain's (validate.DomainInput): ASCII capitals and one
// trailing dot folded. (Changed in stop 56: spaces around the name and
// non-ASCII capitals, BÜCHER.example and ПРИМЕР.рф, were folded by
// strings.TrimSpace and strings.ToLower, which also read U+212A KELVIN SIGN
// as "k"; they are refused now, as for a customer. The --reserved-domains
// list is split with its entries' spaces trimmed, conflayer.SplitList.)
func TestReservedDomainRule(t *testing.T) {
	var reserved []string
	for _, in := range []string{"Provider.Example.", "panel.example", "bücher.example", "пример.рф"} {
		d, err := ReservedDomain(in)
		if err != nil {
			t.Fatalf("ReservedDomain(%q): %v", in, err)
		}
		reserved = append(reserved, d)
	}
	if want := []string{"provider.example", "panel.example", "xn--bcher-kva.example", "xn--e1afmkfd.xn--p1ai"}; strings.Join(reserved, " ") != strings.Join(want, " ") {
		t.Fatalf("canonical forms %q, want %q", reserved, want)
	}
	for _, bad := range []string{"", "localhost", "a..example", "*.provider.example", "192.0.2.1", "provider.example/x",
		" panel.example ", "BÜCHER.example", "ПРИМЕР.рф", "\u212aprovider.example", "provider.example..", "pro vider.example"} {
		if d, err := ReservedDomain(bad); err == nil {
			t.Errorf("ReservedDomain(%q) = %q, want an error", bad, d)
		}
	}
	for domain, by := range map[string]string{
		"provider.example":          "provider.example",
		"www.provider.example":      "provider.example",
		"a.b.c.provider.example":    "provider.example",
		"panel.example":             "panel.example",
		"bücher.example":            "xn--bcher-kva.example",
		"shop.bücher.example":       "xn--bcher-kva.example",
		"xn--bcher-kva.example":     "xn--bcher-kva.example",
		"www.пример.рф":             "xn--e1afmkfd.xn--p1ai",
		"notprovider.example":       "",
		"provider.example.com":      "",
		"provider-example.com":      "",
		"xprovider.example":         "",
		"bucher.example":            "",
		"example":                   "", // not a hosting domain at all (below)
		"panel.example.provider.io": "",
	} {
		ascii, err := validate.HostingDomain(domain)
		if err != nil {
			if domain == "example" {
				continue
			}
			t.Fatalf("HostingDomain(%q): %v", domain, err)
		}
		if got := reservedBy(ascii, reserved); got != by {
			t.Errorf("reservedBy(%q) = %q, want %q", ascii, got, by)
		}
	}
	// The customer's other spellings (capitals, a trailing dot) are folded
	// to the canonical name before it is looked up (the host-name input
	// rule, validate.HostingDomainInput): reserved all the same.
	for d, ascii := range map[string]string{"WWW.Provider.Example": "www.provider.example", "provider.example.": "provider.example"} {
		got, err := DecodeCustomDomain([]byte(`{"domain":"` + d + `"}`))
		if err != nil || got != ascii || reservedBy(got, reserved) != "provider.example" {
			t.Errorf("custom domain %q: %q %v, want %s, reserved by provider.example", d, got, err, ascii)
		}
	}
}

// TestReservedDomainsRefused: through the API, a hosting order, a hosting
// quote and a custom-domain PUT of a reserved name (--reserved-domains or
// an enrolled node's hostname) or a subdomain of one are 409
// domain_reserved naming domain; nothing is charged (wallet, invoices),
// no hosting account or custom domain is recorded. A near miss is priced
// and attached as before.
func TestReservedDomainsRefused(t *testing.T) {
	s := newSrvAPI(t)
	dns := dnstest.Start(t, "example.test", "hosting.test")
	dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10")
	s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
	s.a.cfg.ReservedDomains = []string{"provider.test", "xn--bcher-kva.test"}
	now := time.Now()
	s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_hn", Hash: "hn", ExpiresAt: now.Add(time.Hour)})
	s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_hn", TokenHash: "hn", NodeID: "hv-named", Hostname: "HV7.DC.Example.test.",
		CertSerial: "sn", CertNotAfter: now.Add(24 * time.Hour)})
	s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "web-1", Create: true, Product: api.ProductRequest{Category: api.ProductHosting,
		NameEn: "Web 1", RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{Hosting: &api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 96, MaxExecutionSeconds: 20, UploadMiB: 16, DiskMiB: 2048}}}})
	acc, key := s.account(api.ScopeOrdersWrite, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeBillingRead)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2500})
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	counts := func() (hosting, invoices int) {
		_ = s.node.FSM.Read(func(r store.ReadTx) error {
			hs, _ := r.AllHostingAccounts()
			_, n, _ := r.Invoices(acc, 0, 1)
			hosting, invoices = len(hs), n
			return nil
		})
		return
	}
	hosting0, invoices0 := counts()

	refused := func(what string, r reply, domain string) {
		t.Helper()
		if r.status != http.StatusConflict || r.code() != "domain_reserved" || !strings.Contains(r.msg(), `field "domain"`) || !strings.Contains(r.msg(), domain) {
			t.Errorf("%s %s: %d %s, want 409 domain_reserved naming domain", what, domain, r.status, r.body)
		}
	}
	for i, d := range []string{"provider.test", "www.provider.test", "bücher.test", "shop.xn--bcher-kva.test", "hv7.dc.example.test", "www.hv7.dc.example.test",
		"WWW.Provider.TEST.", "HV7.dc.example.test."} {
		ascii, _ := validate.HostingDomainInput(d)
		body := `{"plan_slug":"web-1","domain":"` + d + `","username":"shopx"}`
		refused("quote", s.call(key, "POST", "/v1/hosting/quote", body), ascii)
		refused("order", s.call(key, "POST", "/v1/hosting", body, "Idempotency-Key", fmt.Sprintf("reserved-%d", i)), ascii)
		refused("custom domain", s.call(key, "PUT", "/v1/hosting/"+hst+"/custom-domain", `{"domain":"`+d+`"}`), ascii)
	}
	if b := s.balance(acc); b != 2500 {
		t.Errorf("balance %d after the refusals, want 2500 (nothing charged)", b)
	}
	if h, i := counts(); h != hosting0 || i != invoices0 {
		t.Errorf("hosting accounts %d→%d, invoices %d→%d after the refusals, want unchanged", hosting0, h, invoices0, i)
	}
	if r := s.call(key, "GET", "/v1/hosting/"+hst+"/custom-domain", ""); r.status != http.StatusNotFound {
		t.Errorf("custom domain after the refusals: %d %s, want 404 (none recorded)", r.status, r.body)
	}

	// Near misses: priced, and attached (pending).
	if r := s.call(key, "POST", "/v1/hosting/quote", `{"plan_slug":"web-1","domain":"notprovider.test","username":"shopx"}`); r.status != http.StatusOK {
		t.Errorf("quote of notprovider.test: %d %s, want 200", r.status, r.body)
	}
	if r := s.call(key, "PUT", "/v1/hosting/"+hst+"/custom-domain", `{"domain":"provider.test.example.test"}`); r.status != http.StatusOK {
		t.Errorf("custom domain provider.test.example.test: %d %s, want 200", r.status, r.body)
	}
}

// FuzzReservedDomain: the reserved-domains reader never panics, and what it
// takes is canonical (taken again unchanged) and covers itself and its
// subdomains only.
func FuzzReservedDomain(f *testing.F) {
	for _, s := range []string{"Provider.Example.", "bücher.example", "xn--bcher-kva.example", "a..b", "", ".", "*.x.example", "ПРИМЕР.рф"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ReservedDomain(s)
		if err != nil {
			return
		}
		if again, err := ReservedDomain(d); err != nil || again != d {
			t.Fatalf("%q → %q → %q %v: not canonical", s, d, again, err)
		}
		if reservedBy(d, []string{d}) != d || reservedBy("www."+d, []string{d}) != d || reservedBy("x"+d, []string{d}) != "" {
			t.Fatalf("%q: reservedBy does not cover exactly it and its subdomains", d)
		}
	})
}

// TestReservedAfterAttachIsNotVerified: a custom domain attached before its
// name was reserved (the operator added it to --reserved-domains, or a node
// with that hostname enrolled, meanwhile) is not verified: the verify is the
// 409 domain_reserved as the PUT would be now, and the domain stays pending.
// Before, only a new PUT, order or quote was checked.
func TestReservedAfterAttachIsNotVerified(t *testing.T) {
	s := newSrvAPI(t)
	dns := dnstest.Start(t, "example.test", "hosting.test")
	dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10")
	s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
	acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	for i, reserve := range []func(){
		func() { s.a.cfg.ReservedDomains = []string{"later.example.test"} },
		func() {
			now := time.Now()
			s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_later", Hash: "hl", ExpiresAt: now.Add(time.Hour)})
			s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_later", TokenHash: "hl", NodeID: "hv-later", Hostname: "hv9.example.test",
				CertSerial: "sl", CertNotAfter: now.Add(24 * time.Hour)})
		},
	} {
		domain := []string{"shop.later.example.test", "hv9.example.test"}[i]
		s.a.cfg.ReservedDomains = nil
		put := s.call(key, "PUT", "/v1/hosting/"+hst+"/custom-domain", `{"domain":"`+domain+`"}`)
		var attached api.CustomDomain
		if err := json.Unmarshal(put.body, &attached); put.status != http.StatusOK || err != nil {
			t.Fatalf("attach %s before it is reserved: %d %s", domain, put.status, put.body)
		}
		// Its DNS is ready: without the reservation the verify would pass.
		for _, rec := range attached.Records {
			switch rec.Type {
			case "TXT":
				dns.Add(t, rec.Name+". 60 IN TXT \""+rec.Value+"\"")
			case "A":
				dns.Add(t, rec.Name+". 60 IN A "+rec.Value)
			}
		}
		reserve()
		r := s.call(key, "POST", "/v1/hosting/"+hst+"/custom-domain/verify", "")
		if r.status != http.StatusConflict || r.code() != "domain_reserved" || !strings.Contains(r.msg(), domain) {
			t.Errorf("verify %s after it was reserved: %d %s, want 409 domain_reserved", domain, r.status, r.body)
		}
		var cd api.CustomDomain
		g := s.call(key, "GET", "/v1/hosting/"+hst+"/custom-domain", "")
		if err := json.Unmarshal(g.body, &cd); err != nil || cd.Domain != domain || cd.Status == "verified" || cd.Status == "active" {
			t.Errorf("custom domain after the refused verify: %d %s", g.status, g.body)
		}
		if r := s.call(key, "DELETE", "/v1/hosting/"+hst+"/custom-domain", ""); r.status >= 300 {
			t.Fatalf("detach %s: %d %s", domain, r.status, r.body)
		}
	}
}

// TestReservedSetFollowsHostnames: the reserved-name set domainNotReserved
// keeps is rebuilt when a node's hostname changes (a hello reporting
// another one, as an enrolment is: TestReservedAfterAttachIsNotVerified)
// and when the configured list does; between those it is the same set.
func TestReservedSetFollowsHostnames(t *testing.T) {
	s := newSrvAPI(t)
	reserved := func(d string) bool {
		err := s.a.domainNotReserved(d)
		var he *httpError
		return errors.As(err, &he) && he.code == "domain_reserved"
	}
	hello := func(hostname string) {
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-secret-node", CertSerial: "s1", Hostname: hostname, Roles: []string{"kvm"}, ProtocolVersion: 103,
			Capacity: api.AgentNodeCapacity{VCPUs: 8, MemoryBytes: 8 << 30, DiskBytes: 1 << 40}})
	}
	hello("hv1.nodes.test")
	if !reserved("hv1.nodes.test") || !reserved("www.hv1.nodes.test") || reserved("hv2.nodes.test") {
		t.Fatal("after the first hello: hv1.nodes.test not reserved, or hv2 is")
	}
	first := s.a.reserved.Load()
	if reserved("other.test"); s.a.reserved.Load() != first {
		t.Error("the set was rebuilt with nothing changed")
	}
	hello("hv2.nodes.test")
	if reserved("hv1.nodes.test") || !reserved("hv2.nodes.test") {
		t.Error("after a hello with another hostname: the old one still reserved, or the new one not")
	}
	s.a.cfg.ReservedDomains = []string{"provider.test"}
	if !reserved("shop.provider.test") || !reserved("hv2.nodes.test") {
		t.Error("after the configured list changed: provider.test or the node's hostname not reserved")
	}
}
