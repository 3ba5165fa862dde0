package audit

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestHookScopesAndStaleReads: a key of the account with only the read
// scopes changes nothing (every write on tickets and webhooks is a 403 and
// leaves them as they were); a key with tickets:write but not webhooks:read
// cannot read the delivery log. Stale reads on a follower
// (?consistency=stale) mask the secret and show another account's ids as
// unknown, as linearizable reads do. A ticket create replayed by its
// Idempotency-Key fires ticket.created once.
func TestHookScopesAndStaleReads(t *testing.T) {
	r := sharedLightRig(t, "hook")
	f := r.follower()
	s := newSink(t, nil)
	wh := r.hook(r.keyA, s.URL, "ticket.created", "ticket.replied")
	if wh.Secret == "" {
		// Made by a send a leadership change answered: the replay of its
		// answer shows no secret. A new one, to look for below (a rotate
		// sent again rotates again: the last answer's is the secret).
		rot := r.limited(0, r.send(0, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, nil,
			func(string, any, http.Header) bool { return true }))
		if rot.Status != 200 {
			t.Fatalf("rotate the secret the replayed create did not show: %s", rot)
		}
		rot.Decode(t, &wh)
	}
	hdr := map[string]string{"Idempotency-Key": "once-only"}
	var tk api.Ticket
	for i := range 3 {
		// A 409 idempotency_key_in_flight can only be this key's earlier
		// send, resent after a leadership 503 and still being applied.
		var rep framework.Reply
		_ = framework.ResendInFlight(15*time.Second, func(bool) error {
			rep = r.call(i, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "replayed", Message: "m"}, hdr)
			return rep.Err()
		})
		if rep.Status != 201 {
			t.Fatalf("%s", rep)
		}
		rep.Decode(t, &tk)
	}
	d := s.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)[0].header.Get("X-Sunucu-Delivery")
	time.Sleep(2 * time.Second)
	if n := len(s.about("ticketId", tk.ID)); n != 1 {
		t.Errorf("a ticket create sent 3 times with one Idempotency-Key fired %d ticket.created", n)
	}

	mint := func(scopes ...string) string { return r.keyOfA(t, api.KeyCreateRequest{Scopes: scopes}) }
	readOnly := mint("tickets:read", "webhooks:read")
	writeOnly := mint("tickets:write", "webhooks:write")
	before := r.call(0, r.keyA, "GET", "/v1/webhooks/"+wh.ID, nil, nil).Body
	thread := r.call(0, r.keyA, "GET", "/v1/tickets/"+tk.ID, nil, nil).Body
	for _, p := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/tickets", api.TicketCreateRequest{Subject: "s", Message: "m"}},
		{"POST", "/v1/tickets/" + tk.ID + "/reply", map[string]string{"body": "x"}},
		{"POST", "/v1/tickets/" + tk.ID + "/close", nil},
		{"POST", "/v1/webhooks", api.WebhookCreateRequest{URL: s.URL, Events: []string{"*"}}},
		{"PATCH", "/v1/webhooks/" + wh.ID, map[string]any{"isActive": false}},
		{"DELETE", "/v1/webhooks/" + wh.ID, nil},
		{"POST", "/v1/webhooks/" + wh.ID + "/rotate-secret", nil},
		{"POST", "/v1/webhooks/" + wh.ID + "/deliveries/" + d + "/redeliver", nil},
	} {
		for _, i := range []int{0, f} {
			if rep := r.call(i, readOnly, p.method, p.path, p.body, nil); rep.Status != http.StatusForbidden {
				t.Errorf("read-only key on coordinator %d: %s; want 403", i, rep)
			}
		}
	}
	for _, path := range []string{"/v1/webhooks", "/v1/webhooks/" + wh.ID, "/v1/webhooks/" + wh.ID + "/deliveries", "/v1/tickets", "/v1/tickets/" + tk.ID} {
		if rep := r.call(f, writeOnly, "GET", path, nil, nil); rep.Status != http.StatusForbidden {
			t.Errorf("write-only key: %s; want 403", rep)
		}
		if rep := r.call(f, readOnly, "GET", path, nil, nil); rep.Status != 200 || strings.Contains(string(rep.Body), wh.Secret) {
			t.Errorf("read-only key: %s; want 200 without the secret", rep)
		}
	}
	time.Sleep(time.Second)
	if after := r.call(0, r.keyA, "GET", "/v1/webhooks/"+wh.ID, nil, nil).Body; string(after) != string(before) {
		t.Errorf("the read-only key changed the webhook: %s → %s", before, after)
	}
	if after := r.call(0, r.keyA, "GET", "/v1/tickets/"+tk.ID, nil, nil).Body; string(after) != string(thread) {
		t.Errorf("the read-only key changed the ticket: %s → %s", thread, after)
	}
	if n := len(s.all()); n != 1 {
		t.Errorf("%d requests at the receiver after the refused writes; want the 1 ticket.created", n)
	}

	// Stale reads on every coordinator.
	for i := range r.c.Len() {
		for _, path := range []string{"/v1/webhooks/" + wh.ID, "/v1/webhooks", "/v1/webhooks/" + wh.ID + "/deliveries"} {
			rep := r.call(i, r.keyA, "GET", path+"?consistency=stale", nil, nil)
			if rep.Status != 200 || strings.Contains(string(rep.Body), wh.Secret) || strings.Contains(string(rep.Body), strings.TrimPrefix(wh.Secret, "whsec_")[:12]) {
				t.Errorf("coordinator %d, stale read: %s; want 200 without the secret", i, rep)
			}
		}
		for _, path := range []string{"/v1/webhooks/" + wh.ID, "/v1/webhooks/" + wh.ID + "/deliveries", "/v1/tickets/" + tk.ID} {
			mine := r.call(i, r.keyB, "GET", path+"?consistency=stale", nil, nil)
			if mine.Status != 404 || strings.Contains(string(mine.Body), "replayed") || strings.Contains(string(mine.Body), s.URL) {
				t.Errorf("coordinator %d, B's stale read of A's %s: %s; want 404", i, path, mine)
			}
		}
		for _, path := range []string{"/v1/webhooks", "/v1/tickets"} {
			if rep := r.call(i, r.keyB, "GET", path+"?consistency=stale", nil, nil); rep.Status != 200 || strings.Contains(string(rep.Body), wh.ID) || strings.Contains(string(rep.Body), tk.ID) {
				t.Errorf("coordinator %d, B's stale list: %s", i, rep)
			}
		}
	}
}
