package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDisallowedAddressSeesNoBudget: a key used from an address its
// allow-list does not hold is refused (403 ip_not_allowed) before its
// request is counted, as /mcp refuses it: the answer shows none of the
// key's X-RateLimit-* figures (how much its owner spent this minute) and
// spends none of its budget (a leaked key from elsewhere cannot exhaust its
// owner's limit), and neither does an early 503 (uncountedLimitHeaders,
// here the brand-mismatch refusal). Such a request has no valid key, so its
// figures are the client address's budget (DefaultIPRateLimit), which the
// 403s count down and the 503 does not. A key whose allow-list holds the
// address gets the key's figures on both.
func TestDisallowedAddressSeesNoBudget(t *testing.T) {
	w := newWHAPI(t)
	key := func(cidrs ...string) (string, string) {
		id, plain := w.addKey(w.newAccount(), fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}, AllowedCIDRs: cidrs, RateLimitPerMin: 5})
		return plain, id
	}
	elsewhere, elsewhereID := key("10.0.0.0/8") // the test calls from 127.0.0.1
	here, _ := key("127.0.0.0/8")
	figures := func(h http.Header) string {
		return h.Get("X-RateLimit-Limit") + "/" + h.Get("X-RateLimit-Remaining")
	}
	address := func(remaining int) string { return fmt.Sprintf("%d/%d", DefaultIPRateLimit, remaining) }
	for i := range 7 { // past the limit of 5
		r := w.api.Call(elsewhere, "GET", "/v1/account", nil, nil)
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "ip_not_allowed") || figures(r.Header) != address(DefaultIPRateLimit-1-i) {
			t.Fatalf("request %d from outside the allow-list: %d %s, X-RateLimit-Limit/-Remaining %q; want 403 ip_not_allowed with the address's %s", i+1, r.Status, r.Body, figures(r.Header), address(DefaultIPRateLimit-1-i))
		}
	}
	if d := w.a.limiter.Peek(elsewhereID, 5); d.Remaining != 5 {
		t.Fatalf("7 refused requests spent the key's budget: %d of 5 left", d.Remaining)
	}
	if r := w.api.Call(here, "GET", "/v1/account", nil, nil); r.Status != http.StatusOK || r.Header.Get("X-RateLimit-Remaining") != "4" {
		t.Fatalf("a key allowed here: %d, X-RateLimit-Remaining %q; want 200, 4", r.Status, r.Header.Get("X-RateLimit-Remaining"))
	}
	w.a.SetBrandMismatch("test: another brand")
	defer w.a.SetBrandMismatch("")
	if r := w.api.Call(elsewhere, "GET", "/v1/account", nil, nil); r.Status != http.StatusServiceUnavailable || figures(r.Header) != address(DefaultIPRateLimit-7) {
		t.Fatalf("an early 503 to a key not allowed here: %d, X-RateLimit-Limit/-Remaining %q; want 503 with the address's %s (not counted)", r.Status, figures(r.Header), address(DefaultIPRateLimit-7))
	}
	if r := w.api.Call(here, "GET", "/v1/account", nil, nil); r.Status != http.StatusServiceUnavailable || r.Header.Get("X-RateLimit-Remaining") != "4" {
		t.Fatalf("an early 503 to a key allowed here: %d, X-RateLimit-Remaining %q; want 503, 4 (not counted)", r.Status, r.Header.Get("X-RateLimit-Remaining"))
	}
}
