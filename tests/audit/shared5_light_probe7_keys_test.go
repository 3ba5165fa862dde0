package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe7KeyExpiryInUTC: SPEC.md says times are RFC 3339 UTC. A key minted
// with an expiry written in another offset (a client in Istanbul sends
// +03:00; hostplanectl's --expires-in is the operator's local time) expires
// at that instant and is shown in UTC ("…Z") when minted and in the key
// list, through the leader and a follower, minted through the API and
// through the admin socket. Before, the key list and the mint's
// answer showed "2030-01-01T03:00:00+03:00", the only time in the API not
// in UTC.
func TestProbe7KeyExpiryInUTC(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	istanbul := time.FixedZone("TRT", 3*3600)
	at := time.Date(2030, 1, 1, 3, 0, 0, 0, istanbul) // 2030-01-01T00:00:00Z
	const want = "2030-01-01T00:00:00Z"

	var minted api.KeyCreated
	rep := r.call(f, r.keyA, "POST", "/v1/account/api-keys", `{"name":"istanbul","scopes":["account:read"],"expires_at":"2030-01-01T03:00:00+03:00"}`, nil)
	if rep.Status != 201 {
		t.Fatalf("mint: %s", rep)
	}
	rep.Decode(t, &minted)
	if !strings.Contains(string(rep.Body), `"expires_at":"`+want+`"`) || minted.Info.ExpiresAt == nil || !minted.Info.ExpiresAt.Equal(at) {
		t.Errorf("the minted key's answer: %s; want expires_at %s", rep, want)
	}
	admin := r.keyOfA(t, api.KeyCreateRequest{Name: "operator", Scopes: []string{"account:read"}, ExpiresAt: &at})
	for _, i := range []int{0, f} {
		rep := r.call(i, r.keyA, "GET", "/v1/account/api-keys", nil, nil)
		if rep.Status != 200 {
			t.Fatalf("key list on coordinator %d: %s", i, rep)
		}
		if n := strings.Count(string(rep.Body), `"expires_at":"`+want+`"`); n != 2 || strings.Contains(string(rep.Body), "+03:00") {
			t.Errorf("key list on coordinator %d shows %d expiries as %s: %.1000s", i, n, want, rep.Body)
		}
	}
	// The keys work until then (the expiry is the instant sent).
	for _, k := range []string{minted.Key, admin} {
		if rep := r.call(f, k, "GET", "/v1/account", nil, nil); rep.Status != 200 {
			t.Errorf("a key expiring in 2030: %s", rep)
		}
	}
}
