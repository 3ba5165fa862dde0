package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/domainreg"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

const testContact = `"contact":{"name":"Ada Lovelace","street":["1 Analytical St"],"city":"Istanbul","cc":"TR","email":"ada@example.com","voice":"+90.2125550000"}`

// domainAPI is srvAPI with the registered-domain routes on an in-memory
// registry and the leader's driver running (the registry path itself is
// tested against the EPP server in tests/domains).
func domainAPI(t *testing.T) (*srvAPI, *registrar.Memory) {
	t.Helper()
	return domainAPIVia(t, func(m *registrar.Memory) registrar.Registrar { return m })
}

// domainAPIVia is domainAPI with the leader's driver calling the registry
// through via (the routes' availability checks ask it directly).
func domainAPIVia(t *testing.T, via func(*registrar.Memory) registrar.Registrar) (*srvAPI, *registrar.Memory) {
	t.Helper()
	s := newSrvAPI(t)
	reg := registrar.NewMemory(nil, "test", "com.tr", "xn--p1ai")
	d := &domainreg.Driver{Registrar: via(reg), State: s.node.FSM, Apply: s.a.Apply, Log: slog.New(slog.DiscardHandler),
		RetryInitial: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sealer, err := webhook.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	d.OpenAuthCode, d.ClientID = sealer.Open, "memory"
	s.a.SetDomainDeps(&DomainDeps{Registrar: reg, Kick: d.Kick, Wait: 5 * time.Second, SealAuthCode: sealer.Seal})
	for _, tld := range []string{"test", "com.tr", "xn--p1ai"} {
		s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "domain-" + strings.NewReplacer(".", "-").Replace(tld), Create: true,
			Product: api.ProductRequest{Category: api.ProductDomain, NameEn: "." + tld, Tld: tld, RetailYearlyUsdCents: 1000}})
	}
	return s, reg
}

func (s *srvAPI) balance(acc string) int64 {
	s.t.Helper()
	var a api.Account
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { a, err = r.Account(acc); return })
	return a.BalanceUsdCents
}

// TestDomainRoutes: register from the wallet (201, domain.registered), bad
// input is a 400 naming the field with nothing charged, a name the registry
// has is a 409 with nothing charged, a nameserver change is applied, one the
// registry cannot take is rolled back with the reason, auto_renew is local;
// every answer matches openapi.json.
func TestDomainRoutes(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2500})

	bad := map[string]string{
		`{"name":"a..test",` + testContact + `}`:                                                                 "name",
		`{"name":"-a.test",` + testContact + `}`:                                                                 "name",
		`{"name":"a.example",` + testContact + `}`:                                                               "name", // TLD not offered
		`{"name":"www.a.test",` + testContact + `}`:                                                              "name", // not one label under it
		`{"name":"` + strings.Repeat("a", 64) + `.test",` + testContact + `}`:                                    "name",
		`{"name":"pаypal.test",` + testContact + `}`:                                                             "name", // Cyrillic а among Latin
		`{"name":"a.test","years":11,` + testContact + `}`:                                                       "years",
		`{"name":"a.test","nameservers":["ns1.example.net"],` + testContact + `}`:                                "nameservers",
		`{"name":"a.test","nameservers":["ns1.example.net","bad host"],` + testContact + `}`:                     "nameservers[1]",
		`{"name":"a.test","contact":{"name":"Ada","street":["x"],"city":"c","cc":"tr","email":"a@example.com"}}`: "contact.cc",
		`{"name":"a.test","contact":{"name":"Ada","street":["x"],"city":"c","cc":"XX","email":"a@example.com"}}`: "contact.cc", // user-assigned
		`{"name":"a.test","contact":{"name":"Ada","street":["x"],"city":"c","cc":"YU","email":"a@example.com"}}`: "contact.cc", // withdrawn
		`{"name":"a.test","contact":{"name":"Ada","street":["x"],"city":"c","cc":"TR","email":"nope"}}`:          "contact.email",
		`{"name":"a.test","contact":{"name":"Adä","street":["x"],"city":"c","cc":"TR","email":"a@example.com"}}`: "contact.name",
		`{"name":"a.test"}`: "contact.name",
	}
	for body, field := range bad {
		r := s.call(key, "POST", "/v1/domains", body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.msg(), `"`+field+`"`) {
			t.Errorf("POST %s: %d %s (want 400 naming %s)", body, r.status, r.body, field)
		}
	}
	if b := s.balance(acc); b != 2500 || reg.Applied() != 0 {
		t.Fatalf("refused orders charged or registered: balance %d, registry applied %d", b, reg.Applied())
	}

	r := s.call(key, "GET", "/v1/domains/check?name=ada.test", "")
	if r.status != 200 || r.m["available"] != true || r.m["yearly_usd_cents"] != float64(1000) {
		t.Fatalf("check: %d %s", r.status, r.body)
	}
	if r := s.call(key, "GET", "/v1/domains/check?name=ada.example", ""); r.status != 400 || !strings.Contains(r.msg(), `"name"`) {
		t.Fatalf("check outside the TLDs: %d %s", r.status, r.body)
	}
	r = s.call(key, "POST", "/v1/domains/quote", `{"name":"ada.test","years":3,`+testContact+`}`)
	if r.status != 200 || r.m["available"] != true || r.m["total_usd_cents"] != float64(3000) || r.m["shortfall_usd_cents"] != float64(500) {
		t.Fatalf("quote: %d %s", r.status, r.body)
	}
	if b := s.balance(acc); b != 2500 {
		t.Fatalf("a quote charged: balance %d", b)
	}
	r = s.call(key, "POST", "/v1/domains", `{"name":"ada.test","years":2,"nameservers":["ns1.example.net","NS2.example.net"],`+testContact+`}`, "Idempotency-Key", "reg-1")
	if r.status != http.StatusCreated || r.m["status"] != api.DomainActive || r.m["expires_at"] == nil {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	id := r.m["id"].(string)
	if b := s.balance(acc); b != 500 {
		t.Fatalf("balance %d, want 500", b)
	}
	// The same key again: the first answer, nothing charged twice.
	if r2 := s.call(key, "POST", "/v1/domains", `{"name":"ada.test","years":2,"nameservers":["ns1.example.net","NS2.example.net"],`+testContact+`}`, "Idempotency-Key", "reg-1"); r2.status != http.StatusCreated || !bytes.Equal(r2.body, r.body) || s.balance(acc) != 500 {
		t.Fatalf("replay: %d %s", r2.status, r2.body)
	}
	info, err := reg.Info(context.Background(), "ada.test")
	if err != nil || strings.Join(info.Nameservers, ",") != "ns1.example.net,ns2.example.net" {
		t.Fatalf("registry: %+v %v", info, err)
	}
	if r := s.call(key, "GET", "/v1/domains/check?name=ada.test", ""); r.m["available"] != false {
		t.Fatalf("check of a registered name: %s", r.body)
	}
	if r := s.call(key, "POST", "/v1/domains", `{"name":"ada.test",`+testContact+`}`); r.status != 409 || r.code() != "domain_unavailable" {
		t.Fatalf("second registration: %d %s", r.status, r.body)
	}

	// Nameservers: applied at the registry, then here.
	r = s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.other.net","ns2.other.net"],"transfer_lock":true}`)
	if r.status != 200 || r.m["transfer_lock"] != true || r.m["change"].(map[string]any)["status"] != api.ChangeApplied {
		t.Fatalf("change: %d %s", r.status, r.body)
	}
	if info, _ := reg.Info(context.Background(), "ada.test"); strings.Join(info.Nameservers, ",") != "ns1.other.net,ns2.other.net" || !info.Locked {
		t.Fatalf("registry after the change: %+v", info)
	}
	// The registry down: rolled back with the reason, nothing changed.
	reg.SetDown(true)
	r = s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.third.net","ns2.third.net"]}`)
	if r.status != 409 || r.code() != "change_failed" || !strings.Contains(r.msg(), "could not be reached") {
		t.Fatalf("change with the registry down: %d %s", r.status, r.body)
	}
	r = s.call(key, "GET", "/v1/domains/"+id, "")
	ch := r.m["change"].(map[string]any)
	if ch["status"] != api.ChangeFailed || !strings.Contains(ch["reason"].(string), "registry down") || r.m["nameservers"].([]any)[0] != "ns1.other.net" {
		t.Fatalf("after the rollback: %s", r.body)
	}
	// auto_renew is ours: it needs no registry.
	if r := s.call(key, "PATCH", "/v1/domains/"+id, `{"auto_renew":false}`); r.status != 200 || r.m["auto_renew"] != false {
		t.Fatalf("auto_renew with the registry down: %d %s", r.status, r.body)
	}
	reg.SetDown(false)
	if r := s.call(key, "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.third.net","ns2.third.net"]}`); r.status != 200 || r.m["nameservers"].([]any)[0] != "ns1.third.net" {
		t.Fatalf("change with the registry back: %d %s", r.status, r.body)
	}

	// Short wallet: 402, nothing charged or registered.
	applied := reg.Applied()
	if r := s.call(key, "POST", "/v1/domains", `{"name":"bob.test",`+testContact+`}`); r.status != http.StatusPaymentRequired {
		t.Fatalf("order beyond the wallet: %d %s", r.status, r.body)
	}
	if reg.Applied() != applied || s.balance(acc) != 500 {
		t.Fatal("a refused order reached the registry or the wallet")
	}
	// An IDN under an IDN TLD.
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep2", AccountID: acc, AmountUsdCents: 500})
	r = s.call(key, "POST", "/v1/domains", `{"name":"пример.рф",`+testContact+`}`)
	if r.status != http.StatusCreated || r.m["name"] != "xn--e1afmkfd.xn--p1ai" || r.m["unicode_name"] != "пример.рф" {
		t.Fatalf("IDN: %d %s", r.status, r.body)
	}
	if r := s.call(key, "GET", "/v1/domains", ""); r.status != 200 || r.m["total"] != float64(2) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	// Another account sees none of it.
	_, other := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite)
	if r := s.call(other, "GET", "/v1/domains/"+id, ""); r.status != 404 {
		t.Fatalf("another account's domain: %d", r.status)
	}
	if r := s.call(other, "PATCH", "/v1/domains/"+id, `{"auto_renew":true}`); r.status != 404 {
		t.Fatalf("another account's PATCH: %d", r.status)
	}
}

// TestDomainRegistrationRefusedIsRefunded: a name the registry refuses after
// payment (registered elsewhere between the check and the order) ends
// failed, refunded, with the registry's reason.
func TestDomainRegistrationRefusedIsRefunded(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 1000})
	// The check answers free, the create then meets another registrar's.
	s.a.SetDomainDeps(&DomainDeps{Registrar: raceRegistrar{reg}, Kick: s.a.domainReg.Load().Kick, Wait: 5 * time.Second})
	r := s.call(key, "POST", "/v1/domains", `{"name":"race.test",`+testContact+`}`)
	if r.status != 409 || r.code() != "registration_failed" || !strings.Contains(r.msg(), "object exists") || !strings.Contains(r.msg(), "refunded") {
		t.Fatalf("refused registration: %d %s", r.status, r.body)
	}
	if b := s.balance(acc); b != 1000 {
		t.Fatalf("balance %d after the refund, want 1000", b)
	}
}

// raceRegistrar registers the name elsewhere when it is checked.
type raceRegistrar struct{ *registrar.Memory }

func (r raceRegistrar) Check(ctx context.Context, names ...string) ([]registrar.CheckResult, error) {
	out, err := r.Memory.Check(ctx, names...)
	for _, n := range names {
		_, _ = r.Memory.Register(ctx, registrar.RegisterRequest{ClTRID: "other-" + n, Name: n, Years: 1})
	}
	return out, err
}

// TestDomainTransfer: a domain registered elsewhere moves here with its auth
// code, paid for a year that the registry adds to its expiry; a wrong code
// is refused by the registry and refunded; a name the registry does not know
// is a 409 with nothing charged; the auth code is never stored in the clear.
func TestDomainTransfer(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 1000})
	ctx := context.Background()
	elsewhere, err := reg.Register(ctx, registrar.RegisterRequest{ClTRID: "other-1", Name: "moved.test", Years: 1, AuthCode: "s3cret-Code-42"})
	if err != nil {
		t.Fatal(err)
	}
	body := func(name, code string) string {
		return `{"name":"` + name + `","auth_code":"` + code + `",` + testContact + `}`
	}
	for b, field := range map[string]string{body("moved.test", ""): "auth_code", body("moved.test", "a b"): "auth_code", body("moved.example", "x"): "name"} {
		if r := s.call(key, "POST", "/v1/domains/transfer", b); r.status != 400 || !strings.Contains(r.msg(), `"`+field+`"`) {
			t.Errorf("POST %s: %d %s", b, r.status, r.body)
		}
	}
	if r := s.call(key, "POST", "/v1/domains/transfer", body("nowhere.test", "x1")); r.status != 409 || r.code() != "domain_not_registered" {
		t.Fatalf("transfer of an unregistered name: %d %s", r.status, r.body)
	}
	r := s.call(key, "POST", "/v1/domains/transfer", body("moved.test", "wrong-code"))
	if r.status != 409 || r.code() != "transfer_failed" || !strings.Contains(r.msg(), "invalid authorization") || !strings.Contains(r.msg(), "refunded") {
		t.Fatalf("wrong auth code: %d %s", r.status, r.body)
	}
	if b := s.balance(acc); b != 1000 {
		t.Fatalf("balance %d after the refused transfer", b)
	}
	r = s.call(key, "POST", "/v1/domains/transfer", body("moved.test", "s3cret-Code-42"))
	if r.status != 201 || r.m["status"] != api.DomainActive {
		t.Fatalf("transfer: %d %s", r.status, r.body)
	}
	exp, _ := time.Parse(time.RFC3339Nano, r.m["expires_at"].(string))
	if !exp.Equal(elsewhere.Expires.AddDate(1, 0, 0)) || s.balance(acc) != 0 {
		t.Fatalf("expiry %v (registered elsewhere until %v), balance %d", exp, elsewhere.Expires, s.balance(acc))
	}
	// Neither the replicated state nor the Raft log holds a code in the clear.
	// The Raft log is the WAL's files (segments and wal-meta.db) under raft-wal/.
	wal, err := filepath.Glob(filepath.Join(s.dir, "raft-wal", "*"))
	if err != nil || len(wal) == 0 {
		t.Fatalf("no Raft log files under raft-wal/: %v", err)
	}
	for _, f := range append([]string{filepath.Join(s.dir, "fsm.db")}, wal...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("s3cret-Code-42")) || bytes.Contains(raw, []byte("wrong-code")) {
			t.Fatalf("%s holds an auth code in the clear", f)
		}
	}
}

func FuzzDecodeDomainTransfer(f *testing.F) {
	seeds := []string{`{"name":"a.test","auth_code":"x1",` + testContact + `}`, `{"name":"a.test","auth_code":"",` + testContact + `}`,
		`{"name":"a.test","auth_code":"a b"}`, `{`, ``, `null`}
	fuzzDecoder(f, seeds, DecodeDomainTransfer, func(t *testing.T, req api.DomainTransferRequest) {
		if a, err := validate.Domain(req.Name); err != nil || a != req.Name || req.AuthCode == "" || !printableASCII(req.AuthCode) || len(req.AuthCode) > 64 {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func FuzzDecodeDomainOrder(f *testing.F) {
	seeds := []string{
		`{"name":"example.test","years":2,"nameservers":["ns1.example.net","ns2.example.net"],` + testContact + `}`,
		`{"name":"пример.рф",` + testContact + `}`, `{"name":"xn--e1afmkfd.xn--p1ai",` + testContact + `}`,
		`{"name":"a--b.test",` + testContact + `}`, `{"name":"a.test","years":0,` + testContact + `}`,
		`{"name":"a.test","contact":{"name":"x","street":["1","2","3","4"],"city":"c","cc":"TR","email":"a@b.co"}}`,
		`{"name":"a.test","nameservers":[],` + testContact + `}`, `{`, ``, `null`, `[]`,
		`{"name":"Example.TEST.","nameservers":["NS1.Example.net.","ns2.example.net"],` + testContact + `}`,
		`{"name":"example.test..",` + testContact + `}`, `{"name":".",` + testContact + `}`,
		`{"name":"a.test","nameservers":["ns1.example.net","NS1.EXAMPLE.NET."],` + testContact + `}`,
	}
	fuzzDecoder(f, seeds, DecodeDomainOrder, func(t *testing.T, req api.DomainOrderRequest) {
		// What passes is canonical: the ASCII form Domain gives back unchanged
		// (lower case, no trailing dot).
		if a, err := validate.Domain(req.Name); err != nil || a != req.Name || req.Years < 1 || req.Years > fsm.MaxDomainYears {
			t.Fatalf("accepted %+v", req)
		}
		if n, err := requestedDomainName(otherSpelling(req.Name)); err != nil || n != req.Name {
			t.Fatalf("name %q spelled %q: %q %v", req.Name, otherSpelling(req.Name), n, err)
		}
		if req.Nameservers != nil && (len(req.Nameservers) < 2 || len(req.Nameservers) > 13) {
			t.Fatalf("accepted nameservers %v", req.Nameservers)
		}
		for i, ns := range req.Nameservers {
			if a, err := validate.Domain(ns); err != nil || a != ns || slices.Contains(req.Nameservers[:i], ns) {
				t.Fatalf("accepted nameserver %q of %v", ns, req.Nameservers)
			}
		}
		if req.Nameservers != nil {
			other := make([]string, len(req.Nameservers))
			for i, ns := range req.Nameservers {
				other[i] = otherSpelling(ns)
			}
			if ns, err := domainNameservers(other); err != nil || !slices.Equal(ns, req.Nameservers) {
				t.Fatalf("nameservers %v spelled %v: %v %v", req.Nameservers, other, ns, err)
			}
		}
		if domainContact(req.Contact) != nil {
			t.Fatalf("accepted contact %+v", req.Contact)
		}
	})
}

func FuzzDecodeDomainUpdate(f *testing.F) {
	seeds := []string{`{"auto_renew":true}`, `{"nameservers":["ns1.example.com","ns2.example.com"]}`,
		`{"transfer_lock":false,"whois_privacy":true}`, `{}`, `{"nameservers":["a","a"]}`, `{`, ``, `null`}
	seeds = append(seeds, `{"nameservers":["NS1.Example.com.","ns2.example.com"]}`, `{"nameservers":["ns1.example.com..","ns2.example.com"]}`,
		`{"nameservers":["ns1.example.com","NS1.example.com."]}`)
	fuzzDecoder(f, seeds, DecodeDomainUpdate, func(t *testing.T, req api.DomainUpdateRequest) {
		if req.AutoRenew == nil && req.TransferLock == nil && req.WhoisPrivacy == nil && req.Nameservers == nil {
			t.Fatalf("accepted an empty change")
		}
		if req.Nameservers != nil && (len(req.Nameservers) < 2 || len(req.Nameservers) > 13) {
			t.Fatalf("accepted nameservers %v", req.Nameservers)
		}
		for i, ns := range req.Nameservers {
			if a, err := validate.Domain(ns); err != nil || a != ns || slices.Contains(req.Nameservers[:i], ns) {
				t.Fatalf("accepted nameserver %q of %v", ns, req.Nameservers)
			}
		}
	})
}

// TestDomainsNotOffered: a provider without a registrar answers the routes that
// need one with 404 domains_not_offered (documented; not a 503, which tells
// clients to retry), charges nothing, and still lists the account's domains.
func TestDomainsNotOffered(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2500})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/domains", `{"name":"ada.test","years":1,` + testContact + `}`},
		{"POST", "/v1/domains/quote", `{"name":"ada.test","years":1,` + testContact + `}`},
		{"GET", "/v1/domains/check?name=ada.test", ""},
		{"POST", "/v1/domains/transfer", `{"name":"ada.test","auth_code":"Xy12-ab!cd",` + testContact + `}`},
	} {
		r := s.call(key, c.method, c.path, c.body)
		if r.status != http.StatusNotFound || r.code() != "domains_not_offered" {
			t.Errorf("%s %s without a registrar: %d %s, want 404 domains_not_offered", c.method, c.path, r.status, r.body)
		}
	}
	if b := s.balance(acc); b != 2500 {
		t.Fatalf("balance %d after refused orders, want 2500", b)
	}
	if r := s.call(key, "GET", "/v1/domains", ""); r.status != 200 {
		t.Fatalf("list without a registrar: %d %s", r.status, r.body)
	}
}

// TestDecodeDomainOrderYears: an omitted years is one year; a years sent as
// 0 or null is a client's mistake, a 400 naming years, not a year billed.
func TestDecodeDomainOrderYears(t *testing.T) {
	req, err := DecodeDomainOrder([]byte(`{"name":"a.test",` + testContact + `}`))
	if err != nil || req.Years != 1 {
		t.Fatalf("years omitted: %+v %v, want 1", req, err)
	}
	for _, y := range []string{"0", "null", "-1", "11"} {
		_, err := DecodeDomainOrder([]byte(`{"name":"a.test","years":` + y + `,` + testContact + `}`))
		if err == nil || !strings.Contains(err.Error(), `"years"`) {
			t.Errorf("years %s: %v, want a 400 naming years", y, err)
		}
	}
}
