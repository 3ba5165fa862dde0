package clustertest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRateLeaseIsForCoordinatorsOnly: the lease a follower takes from a key's
// window on the leader (POST /internal/ratelimit/lease) is refused to a caller
// without the cluster secret and debits nothing then; with it, the leader
// grants a share of what is left, which the key's next request sees, and
// refuses a bad body; a follower does not lease.
func TestRateLeaseIsForCoordinatorsOnly(t *testing.T) {
	r := newInternalRig(t, "lease@example.com", api.KeyCreateRequest{Name: "limited", RateLimitPerMin: 30})
	c, k, ld := r.c, r.key, r.ld
	lease := func(node int, token, body string) (int, string) {
		t.Helper()
		return r.post(t, node, "/internal/ratelimit/lease", token, body)
	}
	remaining := func() string {
		t.Helper()
		req, _ := http.NewRequest("GET", c.URL(ld)+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+k.Key)
		resp, _ := framework.Fetch(t, nil, req)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/account on the leader: %d", resp.StatusCode)
		}
		return resp.Header.Get("X-RateLimit-Remaining")
	}
	all := `{"key":"` + k.Info.ID + `","limit":30,"want":30}`
	for _, token := range []string{"", "not-the-secret"} {
		if st, body := lease(ld, token, all); st != http.StatusUnauthorized {
			t.Fatalf("lease with cluster token %q: %d %s, want 401", token, st, body)
		}
	}
	if r := remaining(); r != "29" {
		t.Fatalf("after refused leases, X-RateLimit-Remaining %s, want 29", r)
	}
	st, body := lease(ld, c.Secret, all)
	var g struct {
		Granted   int   `json:"granted"`
		Remaining int   `json:"remaining"`
		TTLMS     int64 `json:"ttl_ms"`
	}
	if err := json.Unmarshal([]byte(body), &g); st != 200 || err != nil || g.Granted != 29/6 || g.Remaining != 29-29/6 || g.TTLMS <= 0 || g.TTLMS > 60_000 {
		t.Fatalf("lease of 29 left over 3 voters: %d %s, want 200 granting %d", st, body, 29/6)
	}
	if r := remaining(); r != strconv.Itoa(29-29/6-1) {
		t.Fatalf("after a lease of %d, X-RateLimit-Remaining %s, want %d", 29/6, r, 29-29/6-1)
	}
	for _, bad := range []string{`{"key":"` + k.Info.ID + `","limit":30,"want":31}`, `{"key":"","limit":30,"want":1}`, `{"key":"x","limit":30,"want":1,"more":1}`, `[`} {
		if st, body := lease(ld, c.Secret, bad); st != http.StatusBadRequest {
			t.Errorf("lease %s: %d %s, want 400", bad, st, body)
		}
	}
	if st, body := lease((ld+1)%3, c.Secret, all); st != http.StatusServiceUnavailable {
		t.Errorf("lease from a follower: %d %s, want 503", st, body)
	}
}
