package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestKeyLimitsOutsideIn: a key's IP allow-list and expiry hold on every
// coordinator, a follower forwarding included. A key allowed only 10.0.0.0/8
// is a 403 from this (loopback) client, whatever address it claims in
// X-Forwarded-For, X-Real-Ip or the coordinators' own client-address
// header; a key allowed 127.0.0.0/8 works through a follower (the client's
// address, not the follower's, is what the leader checks); an expired key is
// a 401 everywhere.
func TestKeyLimitsOutsideIn(t *testing.T) {
	r := sharedLightRig(t, "light")
	mk := func(name string, cidrs []string, exp *time.Time) string {
		return r.keyOfA(t, api.KeyCreateRequest{Name: name, Scopes: []string{"account:read", "tickets:write"}, AllowedCIDRs: cidrs, ExpiresAt: exp})
	}
	elsewhere := mk("office", []string{"10.0.0.0/8"}, nil)
	local := mk("local", []string{"127.0.0.0/8"}, nil)
	spoofs := []map[string]string{nil, {"X-Forwarded-For": "10.1.2.3"}, {"X-Real-Ip": "10.1.2.3"}, {"X-Hostplane-Client-Ip": "10.1.2.3"},
		{"X-Forwarded-For": "10.1.2.3", "X-Hostplane-Client-Ip": "10.1.2.3", "Forwarded": "for=10.1.2.3"}}
	for i := range r.c.Len() {
		for _, hdr := range spoofs {
			for _, rq := range []struct{ method, path string }{{"GET", "/v1/account"}, {"POST", "/v1/tickets"}} {
				var body any
				if rq.method == "POST" {
					body = api.TicketCreateRequest{Subject: "spoof", Message: "m"}
				}
				if rep := r.apis[i].Call(elsewhere, rq.method, rq.path, body, hdr); rep.Status != 403 {
					t.Errorf("coordinator %d, key allowed 10.0.0.0/8 from loopback, headers %v: %s; want 403", i, hdr, rep)
				}
			}
		}
		if rep := r.apis[i].Call(local, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "local", Message: "m"}, nil); rep.Status != 201 {
			t.Errorf("coordinator %d, key allowed 127.0.0.0/8: %s; want 201", i, rep)
		}
	}
	// The expiring key is made once the 33 requests above have been
	// answered, and lives 6 s: made before them with 3 s, it had expired
	// before they were all answered under load (review59: "key before its
	// expiry" was a 401 expired_api_key at load 24).
	soon := time.Now().Add(6 * time.Second)
	expiring := mk("expiring", nil, &soon)
	for i := range r.c.Len() {
		if rep := r.apis[i].Call(expiring, "GET", "/v1/account", nil, nil); rep.Status != 200 {
			t.Errorf("coordinator %d, key before its expiry (%s): %s", i, soon.Format(time.RFC3339Nano), rep)
		}
	}
	var list struct {
		Data []api.Ticket `json:"data"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets?limit=100", nil, nil).Decode(t, &list)
	for _, tk := range list.Data {
		if tk.Subject == "spoof" {
			t.Errorf("a refused key made ticket %s", tk.ID)
		}
	}
	framework.WaitFor(t, "the key's expiry", 10*time.Second, 100*time.Millisecond, func() bool { return time.Now().After(soon.Add(500 * time.Millisecond)) })
	for i := range r.c.Len() {
		for _, rq := range []struct{ method, path string }{{"GET", "/v1/account"}, {"POST", "/v1/tickets"}} {
			var body any
			if rq.method == "POST" {
				body = api.TicketCreateRequest{Subject: "late", Message: "m"}
			}
			if rep := r.apis[i].Call(expiring, rq.method, rq.path, body, nil); rep.Status != 401 || !strings.Contains(rep.Code(), "expired") {
				t.Errorf("coordinator %d, %s %s with an expired key: %s; want 401 expired_api_key", i, rq.method, rq.path, rep)
			}
		}
	}
}
