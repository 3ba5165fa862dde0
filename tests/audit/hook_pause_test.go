package audit

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestHookPauseKeepsRetries: a receiver fails, so two tickets' deliveries
// are being retried (1 s, then 2 s apart) when the customer pauses the
// webhook (PATCH isActive false). While paused the receiver hears nothing,
// also after the leader is SIGKILLed, and the deliveries stay pending in the
// delivery log; a ticket opened while paused is never sent. The receiver is
// fixed and the webhook resumed: each held delivery arrives once more, with
// the X-Sunucu-Delivery and event id of its earlier attempts, signed with
// the webhook's secret, and the log shows it succeeded.
func TestHookPauseKeepsRetries(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := hookRig(t, "--webhook-retry-max", "2s", "--webhook-retry-window", "5m")
	var failing atomic.Bool // till the receiver is fixed
	failing.Store(true)
	s := switchedSink(t, 500, &failing)
	f := r.follower()
	wh := r.hook(r.keyA, s.URL, "ticket.created")
	tks := []api.Ticket{r.ticket(f, r.keyA, "held one"), r.ticket(f, r.keyA, "held two")}
	for _, tk := range tks {
		s.waitAbout(t, "ticketId", tk.ID, 2, 20*time.Second) // a retry went out
	}
	if rep := r.write(f, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"isActive": false}); rep.Status != 200 {
		t.Fatalf("pause: %s", rep)
	}
	cut := time.Now().Add(300 * time.Millisecond)

	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.c.Kill(ld)
	t.Logf("paused; killed the leader, coordinator %d", ld)
	up := (ld + 1) % r.c.Len()
	if _, err := r.c.LeaderIndexSkipping(map[int]bool{ld: true}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	paused := r.ticket(up, r.keyA, "while paused")
	time.Sleep(4 * time.Second) // two retry periods, and the new leader's start
	for _, h := range s.all() {
		if h.at.After(cut) {
			t.Errorf("a paused webhook's receiver got a request %s after the pause: %.200s", h.at.Sub(cut), h.body)
		}
	}
	before := map[string][]sinkHit{}
	for _, tk := range tks {
		before[tk.ID] = s.about("ticketId", tk.ID)
	}
	statusOf := func(i int) map[string]string { // delivery id → its status in the newest log entry
		st := map[string]string{}
		for _, a := range r.attempts(i, r.keyA, wh.ID) { // newest first
			if _, seen := st[a.DeliveryID]; !seen {
				st[a.DeliveryID] = a.DeliveryStatus
			}
		}
		return st
	}
	for id, hits := range before {
		if st := statusOf(up)[hits[0].header.Get("X-Sunucu-Delivery")]; st != api.DeliveryPending {
			t.Errorf("ticket %s's delivery is %q while paused; want pending (held)", id, st)
		}
	}

	failing.Store(false)
	r.c.Restart(ld)
	r.c.WaitReady(ld, 30*time.Second)
	if rep := r.write(up, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"isActive": true}); rep.Status != 200 {
		t.Fatalf("resume: %s", rep)
	}
	for _, tk := range tks {
		s.waitAbout(t, "ticketId", tk.ID, len(before[tk.ID])+1, 20*time.Second)
	}
	time.Sleep(3 * time.Second) // a duplicate would come within a retry period
	for _, tk := range tks {
		prev, hits := before[tk.ID], s.about("ticketId", tk.ID)
		after := hits[len(prev):]
		if len(after) != 1 {
			t.Errorf("ticket %s: %d requests after the resume; want 1", tk.ID, len(after))
		}
		want := prev[0].header.Get("X-Sunucu-Delivery")
		for _, h := range after {
			if got := h.header.Get("X-Sunucu-Delivery"); got != want || h.event(t).ID != prev[0].event(t).ID {
				t.Errorf("ticket %s after the resume: delivery %s event %s; want %s, %s", tk.ID, got, h.event(t).ID, want, prev[0].event(t).ID)
			}
			if good, _, err := signedBy(wh.Secret, h.header.Get("X-Sunucu-Signature"), h.body); !good || err != nil {
				t.Errorf("ticket %s after the resume: not signed with the webhook's secret (%v)", tk.ID, err)
			}
		}
		framework.WaitFor(t, "the held delivery logged succeeded", 10*time.Second, 200*time.Millisecond, func() bool {
			return statusOf(up)[want] == api.DeliverySucceeded
		})
	}
	if n := len(s.about("ticketId", paused.ID)); n != 0 {
		t.Errorf("a ticket opened while paused was sent %d times", n)
	}
}
