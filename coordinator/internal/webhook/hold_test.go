package webhook

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestPauseHoldsRetries (semantics level 2): deliveries retrying when their
// subscription is paused are held: no request while paused, also not across
// a dispatcher restart (a new leader), still pending in the FSM; on the resume
// each is sent at once, signed, and succeeds; events committed while paused
// are not delivered. A subscription paused past the retry window gets its
// held delivery marked failed at the resume with the outcome expired and a
// reason, and no request.
func TestPauseHoldsRetries(t *testing.T) {
	clk := noonClock()
	node, sealer := newLevel2Node(t, clk.Now)
	rc, acc, whID := node.subscribedReceiver(sealer, clk)
	down := rc.failWhileDown(http.StatusServiceUnavailable, http.StatusNoContent)
	long, accL, longID := node.subscribedReceiver(sealer, clk)
	long.failWhileDown(http.StatusServiceUnavailable, http.StatusNoContent)
	disp := start(t, node, sealer, devGuard, nil, clk, Options{})

	const events = 3
	for range events {
		node.ticket(acc, "before the pause")
	}
	node.ticket(accL, "paused for long")
	rc.waitFor(t, "first attempts", 10*time.Second, func(r []received) bool { return len(r) >= events })
	long.waitFor(t, "first attempt", 10*time.Second, func(r []received) bool { return len(r) >= 1 })
	// Second attempts (1 m ±10 %), still failing; the next due in 2 m.
	stepUntil(t, disp.d, clk, 2*time.Minute, func() bool { return len(rc.all()) >= 2*events && len(long.all()) >= 2 })
	waitUntil(t, "retries recorded", 5*time.Second, func() bool { return len(node.attempts(whID)) == 2*events })

	node.setActive(acc, whID, false)
	node.setActive(accL, longID, false)
	node.ticket(acc, "while paused")
	readChange(t, disp.d, node) // the pause, before the retries fall due
	before, beforeL := len(rc.all()), len(long.all())
	for range 3 { // past every scheduled retry
		quiesce(t, disp.d, clk)
		clk.Advance(time.Hour)
	}
	quiesce(t, disp.d, clk)
	pending := func(id string) []store.Delivery {
		var out []store.Delivery
		_ = node.f.View(func(tx *bolt.Tx) error {
			return store.Read(tx).ForEachPendingDelivery(func(d store.Delivery) error {
				if d.WebhookID == id {
					out = append(out, d)
				}
				return nil
			})
		})
		return out
	}
	if p := pending(whID); len(p) != events {
		t.Fatalf("%d deliveries pending while paused, want %d held", len(p), events)
	}
	// A new leader's dispatcher, still paused.
	disp.stop()
	disp = start(t, node, sealer, devGuard, nil, clk, Options{})
	clk.Advance(time.Hour)
	quiesce(t, disp.d, clk)
	time.Sleep(50 * time.Millisecond)
	if n, nl := len(rc.all())-before, len(long.all())-beforeL; n != 0 || nl != 0 {
		for _, a := range node.attempts(whID) {
			t.Logf("%+v", a)
		}
		var w store.Webhook
		_ = node.f.View(func(tx *bolt.Tx) error { w, _ = store.Read(tx).WebhookByID(whID); return nil })
		t.Logf("%+v", w)
		t.Fatalf("%d and %d requests to paused subscriptions", n, nl)
	}

	down.Store(false)
	node.setActive(acc, whID, true)
	got := rc.waitFor(t, "held deliveries after the resume", 10*time.Second, func(r []received) bool { return len(r) >= before+events })
	quiesce(t, disp.d, clk)
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.all()); n != before+events {
		t.Fatalf("%d requests after the resume, want %d (one per held delivery)", n-before, events)
	}
	sent := map[string]bool{}
	for _, r := range got[before:] {
		if r.sigErr != nil {
			t.Fatalf("held delivery badly signed: %v", r.sigErr)
		}
		if b := decodeBody(t, r.body); b.Data["subject"] != "before the pause" {
			t.Fatalf("sent after the resume: %v", b.Data)
		}
		sent[r.delivery] = true
	}
	if len(sent) != events {
		t.Fatalf("%d distinct deliveries after the resume, want %d", len(sent), events)
	}
	waitUntil(t, "successes recorded", 5*time.Second, func() bool {
		for id := range sent {
			if d, _ := node.delivery(whID, id); d.Status != api.DeliverySucceeded || d.Attempts != 3 {
				return false
			}
		}
		return true
	})

	// Resumed after the window (24 h from the first attempt): expired.
	clk.Advance(24 * time.Hour)
	node.setActive(accL, longID, true)
	waitUntil(t, "expiry recorded", 5*time.Second, func() bool {
		as := node.attempts(longID)
		return len(as) > 0 && as[len(as)-1].Outcome == api.AttemptExpired
	})
	as := node.attempts(longID)
	last := as[len(as)-1]
	if d, _ := node.delivery(longID, last.DeliveryID); d.Status != api.DeliveryFailed || !(strings.Contains(last.Error, "paused") && strings.Contains(last.Error, "retry window") && strings.Contains(last.Error, "redeliver")) {
		t.Fatalf("expired delivery %+v, log %+v", d.WebhookDelivery, last)
	}
	if nl := len(long.all()) - beforeL; nl != 0 {
		t.Fatalf("%d requests for an expired delivery", nl)
	}
}

// TestGoneHoldsDelivery (level 2): the delivery answered 410 is held with the
// disabled subscription and sent once it is re-enabled.
func TestGoneHoldsDelivery(t *testing.T) {
	clk := noonClock()
	node, sealer := newLevel2Node(t, clk.Now)
	rc, acc, whID := node.subscribedReceiver(sealer, clk)
	gone := rc.failWhileDown(http.StatusGone, http.StatusOK)
	disp := start(t, node, sealer, devGuard, nil, clk, Options{})
	node.ticket(acc, "t")
	rc.waitFor(t, "attempt", 5*time.Second, func(r []received) bool { return len(r) == 1 })
	waitUntil(t, "subscription disabled", 5*time.Second, func() bool {
		var w store.Webhook
		_ = node.f.View(func(tx *bolt.Tx) error { w, _ = store.Read(tx).WebhookByID(whID); return nil })
		return !w.Active
	})
	readChange(t, disp.d, node) // the disable, before the retry falls due
	clk.Advance(time.Hour)
	quiesce(t, disp.d, clk)
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.all()); n != 1 {
		t.Fatalf("%d requests to a disabled subscription", n)
	}
	gone.Store(false)
	node.setActive(acc, whID, true)
	got := rc.waitFor(t, "held delivery after re-enable", 5*time.Second, func(r []received) bool { return len(r) == 2 })
	if got[1].delivery != got[0].delivery || got[1].sigErr != nil {
		t.Fatalf("re-sent %s (signature %v), want %s", got[1].delivery, got[1].sigErr, got[0].delivery)
	}
	waitUntil(t, "success recorded", 5*time.Second, func() bool {
		d, _ := node.delivery(whID, got[0].delivery)
		return d.Status == api.DeliverySucceeded
	})
}

// TestResumeBeforeDispatcherRead (level 2): events committed before a pause
// that the dispatcher had not read when the webhook was resumed (here: no
// dispatcher ran meanwhile, as after a leader change behind its cursor) are
// delivered; those committed while paused are not; those after the resume
// are.
func TestResumeBeforeDispatcherRead(t *testing.T) {
	resumedBeforeRead(t, []string{"before", stepPause, "while paused", stepResume, "after"},
		"after,before", "the events before the pause and after the resume")
}

// The steps of resumedBeforeRead that are not ticket subjects.
const (
	stepPause  = "(pause)"
	stepResume = "(resume)"
)

// resumedBeforeRead subscribes a receiver, then, before any dispatcher runs,
// opens a ticket with each subject of steps, pausing and resuming the
// subscription where the steps say; then it starts the dispatcher and wants
// the subjects delivered, sorted and comma-joined, to be want.
func resumedBeforeRead(t *testing.T, steps []string, want, what string) {
	t.Helper()
	node, sealer := newLevel2Node(t, nil)
	rc, acc, whID := node.subscribedReceiver(sealer, clock.Real{})
	for _, s := range steps {
		switch s {
		case stepPause, stepResume:
			node.setActive(acc, whID, s == stepResume)
		default:
			node.ticket(acc, s)
		}
	}
	start(t, node, sealer, devGuard, nil, clock.Real{}, Options{})
	if got := rc.subjects(t, strings.Count(want, ",")+1); strings.Join(got, ",") != want {
		t.Fatalf("delivered %v, want %s", got, what)
	}
}

// subjects waits for n deliveries, then 100 ms for any further one, and
// returns the subjects of the tickets delivered, sorted.
func (rc *receiver) subjects(t *testing.T, n int) []string {
	t.Helper()
	rc.waitFor(t, fmt.Sprintf("%d deliveries", n), 5*time.Second, func(r []received) bool { return len(r) >= n })
	time.Sleep(100 * time.Millisecond)
	var got []string
	for _, r := range rc.all() {
		got = append(got, fmt.Sprint(decodeBody(t, r.body).Data["subject"]))
	}
	slices.Sort(got)
	return got
}

// TestHeldExpiryAcrossLeaders (level 2): a delivery held by a pause longer
// than the retry window (24 h) expires at the resume, with no request,
// whichever dispatcher (leader) held it and whichever reads the resume:
// one attempted before the pause and resumed under a new leader (the held
// mark was the old leader's memory: it got one more attempt past the
// window), and one held before its first attempt (no first attempt, no
// window: it never expired), resumed under the leader that held it or
// under a new one. Each is logged expired once. One paused for an hour is
// still sent.
func TestHeldExpiryAcrossLeaders(t *testing.T) {
	clk := noonClock()
	node, sealer := newLevel2Node(t, clk.Now)
	type hook struct {
		rc      *receiver
		acc, id string
	}
	var hooks [4]hook
	for i := range hooks {
		rc, acc, id := node.subscribedReceiver(sealer, clk)
		rc.failWhileDown(http.StatusServiceUnavailable, http.StatusNoContent).Store(i == 0)
		hooks[i] = hook{rc, acc, id}
	}
	tried, heldLocal, heldNew, short := hooks[0], hooks[1], hooks[2], hooks[3]
	pause := func(h hook, active bool) { node.setActive(h.acc, h.id, active) }

	// tried: a first attempt fails, a retry is scheduled.
	disp := start(t, node, sealer, devGuard, nil, clk, Options{})
	node.ticket(tried.acc, "tried")
	tried.rc.waitFor(t, "first attempt", 10*time.Second, func(r []received) bool { return len(r) == 1 })
	waitUntil(t, "attempt recorded", 5*time.Second, func() bool { return len(node.attempts(tried.id)) == 1 })
	disp.stop()
	// The others' events are committed while no dispatcher runs, and each
	// subscription is paused before one reads them: held before a first
	// attempt. tried is paused with its retry pending.
	for _, h := range []hook{heldLocal, heldNew, short} {
		node.ticket(h.acc, "held")
	}
	for _, h := range hooks {
		pause(h, false)
	}
	disp = start(t, node, sealer, devGuard, nil, clk, Options{})
	waitUntil(t, "held deliveries recorded", 5*time.Second, func() bool {
		for _, h := range hooks {
			var n int
			_ = node.f.View(func(tx *bolt.Tx) error {
				return store.Read(tx).ForEachPendingDelivery(func(d store.Delivery) error {
					if d.WebhookID == h.id {
						n++
					}
					return nil
				})
			})
			if n != 1 {
				return false
			}
		}
		return true
	})
	quiesce(t, disp.d, clk)
	clk.Advance(time.Hour)
	quiesce(t, disp.d, clk)
	pause(short, true) // an hour: sent
	short.rc.waitFor(t, "the delivery held an hour", 10*time.Second, func(r []received) bool { return len(r) == 1 })

	clk.Advance(24 * time.Hour)
	quiesce(t, disp.d, clk)
	// settled waits (without failing: the checks below say what happened)
	// for h's delivery to leave pending: expired, or sent.
	settled := func(h hook) {
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			as := node.attempts(h.id)
			if len(as) > 0 && as[len(as)-1].Outcome != api.AttemptRetrying {
				return
			}
		}
	}
	pause(heldLocal, true) // resumed under the leader that held it
	settled(heldLocal)
	disp.stop() // a new leader: resumed before its dispatcher starts
	pause(tried, true)
	pause(heldNew, true)
	disp = start(t, node, sealer, devGuard, nil, clk, Options{})
	settled(tried)
	settled(heldNew)
	quiesce(t, disp.d, clk)
	time.Sleep(50 * time.Millisecond)
	for name, h := range map[string]hook{"tried": tried, "heldLocal": heldLocal, "heldNew": heldNew} {
		want := 0
		if h.id == tried.id {
			want = 1 // the attempt before the pause
		}
		if n := len(h.rc.all()); n != want {
			t.Errorf("%s: %d requests, want %d (none after the pause)", name, n, want)
		}
		as := node.attempts(h.id)
		expired := 0
		for _, a := range as {
			if a.Outcome == api.AttemptExpired {
				expired++
				if !strings.Contains(a.Error, "paused") || !strings.Contains(a.Error, "retry window") || !strings.Contains(a.Error, "redeliver") {
					t.Errorf("%s: expired without saying why: %q", name, a.Error)
				}
			}
		}
		if expired != 1 || len(as) == 0 {
			t.Errorf("%s: log %+v, want one expired entry", name, as)
			continue
		}
		if d, _ := node.delivery(h.id, as[len(as)-1].DeliveryID); d.Status != api.DeliveryFailed {
			t.Errorf("%s: delivery %+v, want failed", name, d.WebhookDelivery)
		}
	}
}

// TestTwoResumesBeforeDispatcherRead (level 2): paused and resumed twice
// before the dispatcher read the events (no dispatcher ran meanwhile):
// the events of both pauses are not delivered (only the latest pause was
// remembered: the first one's were), those before, between and after are.
func TestTwoResumesBeforeDispatcherRead(t *testing.T) {
	resumedBeforeRead(t, []string{"before", stepPause, "while paused", stepResume, "between", stepPause, "while paused again", stepResume, "after"},
		"after,before,between", "the events before, between and after the pauses")
}
