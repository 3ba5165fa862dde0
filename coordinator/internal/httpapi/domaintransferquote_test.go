package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDomainTransferQuote: POST /v1/domains/transfer/quote, through HTTP
// (every answer checked against openapi.json), refuses what the transfer
// refuses and with the same answer (403 without orders:write, 400 naming
// the field, 409 domain_not_registered, 409 domain_unavailable), prices a
// good body at one year of the caller's price with what the wallet lacks,
// and changes nothing: no charge, no domain, the registry untouched. The
// transfer placed afterwards charges the quoted total.
func TestDomainTransferQuote(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeOrdersWrite)
	_, readOnly := s.account(api.ScopeDomainsRead)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 1500})
	if _, err := reg.Register(context.Background(), registrar.RegisterRequest{ClTRID: "other-1", Name: "moved.test", Years: 1, AuthCode: "s3cret-Code-42"}); err != nil {
		t.Fatal(err)
	}
	applied := reg.Applied()
	body := func(name, code string) string {
		return `{"name":"` + name + `","auth_code":"` + code + `",` + testContact + `}`
	}
	domains := func() int {
		t.Helper()
		r := s.call(key, "GET", "/v1/domains", "")
		data, _ := r.m["data"].([]any)
		if r.status != 200 {
			t.Fatalf("GET /v1/domains: %d %s", r.status, r.body)
		}
		return len(data)
	}
	unchanged := func(what string) {
		t.Helper()
		if b, n, a := s.balance(acc), domains(), reg.Applied(); b != 1500 || n != 0 || a != applied {
			t.Fatalf("after %s: balance %d, %d domains, registry applied %d (was %d); want nothing changed", what, b, n, a, applied)
		}
	}

	if r := s.call(readOnly, "POST", "/v1/domains/transfer/quote", body("moved.test", "s3cret-Code-42")); r.status != http.StatusForbidden || !strings.Contains(r.msg(), api.ScopeOrdersWrite) {
		t.Errorf("quote without orders:write: %d %s; want 403 naming orders:write", r.status, r.body)
	}
	for b, field := range map[string]string{
		body("moved.test", ""):                  "auth_code",
		body("moved.test", "a b"):               "auth_code",
		body("moved.example", "x"):              "name",
		body("a..test", "x"):                    "name",
		`{"name":"moved.test","auth_code":"x"}`: "contact.name",
		`{"name":"moved.test","auth_code":"x","extra":1,` + testContact + `}`: "extra",
	} {
		q := s.call(key, "POST", "/v1/domains/transfer/quote", b)
		tr := s.call(key, "POST", "/v1/domains/transfer", b)
		if q.status != http.StatusBadRequest || !strings.Contains(q.msg(), `"`+field+`"`) {
			t.Errorf("quote %s: %d %s; want 400 naming %s", b, q.status, q.body, field)
		}
		if tr.status != q.status || tr.code() != q.code() || tr.msg() != q.msg() {
			t.Errorf("%s: the quote answers %d %s, the transfer %d %s; want the same refusal", b, q.status, q.body, tr.status, tr.body)
		}
	}
	for _, c := range []struct{ name, code string }{{"nowhere.test", "domain_not_registered"}} {
		q := s.call(key, "POST", "/v1/domains/transfer/quote", body(c.name, "x1"))
		if q.status != http.StatusConflict || q.code() != c.code {
			t.Errorf("quote of %s: %d %s; want 409 %s", c.name, q.status, q.body, c.code)
		}
	}
	unchanged("the refused quotes and transfers")

	r := s.call(key, "POST", "/v1/domains/transfer/quote", body("Moved.TEST", "s3cret-Code-42"))
	if r.status != 200 || r.m["name"] != "moved.test" || r.m["tld"] != "test" || r.m["years"] != float64(1) || r.m["yearly_usd_cents"] != float64(1000) ||
		r.m["total_usd_cents"] != float64(1000) || r.m["balance_usd_cents"] != float64(1500) || r.m["shortfall_usd_cents"] != float64(0) {
		t.Fatalf("quote: %d %s; want moved.test, 1 year at 1000, balance 1500, no shortfall", r.status, r.body)
	}
	unchanged("a quote")

	// The transfer charges what the quote said; then the name is held here,
	// and a quote for it is the transfer's 409 domain_unavailable.
	if r := s.call(key, "POST", "/v1/domains/transfer", body("moved.test", "s3cret-Code-42")); r.status != 201 {
		t.Fatalf("transfer: %d %s", r.status, r.body)
	}
	if b := s.balance(acc); b != 1500-1000 {
		t.Fatalf("balance %d after the transfer; the quote said 1000 of 1500", b)
	}
	q := s.call(key, "POST", "/v1/domains/transfer/quote", body("moved.test", "s3cret-Code-42"))
	tr := s.call(key, "POST", "/v1/domains/transfer", body("moved.test", "s3cret-Code-42"))
	if q.status != http.StatusConflict || q.code() != "domain_unavailable" || tr.status != q.status || tr.code() != q.code() {
		t.Fatalf("quote of a name held here: %d %s; the transfer: %d %s; want both 409 domain_unavailable", q.status, q.body, tr.status, tr.body)
	}
	// The shortfall of a wallet that cannot pay.
	reg2, err := reg.Register(context.Background(), registrar.RegisterRequest{ClTRID: "other-2", Name: "second.test", Years: 1, AuthCode: "c0de"})
	if err != nil || reg2.Name == "" {
		t.Fatal(err)
	}
	if r := s.call(key, "POST", "/v1/domains/transfer/quote", body("second.test", "c0de")); r.status != 200 || r.m["balance_usd_cents"] != float64(500) || r.m["shortfall_usd_cents"] != float64(500) {
		t.Fatalf("quote with 500 in the wallet: %d %s; want a shortfall of 500", r.status, r.body)
	}
}

// TestDomainTransferQuoteNotOffered: without transfers (no registrar, or
// no key-encryption key to seal auth codes) the quote is the transfer's 404.
func TestDomainTransferQuoteNotOffered(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeOrdersWrite)
	b := `{"name":"moved.test","auth_code":"x",` + testContact + `}`
	for _, deps := range []*DomainDeps{nil, {Registrar: registrar.NewMemory(nil, "test")}} {
		if deps != nil {
			s.a.SetDomainDeps(deps)
		}
		q := s.call(key, "POST", "/v1/domains/transfer/quote", b)
		tr := s.call(key, "POST", "/v1/domains/transfer", b)
		if q.status != 404 || q.code() != "domains_not_offered" || tr.status != 404 || tr.msg() != q.msg() {
			t.Errorf("deps %+v: quote %d %s, transfer %d %s; want the same 404 domains_not_offered", deps, q.status, q.body, tr.status, tr.body)
		}
	}
}
