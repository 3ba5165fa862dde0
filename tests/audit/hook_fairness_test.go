package audit

import (
	"net/http"
	"testing"
	"time"
)

// TestHookOneAccountCannotStallOthers: the coordinators send at most
// --webhook-max-in-flight attempts at once (here 8). One account points five
// webhooks at receivers that never answer and opens tickets so that they
// want 20 attempts at once, again and again as they are retried; another
// account's delivery to a healthy receiver still arrives within a second
// of its event, each of five times, rather than after the hanging attempts'
// timeout (before the fix: 7.4 s each time, two timeouts of A's).
func TestHookOneAccountCannotStallOthers(t *testing.T) {
	const timeout = 4 * time.Second
	r := hookRig(t, "--webhook-max-in-flight", "8", "--webhook-attempt-timeout", timeout.String())
	f := r.follower()
	hang := newSink(t, func(_ int, w http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-time.After(60 * time.Second):
		}
	})
	for range 5 {
		r.hook(r.keyA, hang.URL, "ticket.created")
	}
	good := newSink(t, nil)
	r.hook(r.keyB, good.URL, "ticket.created")
	for round := range 5 {
		for range 4 {
			r.ticket(f, r.keyA, "flood")
		}
		time.Sleep(500 * time.Millisecond) // A's attempts take the slots
		at := time.Now()
		tk := r.ticket(f, r.keyB, "mine")
		h := good.waitAbout(t, "ticketId", tk.ID, 1, 30*time.Second)[0]
		if lag := h.at.Sub(at); lag > time.Second {
			t.Errorf("round %d: B's delivery came %s after its ticket, behind %d requests to A's hanging receivers", round+1, lag.Round(time.Millisecond), len(hang.all()))
		} else {
			t.Logf("round %d: B's delivery after %s", round+1, lag.Round(time.Millisecond))
		}
	}
}
