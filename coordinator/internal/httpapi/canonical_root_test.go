package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestUncleanPathToV1IsJSON404: a path that the mux would clean into a /v1
// path but that does not start with /v1/ as sent (a client's base URL with
// a trailing slash: //v1/tickets; /./v1/…, /x/../v1/…) is answered as
// /v1//tickets is: a JSON 404 route_not_found counted against the key, with
// its X-RateLimit-* headers, not the mux's 307 text page, which a client
// following it obeys by sending the POST again to /v1/tickets.
func TestUncleanPathToV1IsJSON404(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeTicketsRead, api.ScopeTicketsWrite)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"//v1/tickets", "/./v1/tickets", "/x/../v1/tickets", "//v1//tickets"} {
		req, _ := http.NewRequest("POST", s.srv.URL+p, strings.NewReader(`{"subject":"s","message":"m"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Code string }
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != 404 || e.Code != "route_not_found" || resp.Header.Get("X-RateLimit-Remaining") == "" {
			t.Errorf("POST %s: %d %q X-RateLimit-Remaining %q Location %q; want a JSON 404 route_not_found with the key's rate-limit headers",
				p, resp.StatusCode, b, resp.Header.Get("X-RateLimit-Remaining"), resp.Header.Get("Location"))
		}
	}
	if r := s.call(key, "GET", "/v1/tickets", ""); r.status != 200 || len(r.m["data"].([]any)) != 0 {
		t.Fatalf("tickets after the refused posts: %d %s; want none", r.status, r.body)
	}
}
