package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestUnkeyedRequestsSpendTheAddressBudget: every kind of /v1 answer to a
// request without a valid key (none, malformed, unknown, revoked, expired,
// two keys, a key used from outside its allow-list, the public GET
// /v1/scopes, an unknown path, a wrong method) and GET /openapi.json carries
// X-RateLimit-* describing the client address's budget, each counting it
// down; a key's requests from the same address, interleaved, count down the
// key's budget alone, and the address's count does not move for them. Past
// the address's budget every such request is a 429 rate_limited with
// Retry-After (the public route serves nothing), while the valid key still
// gets its 200 with its own figures, on a keyed route and on the public one.
// A 400 for ?consistency= and a brand-mismatch 503 carry the figures
// uncounted.
func TestUnkeyedRequestsSpendTheAddressBudget(t *testing.T) {
	w := newWHAPI(t)
	const budget, keyLimit = 14, 100
	w.a.cfg.IPRateLimit = budget
	now := time.Now()
	acc := w.newAccount()
	key := func(k fsm.KeyCreate) (string, string) {
		k.Scopes = []string{api.ScopeAccountRead}
		id, plain := w.addKey(acc, k)
		return plain, id
	}
	valid, _ := key(fsm.KeyCreate{RateLimitPerMin: keyLimit})
	revoked, revokedID := key(fsm.KeyCreate{})
	w.apply(fsm.CmdKeyRevoke, fsm.KeyRevoke{ID: revokedID})
	past := now.Add(-time.Hour)
	expired, _ := key(fsm.KeyCreate{ExpiresAt: &past})
	elsewhere, _ := key(fsm.KeyCreate{AllowedCIDRs: []string{"10.0.0.0/8"}}) // the test calls from 127.0.0.1
	unknown, _, _ := auth.NewKey("snc_")

	// openapiDoc is GET /openapi.json (not a /v1 path: the validating
	// client does not check it).
	openapiDoc := func(key string) framework.Reply {
		resp, body := w.rawGet("/openapi.json", key)
		return framework.Reply{Method: "GET", Path: "/openapi.json", Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	type ask struct {
		name, key, method, path string
		hdr                     map[string]string
		status                  int
		code                    string
	}
	call := func(q ask) framework.Reply {
		if q.path == "/openapi.json" {
			return openapiDoc(q.key)
		}
		return w.api.Call(q.key, q.method, q.path, nil, q.hdr)
	}
	asks := []ask{
		{name: "no key", method: "GET", path: "/v1/account", status: 401, code: "missing_api_key"},
		{name: "a malformed key", key: "snc_nope", method: "GET", path: "/v1/account", status: 401, code: "invalid_api_key"},
		{name: "an unknown key", key: unknown, method: "GET", path: "/v1/account", status: 401, code: "invalid_api_key"},
		{name: "a revoked key", key: revoked, method: "GET", path: "/v1/account", status: 401, code: "revoked_api_key"},
		{name: "an expired key", key: expired, method: "GET", path: "/v1/account", status: 401, code: "expired_api_key"},
		{name: "two keys", key: valid, method: "GET", path: "/v1/account", hdr: map[string]string{"X-API-Key": unknown}, status: 400, code: "conflicting_credentials"},
		{name: "a key from outside its allow-list", key: elsewhere, method: "GET", path: "/v1/account", status: 403, code: "ip_not_allowed"},
		{name: "the public route", method: "GET", path: "/v1/scopes", status: 200},
		{name: "the public route with an unknown key", key: unknown, method: "GET", path: "/v1/scopes", status: 200},
		{name: "an unknown path", method: "GET", path: "/v1/nope", status: 404, code: "route_not_found"},
		{name: "an unknown path with an unknown key", key: unknown, method: "GET", path: "/v1/nope", status: 404, code: "route_not_found"},
		{name: "a wrong method", method: "DELETE", path: "/v1/scopes", status: 405, code: "method_not_allowed"},
		{name: "the document", method: "GET", path: "/openapi.json", status: 200},
		{name: "the document with a revoked key", key: revoked, method: "GET", path: "/openapi.json", status: 200},
	}
	if len(asks) != budget {
		t.Fatalf("%d kinds of request for a budget of %d", len(asks), budget)
	}
	figures := func(h http.Header) string {
		return h.Get("X-RateLimit-Limit") + "/" + h.Get("X-RateLimit-Remaining")
	}
	checkReset := func(what string, h http.Header) {
		t.Helper()
		reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || reset < time.Now().Unix() || reset > time.Now().Add(61*time.Second).Unix() {
			t.Errorf("%s: X-RateLimit-Reset %q, want a unix time within the minute", what, h.Get("X-RateLimit-Reset"))
		}
	}
	keyed := 0
	keyCall := func(path string) {
		t.Helper()
		r := w.api.Call(valid, "GET", path, nil, nil)
		keyed++
		if want := strconv.Itoa(keyLimit) + "/" + strconv.Itoa(keyLimit-keyed); r.Status != 200 || figures(r.Header) != want {
			t.Errorf("the valid key, GET %s: %d, X-RateLimit-Limit/-Remaining %q, want 200 and the key's %s", path, r.Status, figures(r.Header), want)
		}
	}
	for n, q := range asks {
		r := call(q)
		want := strconv.Itoa(budget) + "/" + strconv.Itoa(budget-1-n)
		if r.Status != q.status || r.Code() != q.code || figures(r.Header) != want {
			t.Errorf("%s (%s %s): %d %q, X-RateLimit-Limit/-Remaining %q; want %d %q and the address's %s", q.name, q.method, q.path, r.Status, r.Code(), figures(r.Header), q.status, q.code, want)
		}
		checkReset(q.name, r.Header)
		keyCall("/v1/account") // the key's own count; the address's does not move (the next answer's Remaining)
	}
	// Answers written before the request is counted: the address's figures, uncounted.
	if r := w.api.Call("", "GET", "/v1/account?consistency=maybe", nil, nil); r.Status != 400 || figures(r.Header) != strconv.Itoa(budget)+"/0" {
		t.Errorf("a 400 for ?consistency= without a key: %d, %q; want 400 %d/0", r.Status, figures(r.Header), budget)
	}
	w.a.SetBrandMismatch("test: another brand")
	if r := w.api.Call("", "GET", "/v1/account", nil, nil); r.Status != 503 || figures(r.Header) != strconv.Itoa(budget)+"/0" {
		t.Errorf("a brand-mismatch 503 without a key: %d, %q; want 503 %d/0", r.Status, figures(r.Header), budget)
	}
	w.a.SetBrandMismatch("")
	// The budget is spent: every kind is a 429, nothing served.
	for _, q := range asks {
		r := call(q)
		retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != 429 || r.Code() != "rate_limited" || retry < 1 || retry > 60 || figures(r.Header) != strconv.Itoa(budget)+"/0" || strings.Contains(string(r.Body), "servers:read") {
			t.Errorf("past the budget, %s (%s %s): %d %.200s, Retry-After %q, %q; want 429 rate_limited, Retry-After 1-60, %d/0",
				q.name, q.method, q.path, r.Status, r.Body, r.Header.Get("Retry-After"), figures(r.Header), budget)
		}
		checkReset(q.name+" past the budget", r.Header)
	}
	// The key from the same address still works, with its own figures.
	keyCall("/v1/account")
	keyCall("/v1/scopes")
	if r := openapiDoc(valid); r.Status != 200 || figures(r.Header) != strconv.Itoa(keyLimit)+"/"+strconv.Itoa(keyLimit-keyed-1) {
		t.Errorf("the valid key, GET /openapi.json: %d, %q; want 200 and the key's %d/%d", r.Status, figures(r.Header), keyLimit, keyLimit-keyed-1)
	}
}

// TestIPBudgetKey: an address's budget is its own; an IPv6 address's is its
// /64's (the low bits do not buy a new budget), an IPv4-mapped one the IPv4
// address's.
func TestIPBudgetKey(t *testing.T) {
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"fe80::1%eth0", "fe80::2"},
	}
	for _, p := range same {
		if a, b := ipBudgetKey(p[0]), ipBudgetKey(p[1]); a != b {
			t.Errorf("%s and %s: budgets %q and %q, want one", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"192.0.2.1", "192.0.2.2"},
		{"192.0.2.1", "::192.0.2.1"},
		{"", "192.0.2.1"},
	}
	for _, p := range differ {
		if a, b := ipBudgetKey(p[0]), ipBudgetKey(p[1]); a == b {
			t.Errorf("%s and %s: one budget %q, want two", p[0], p[1], a)
		}
	}
}

// FuzzIPBudgetKey: any client address string gives a key under the prefix,
// without panicking, and an IPv6 address's key is its /64's.
func FuzzIPBudgetKey(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "2001:db8::1", "::ffff:10.0.0.1", "fe80::1%eth0", "", "pipe", "1.2.3.4:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := ipBudgetKey(s)
		if !strings.HasPrefix(k, ipBudgetPrefix) {
			t.Fatalf("ipBudgetKey(%q) = %q", s, k)
		}
		if strings.Contains(k, "%") && !strings.Contains(s, "%") {
			t.Fatalf("ipBudgetKey(%q) = %q: a zone from nowhere", s, k)
		}
	})
}

// TestEveryResponseDocumentsRateLimitHeaders: every response of every
// operation in /openapi.json documents X-RateLimit-Limit, -Remaining and
// -Reset (every /v1 answer carries them: the key's budget or, without a
// valid key, the client address's), and every operation documents a 429
// with Retry-After (a request without a valid key can be refused so on any
// route, the public GET /scopes included). The 414 and 431 are the
// exception: the listener answers them before the rate limits, uncounted and
// without the headers (TestOpenAPIDeclaresEarlyRefusals checks they say so).
func TestEveryResponseDocumentsRateLimitHeaders(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				if ref.Value == nil {
					t.Errorf("%s /v1%s: response %s unresolved", method, path, status)
					continue
				}
				if status == "414" || status == "431" {
					continue
				}
				for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					if ref.Value.Headers[h] == nil {
						t.Errorf("%s /v1%s (%s): response %s documents no %s", method, path, op.OperationID, status, h)
					}
				}
			}
			if r := op.Responses.Value("429"); r == nil || r.Value == nil || r.Value.Headers["Retry-After"] == nil {
				t.Errorf("%s /v1%s (%s) documents no 429 with Retry-After", method, path, op.OperationID)
			}
		}
	}
}
