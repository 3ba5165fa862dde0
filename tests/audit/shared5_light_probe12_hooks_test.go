package audit

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/webhook"
)

// TestProbe12WebhookDeletedWithDeliveriesQueued: a customer deletes a
// webhook (DELETE /v1/webhooks/:id through a follower) while deliveries to
// it are queued behind a slow receiver: tickets opened through all three
// coordinators, each a ticket.created event, the receiver taking 300 ms an
// answer. The secret rotated meanwhile (SPEC.md: the old one stops at once):
// every delivery that starts after the answer is signed with the new one.
// After the delete's 204 no delivery starts: what reaches the receiver after
// it is at most what was already on its way (within a moment of the
// answer); the webhook and its delivery log are 404s on every coordinator;
// and a webhook made again with the same URL gets none of the events
// committed before it.
func TestProbe12WebhookDeletedWithDeliveriesQueued(t *testing.T) {
	r := sharedLightRig(t, "probe12hook")
	r.keyA = r.keyOfA(t, api.KeyCreateRequest{Name: "probe12", Scopes: api.AllScopes, RateLimitPerMin: 6000})
	s := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	wh := r.hook(r.keyA, s.URL, "ticket.created")
	const tickets = 30
	var wg sync.WaitGroup
	for k := range tickets {
		wg.Go(func() { r.ticket(k%r.c.Len(), r.keyA, fmt.Sprint("queued-", k)) })
	}
	wg.Wait()
	for end := time.Now().Add(20 * time.Second); len(s.all()) < 2; {
		if time.Now().After(end) {
			t.Fatalf("the receiver got %d deliveries in 20 s", len(s.all()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := r.follower()
	// The secret rotated while they are queued (SPEC.md: the old one stops
	// at once): what starts after the answer is signed with the new one.
	rot := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, nil)
	rotated := time.Now()
	var fresh api.Webhook
	rot.Decode(t, &fresh)
	if rot.Status != 200 || fresh.Secret == wh.Secret {
		t.Fatalf("rotate: %s", rot)
	}
	time.Sleep(time.Second)
	signedNew, signedOld := 0, 0
	for _, h := range s.all() {
		sig := h.header.Get("X-Sunucu-Signature")
		switch {
		case h.at.Before(rotated.Add(500 * time.Millisecond)):
		case webhook.Verify(fresh.Secret, sig, h.body, time.Hour, time.Now()) == nil:
			signedNew++
		default:
			signedOld++
			t.Errorf("a delivery started %s after the rotate's answer is not signed with the new secret: %s", h.at.Sub(rotated).Round(time.Millisecond), sig)
		}
	}
	if signedNew == 0 {
		t.Errorf("no delivery started in the second after the rotate (%d in all): the probe measured nothing", len(s.all()))
	}
	t.Logf("after the rotate: %d deliveries signed with the new secret, %d with another", signedNew, signedOld)

	rep := r.call(f, r.keyA, "DELETE", "/v1/webhooks/"+wh.ID, nil, nil)
	answered := time.Now()
	if rep.Status/100 != 2 {
		t.Fatalf("delete: %s", rep)
	}
	before := 0
	for _, h := range s.all() {
		if h.at.Before(answered) {
			before++
		}
	}
	time.Sleep(3 * time.Second) // the queue would have drained by now
	var late []time.Duration
	after := 0
	for _, h := range s.all() {
		if d := h.at.Sub(answered); d > 0 {
			after++
			if d > 500*time.Millisecond {
				late = append(late, d.Round(time.Millisecond))
			}
		}
	}
	if len(late) > 0 {
		t.Errorf("deliveries started after the webhook's delete was answered: %d, at %v after it", len(late), late)
	}
	t.Logf("of %d queued deliveries: %d reached the receiver before the delete's answer, %d within 500 ms after it", tickets, before, after)
	for i := range r.c.Len() {
		for _, path := range []string{"/v1/webhooks/" + wh.ID, "/v1/webhooks/" + wh.ID + "/deliveries"} {
			if rep := r.call(i, r.keyA, "GET", path, nil, nil); rep.Status != 404 {
				t.Errorf("GET %s through coordinator %d after the delete: %s; want 404", path, i, rep)
			}
		}
	}

	// The same URL again: a new subscription, none of the old events.
	n := len(s.all())
	again := r.hook(r.keyA, s.URL, "ticket.created")
	r.ticket(0, r.keyA, "after")
	got := s.waitAbout(t, "subject", "after", 1, 20*time.Second)
	time.Sleep(time.Second)
	if extra := len(s.all()) - n - len(got); extra != 0 {
		t.Errorf("the webhook made again with the same URL (%s) got %d deliveries of events committed before it", again.ID, extra)
	}
}
