package audit

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe7UncleanPathsAreJSON404s: a /v1 path that is not in its canonical
// form (a doubled slash, a "." or ".." segment, also before /v1), with a valid key, through
// the leader and a follower, is what any other path no route serves is
// (README: "Anything else is a JSON 404"): a 404 route_not_found in the error
// envelope with the X-RateLimit-* headers SPEC.md puts on every response,
// counted against the key. A POST there creates nothing, also for a client
// that follows redirects. Before, the mux answered a 307 text/html page with
// no rate-limit headers, and a client following it re-sent the POST to the
// canonical path, opening a ticket.
func TestProbe7UncleanPathsAreJSON404s(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	noFollow := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := &http.Client{Timeout: 15 * time.Second}
	for _, i := range []int{0, f} {
		for _, p := range []struct{ method, path string }{
			{"GET", "/v1//tickets"}, {"GET", "/v1/./account"}, {"GET", "/v1/tickets/../account"}, {"GET", "/v1/billing//wallet"},
			{"POST", "/v1//tickets"}, {"POST", "/v1/./tickets"},
			{"POST", "/x/../v1/tickets"}, {"GET", "/./v1/account"}, // unclean before /v1 (//v1/…, from a base URL with a trailing slash: httpapi)
		} {
			for name, hc := range map[string]*http.Client{"a client": noFollow, "a client following redirects": follow} {
				req, _ := http.NewRequest(p.method, r.c.URL(i)+p.path, strings.NewReader(`{"subject":"unclean","message":"m"}`))
				req.URL.Opaque = p.path // sent as written
				req.Header.Set("Authorization", "Bearer "+r.keyA)
				req.Header.Set("Content-Type", "application/json")
				resp, body := framework.Fetch(t, hc, req)
				e, err := framework.Reply{Status: resp.StatusCode, Body: body}.Envelope()
				what := p.method + " " + p.path + " by " + name + " on coordinator " + string(rune('0'+i))
				if resp.StatusCode != 404 || err != nil || e.Code != "route_not_found" {
					t.Errorf("%s: %d %q %.200s; want a 404 route_not_found in the error envelope", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					if resp.Header.Get(h) == "" {
						t.Errorf("%s: no %s header", what, h)
					}
				}
			}
		}
	}
	var l struct {
		Total int `json:"total"`
	}
	if r.get(t, 0, r.keyA, "/v1/tickets", &l); l.Total != 0 {
		t.Errorf("the POSTs to unclean paths opened %d tickets", l.Total)
	}
}
