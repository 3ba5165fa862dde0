package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestHostNameInputRule: every host name a customer gives through /v1 (a
// domain to check, quote, register or transfer, a nameserver on an order
// or a PATCH, a PTR host name, a hosting account's domain, a custom domain)
// follows one rule (validate.DomainInput and its siblings): capitals and one
// trailing dot are accepted, the canonical form (lower case, no dot) is
// stored and answered, and the two spellings are one name; two trailing
// dots are a 400 naming the field, with nothing charged or stored. Before,
// a domain to buy with a trailing dot, a PTR host name in capitals, and a
// hosting or custom domain in either form were 400s, while a nameserver
// took both. A hostile name (hostileHostNames: a Unicode capital that
// lower-cases into ASCII, two trailing dots, spaces) is a 400 naming the
// field in every one of them.
func TestHostNameInputRule(t *testing.T) {
	t.Run("registered domains", func(t *testing.T) {
		s, reg := domainAPI(t)
		acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
		s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
		order := func(name string, ns ...string) string {
			b := `{"name":"` + name + `"`
			if ns != nil {
				b += `,"nameservers":["` + strings.Join(ns, `","`) + `"]`
			}
			return b + "," + testContact + "}"
		}
		transfer := func(name string) string {
			return `{"name":"` + name + `","auth_code":"s3cret-Code-42",` + testContact + `}`
		}

		// Two trailing dots, or only a dot, name the field; nothing charged.
		type refusal struct{ method, path, body, field string }
		hostile := []refusal{}
		for _, h := range hostileHostNames {
			hostile = append(hostile,
				refusal{"POST", "/v1/domains/quote", order(h), "name"},
				refusal{"POST", "/v1/domains", order(h), "name"},
				refusal{"POST", "/v1/domains", order("ada.test", "ns1.example.net", h), "nameservers[1]"},
				refusal{"POST", "/v1/domains/transfer", transfer(h), "name"})
		}
		for _, c := range append(hostile, []refusal{
			{"GET", "/v1/domains/check?name=ada.test..", "", "name"},
			{"GET", "/v1/domains/check?name=.", "", "name"},
			{"POST", "/v1/domains/quote", order("Ada.TEST.."), "name"},
			{"POST", "/v1/domains", order("ada.test.."), "name"},
			{"POST", "/v1/domains", order("."), "name"},
			{"POST", "/v1/domains", order("ada.test", "ns1.example.net..", "ns2.example.net"), "nameservers[0]"},
			{"POST", "/v1/domains", order("ada.test", "ns1.example.net", "."), "nameservers[1]"},
			// One name in two spellings is one nameserver.
			{"POST", "/v1/domains", order("ada.test", "ns1.example.net", "NS1.Example.NET."), "nameservers[1]"},
			{"POST", "/v1/domains/transfer", transfer("moved.test.."), "name"},
		}...) {
			r := s.call(key, c.method, c.path, c.body)
			if r.status != http.StatusBadRequest || !strings.Contains(r.msg(), `"`+c.field+`"`) {
				t.Errorf("%s %s %.80s: %d %s, want 400 naming %s", c.method, c.path, c.body, r.status, r.body, c.field)
			}
		}
		if b := s.balance(acc); b != 5000 || reg.Applied() != 0 {
			t.Fatalf("refused input charged or registered: balance %d, registry applied %d", b, reg.Applied())
		}

		// Capitals and a trailing dot: the canonical name answered.
		for _, path := range []string{"/v1/domains/check?name=Ada.TEST.", "/v1/domains/check?name=ada.test."} {
			if r := s.call(key, "GET", path, ""); r.status != 200 || r.m["name"] != "ada.test" || r.m["available"] != true {
				t.Errorf("GET %s: %d %s, want ada.test available", path, r.status, r.body)
			}
		}
		if r := s.call(key, "POST", "/v1/domains/quote", order("ADA.test.")); r.status != 200 || r.m["name"] != "ada.test" {
			t.Errorf("quote of ADA.test.: %d %s", r.status, r.body)
		}
		r := s.call(key, "POST", "/v1/domains", order("Ada.Test.", "NS1.Example.NET.", "ns2.example.net."))
		if r.status != http.StatusCreated || r.m["name"] != "ada.test" || fmt.Sprint(r.m["nameservers"]) != "[ns1.example.net ns2.example.net]" {
			t.Fatalf("register Ada.Test.: %d %s", r.status, r.body)
		}
		id := r.m["id"].(string)
		if info, err := reg.Info(t.Context(), "ada.test"); err != nil || strings.Join(info.Nameservers, ",") != "ns1.example.net,ns2.example.net" {
			t.Fatalf("registry: %+v %v", info, err)
		}
		// The other spellings are the same name: held here.
		for _, name := range []string{"ada.test", "ADA.TEST", "ada.test."} {
			if r := s.call(key, "POST", "/v1/domains", order(name)); r.status != http.StatusConflict || r.code() != "domain_unavailable" {
				t.Errorf("second registration as %s: %d %s", name, r.status, r.body)
			}
		}
		// PATCH nameservers: the same rule.
		for _, h := range append(hostileHostNames, "ns1.other.net..") {
			if r := s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["`+h+`","ns2.other.net"]}`); r.status != 400 || !strings.Contains(r.msg(), `"nameservers[0]"`) {
				t.Errorf("PATCH with nameserver %q: %d %s", h, r.status, r.body)
			}
		}
		r = s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["NS1.Other.Net.","ns2.OTHER.net"]}`)
		if r.status != 200 || fmt.Sprint(r.m["nameservers"]) != "[ns1.other.net ns2.other.net]" {
			t.Fatalf("PATCH nameservers: %d %s", r.status, r.body)
		}

		// Transfer: capitals and a dot move the canonical name.
		if _, err := reg.Register(t.Context(), registrar.RegisterRequest{ClTRID: "other-1", Name: "moved.test", Years: 1, AuthCode: "s3cret-Code-42"}); err != nil {
			t.Fatal(err)
		}
		if r := s.call(key, "POST", "/v1/domains/transfer", transfer("Moved.TEST.")); r.status != 201 || r.m["name"] != "moved.test" {
			t.Fatalf("transfer of Moved.TEST.: %d %s", r.status, r.body)
		}
	})

	t.Run("PTR", func(t *testing.T) {
		s, _, key, id := newServerOwner(t)
		ptr := "/v1/servers/" + id + "/ips/203.0.113.7/ptr"
		for _, h := range append([]string{"mail.example.com..", "Mail.Example.com.."}, hostileHostNames...) {
			if r := s.call(key, "PUT", ptr, `{"hostname":"`+h+`"}`); r.status != 400 || !strings.Contains(r.msg(), `"hostname"`) {
				t.Errorf("PUT %s: %d %s, want 400 naming hostname", h, r.status, r.body)
			}
		}
		for _, h := range []string{"Mail.Example.COM.", "MAIL.EXAMPLE.COM", "mail.example.com."} {
			if r := s.call(key, "PUT", ptr, `{"hostname":"`+h+`"}`); r.status != 200 || r.m["ptr"] != "mail.example.com" {
				t.Errorf("PUT %s: %d %s, want ptr mail.example.com", h, r.status, r.body)
			}
		}
		var stored store.Server
		_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Server(id); return })
		if fmt.Sprint(stored.PTRs) != "map[203.0.113.7:mail.example.com]" {
			t.Fatalf("stored %v", stored.PTRs)
		}
	})

	t.Run("hosting", func(t *testing.T) {
		s, acc, key, hst := hostingOrderAPI(t)
		dns := dnstest.Start(t, "example.test", "hosting.test")
		dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10")
		s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
		base := "/v1/hosting/" + hst + "/custom-domain"
		hosting := func(domain string) string {
			return `{"plan_slug":"web-1","domain":"` + domain + `","username":"shopx"}`
		}

		type refusal struct{ method, path, body string }
		var hostile []refusal
		for _, h := range hostileHostNames {
			hostile = append(hostile, refusal{"POST", "/v1/hosting/quote", hosting(h)}, refusal{"POST", "/v1/hosting", hosting(h)}, refusal{"PUT", base, `{"domain":"` + h + `"}`})
		}
		for _, c := range append(hostile, []refusal{
			{"POST", "/v1/hosting/quote", hosting("shop.example.test..")},
			{"POST", "/v1/hosting", hosting("Shop.example.test..")},
			{"POST", "/v1/hosting", hosting(".")},
			{"PUT", base, `{"domain":"shop.example.test.."}`},
			{"PUT", base, `{"domain":"."}`},
		}...) {
			if r := s.call(key, c.method, c.path, c.body); r.status != 400 || !strings.Contains(r.msg(), `"domain"`) {
				t.Errorf("%s %s %s: %d %s, want 400 naming domain", c.method, c.path, c.body, r.status, r.body)
			}
		}
		if b := s.balance(acc); b != 2500 {
			t.Fatalf("refused input charged: balance %d", b)
		}
		if r := s.call(key, "GET", base, ""); r.status != http.StatusNotFound {
			t.Fatalf("a refused PUT stored a custom domain: %d %s", r.status, r.body)
		}

		// The account's own domain in capitals with a dot is the same name:
		// the quote is the 409 naming it.
		if r := s.call(key, "POST", "/v1/hosting/quote", hosting("ADA.Hosting.TEST.")); r.status != http.StatusConflict || !strings.Contains(r.msg(), "ada.hosting.test") {
			t.Errorf("quote of ADA.Hosting.TEST.: %d %s, want 409 naming ada.hosting.test", r.status, r.body)
		}
		if r := s.call(key, "POST", "/v1/hosting/quote", hosting("Shop.Example.TEST.")); r.status != 200 {
			t.Errorf("quote of Shop.Example.TEST.: %d %s", r.status, r.body)
		}
		if r := s.call(key, "PUT", base, `{"domain":"Shop.Example.TEST."}`); r.status != 200 || r.m["domain"] != "shop.example.test" {
			t.Fatalf("PUT Shop.Example.TEST.: %d %s", r.status, r.body)
		}
		if r := s.call(key, "GET", base, ""); r.status != 200 || r.m["domain"] != "shop.example.test" {
			t.Fatalf("GET after the PUT: %d %s", r.status, r.body)
		}
		r := s.call(key, "POST", "/v1/hosting", hosting("Web.Example.TEST."), "Idempotency-Key", "host-1")
		if r.status != http.StatusCreated {
			t.Fatalf("order on Web.Example.TEST.: %d %s", r.status, r.body)
		}
		if h, _ := r.m["hosting"].(map[string]any); h["domain"] != "web.example.test" {
			t.Fatalf("order on Web.Example.TEST.: %s, want domain web.example.test", r.body)
		}
	})
}
