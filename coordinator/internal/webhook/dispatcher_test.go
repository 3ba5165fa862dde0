package webhook

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/internal/clock/clocktest"
	"github.com/hostplane/hostplane/pkg/api"
	pkgwebhook "github.com/hostplane/hostplane/pkg/webhook"
	bolt "go.etcd.io/bbolt"
)

// devGuard allows the loopback receivers of these tests; it is the development
// flag, used only where a test needs a local receiver.
var devGuard = &Guard{AllowHTTP: true, AllowPrivate: true}

type secretBox struct {
	mu sync.Mutex
	s  []string
}

func (b *secretBox) set(s ...string) { b.mu.Lock(); b.s = s; b.mu.Unlock() }
func (b *secretBox) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string{}, b.s...)
}

func payloadKeys(t *testing.T, typ string) []string {
	for _, e := range api.WebhookEvents {
		if e.Name == typ {
			k := append([]string{}, e.Payload...)
			sort.Strings(k)
			return k
		}
	}
	t.Fatalf("event %s not in the catalogue", typ)
	return nil
}

// TestCoreEventsArriveSigned delivers every event the core emits over https,
// checks each signature with the receiver's own HMAC code, the headers and the
// payload fields of the catalogue, and that after a rotation only the new secret
// verifies.
func TestCoreEventsArriveSigned(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	box := &secretBox{}
	rc := newReceiver(t, true, clock.Real{}, box.get)
	acc := node.newAccount()
	other := node.newAccount()
	// https on loopback needs the private-address development flag, not http.
	guard := &Guard{AllowPrivate: true}
	whID, secret := node.subscribe(sealer, acc, rc.srv.URL+"/hooks")
	box.set(secret)
	otherID, _ := node.subscribe(sealer, other, rc.srv.URL+"/other", "invoice.paid")
	start(t, node, sealer, guard, rc.tlsConfig(), clock.Real{}, Options{})

	tkt := node.ticket(acc, "Disk full")
	node.must(fsm.CmdTicketReply, fsm.TicketReply{TicketID: tkt, MessageID: ids.New("msg", time.Now()), Staff: true, StaffName: "Ayşe", Body: "fixed"})
	node.must(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: ids.New("wtx", time.Now()), AccountID: acc, AmountUsdCents: 5000, Gateway: "card"})
	node.must(fsm.CmdInvoiceIssue, fsm.InvoiceIssue{
		ID: ids.New("inv", time.Now()), AccountID: acc, Lines: []fsm.InvoiceLineReq{{Description: "VPS", Quantity: 1, UnitPriceUsdCents: 1200}},
		DueAt: time.Now().Add(24 * time.Hour), PayFromWallet: true, PaymentID: ids.New("pay", time.Now()), TxID: ids.New("wtx", time.Now()),
	})
	node.ticket(other, "not for acc") // another account's event never reaches acc's subscription

	want := []string{"ticket.created", "ticket.replied", "wallet.deposit.received", "invoice.created", "invoice.paid"}
	got := rc.waitFor(t, "5 deliveries", 10*time.Second, func(r []received) bool { return len(r) >= 5 })
	var types []string
	for _, r := range got {
		if r.sigErr != nil {
			t.Fatalf("%s: signature did not verify: %v", r.event, r.sigErr)
		}
		if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "hostplane-webhooks/") {
			t.Errorf("User-Agent %q", ua)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if !ids.Valid("dlv", r.delivery) {
			t.Errorf("X-Sunucu-Delivery %q is not a delivery id", r.delivery)
		}
		b := decodeBody(t, r.body)
		if b.Type != r.event || !ids.Valid("evt", b.ID) || b.CreatedAt.IsZero() || b.CreatedAt.Location() != time.UTC {
			t.Errorf("body %s vs header event %s", r.body, r.event)
		}
		var keys []string
		for k := range b.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, ",") != strings.Join(payloadKeys(t, b.Type), ",") {
			t.Errorf("%s payload fields %v, want %v", b.Type, keys, payloadKeys(t, b.Type))
		}
		types = append(types, b.Type)
	}
	sort.Strings(types)
	sort.Strings(want)
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered %v, want %v", types, want)
	}

	// The receiver rejects a tampered body and an old timestamp; the public
	// helper agrees with the receiver's own code.
	r0 := got[0]
	sig := r0.header.Get("X-Sunucu-Signature")
	tampered := append([]byte{}, r0.body...)
	tampered[len(tampered)-2] ^= 1
	if verifySpec(secret, sig, tampered, time.Now(), 5*time.Minute) == nil {
		t.Fatal("tampered body verified")
	}
	if verifySpec(secret, sig, r0.body, time.Now().Add(10*time.Minute), 5*time.Minute) == nil {
		t.Fatal("old timestamp verified")
	}
	if err := pkgwebhook.Verify(secret, sig, r0.body, 0, time.Now()); err != nil {
		t.Fatalf("pkg/webhook rejects a good delivery: %v", err)
	}
	if err := pkgwebhook.Verify(secret, sig, tampered, 0, time.Now()); !errors.Is(err, pkgwebhook.ErrBadSignature) {
		t.Fatalf("pkg/webhook on a tampered body: %v", err)
	}

	// Rotation: the receiver now knows only the new secret.
	newSecret := node.rotate(sealer, acc, whID)
	box.set(newSecret)
	node.ticket(acc, "after rotation")
	got = rc.waitFor(t, "delivery after rotation", 10*time.Second, func(r []received) bool { return len(r) >= 6 })
	last := got[5]
	if last.sigErr != nil {
		t.Fatalf("delivery after rotation does not verify with the new secret: %v", last.sigErr)
	}
	if verifySpec(secret, last.header.Get("X-Sunucu-Signature"), last.body, time.Now(), 5*time.Minute) == nil {
		t.Fatal("delivery after rotation still verifies with the old secret")
	}

	// Every attempt is in the delivery log with its response.
	waitUntil(t, "6 log entries", 5*time.Second, func() bool { return len(node.attempts(whID)) == 6 })
	for _, a := range node.attempts(whID) {
		if a.Outcome != api.AttemptSucceeded || a.StatusCode != 200 || a.ResponseBody != `{"ok":true}` || a.Attempt != 1 {
			t.Errorf("log entry %+v", a)
		}
		if d, ok := node.delivery(whID, a.DeliveryID); !ok || d.Status != api.DeliverySucceeded || d.Event.ID != a.EventID {
			t.Errorf("delivery %s: %+v", a.DeliveryID, d)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.all()); n != 6 {
		t.Fatalf("receiver got %d requests, want 6 (the other account's events must not arrive)", n)
	}
	if n := len(node.attempts(otherID)); n != 0 {
		t.Fatalf("other account's invoice.paid-only subscription has %d attempts", n)
	}
}

// quiesce waits until no attempt is running and no retry is due on the clock.
func quiesce(t *testing.T, d *Dispatcher, clock *clocktest.Fake) {
	t.Helper()
	waitUntil(t, "dispatcher idle", 10*time.Second, func() bool {
		st := d.Stats()
		return st.Running && st.Busy == 0 && (st.NextDue.IsZero() || st.NextDue.After(clock.Now()))
	})
}

// readChange waits until the dispatcher has read the subscriptions as of
// everything node applied so far (a pause or resume just committed): until
// then its in-memory subscriptions do not know of it.
//
// The index is taken under node.mu, which Apply holds until the FSM has
// stored its AppliedIndex: a change the test saw committed by another
// goroutine's Apply (the dispatcher's recorder disabling a subscription
// after a 410) is visible to a read transaction before AppliedIndex counts
// it, and the index read then was the one before it, which the dispatcher
// may have read already.
func readChange(t *testing.T, d *Dispatcher, node *testNode) {
	t.Helper()
	node.mu.Lock()
	idx := node.f.AppliedIndex()
	node.mu.Unlock()
	waitUntil(t, "the dispatcher reading the latest change", 10*time.Second, func() bool { return d.Stats().Read >= idx })
}

// advanceToNextRetry moves the fake clock to the earliest scheduled retry.
func advanceToNextRetry(t *testing.T, d *Dispatcher, clock *clocktest.Fake) {
	t.Helper()
	quiesce(t, d, clock)
	st := d.Stats()
	if st.NextDue.IsZero() {
		t.Fatal("no retry scheduled")
	}
	clock.Advance(st.NextDue.Sub(clock.Now()))
	quiesce(t, d, clock)
}

// stepUntil advances the fake clock one second at a time, letting the
// dispatcher settle after each step, until cond holds.
func stepUntil(t *testing.T, d *Dispatcher, clock *clocktest.Fake, max time.Duration, cond func() bool) {
	t.Helper()
	for elapsed := time.Duration(0); !cond(); elapsed += time.Second {
		if elapsed > max {
			t.Fatalf("condition not reached within %s of fake time", max)
		}
		quiesce(t, d, clock)
		clock.Advance(time.Second)
	}
	quiesce(t, d, clock)
}

// noonClock is the tests' fake clock, at 12:00 UTC on 3 June 2026.
func noonClock() *clocktest.Fake {
	return clocktest.NewFake(time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC))
}

// TestReceiverDownThenUp: while the receiver fails, deliveries are retried at
// 1 m, 2 m, 4 m (±10 % jitter) on the injected clock; once it is up, every event
// arrives, and repeated requests carry the same X-Sunucu-Delivery.
func TestReceiverDownThenUp(t *testing.T) {
	clock := noonClock()
	node := newTestNode(t, clock.Now)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock)
	down := rc.failWhileDown(http.StatusServiceUnavailable, http.StatusNoContent)
	disp := start(t, node, sealer, devGuard, nil, clock, Options{})

	const events = 20
	for i := 0; i < events; i++ {
		node.ticket(acc, "t")
	}
	rc.waitFor(t, "first attempts", 10*time.Second, func(r []received) bool { return len(r) >= events })
	perDeliveryAtLeast := func(n int) func() bool {
		return func() bool {
			c := map[string]int{}
			for _, r := range rc.all() {
				c[r.delivery]++
			}
			for _, v := range c {
				if v < n {
					return false
				}
			}
			return len(c) == events
		}
	}
	stepUntil(t, disp.d, clock, 2*time.Minute, perDeliveryAtLeast(2)) // ≈ +1 m
	stepUntil(t, disp.d, clock, 3*time.Minute, perDeliveryAtLeast(3)) // ≈ +2 m
	down.Store(false)
	stepUntil(t, disp.d, clock, 5*time.Minute, perDeliveryAtLeast(4)) // ≈ +4 m: succeeds
	clock.Advance(time.Hour)
	quiesce(t, disp.d, clock)

	byDelivery := map[string][]received{}
	bodies := map[string]string{}
	for _, r := range rc.all() {
		if r.sigErr != nil {
			t.Fatalf("bad signature: %v", r.sigErr)
		}
		byDelivery[r.delivery] = append(byDelivery[r.delivery], r)
		if b, ok := bodies[r.delivery]; ok && b != string(r.body) {
			t.Fatalf("delivery %s changed its body between attempts", r.delivery)
		}
		bodies[r.delivery] = string(r.body)
	}
	if len(byDelivery) != events {
		t.Fatalf("%d distinct deliveries, want %d", len(byDelivery), events)
	}
	for id, rs := range byDelivery {
		if len(rs) != 4 {
			t.Fatalf("delivery %s: %d requests, want 4", id, len(rs))
		}
		for k, nominal := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
			gap := rs[k+1].at.Sub(rs[k].at)
			if gap < nominal*9/10-time.Second || gap > nominal*11/10+time.Second { // jitter, and the 1 s steps
				t.Errorf("delivery %s: gap %d is %s, want %s ±10%%", id, k+1, gap, nominal)
			}
		}
	}
	waitUntil(t, "log recorded", 5*time.Second, func() bool { return len(node.attempts(whID)) == 4*events })
	perDelivery := map[string][]api.WebhookAttempt{}
	for _, a := range node.attempts(whID) {
		perDelivery[a.DeliveryID] = append(perDelivery[a.DeliveryID], a)
	}
	for id, as := range perDelivery {
		for i, a := range as {
			want := api.AttemptRetrying
			if i == 3 {
				want = api.AttemptSucceeded
			}
			if a.Outcome != want || a.Attempt != i+1 || (want == api.AttemptRetrying) != (a.NextAttemptAt != nil) {
				t.Errorf("delivery %s attempt %d: %+v", id, i+1, a)
			}
		}
		if d, _ := node.delivery(whID, id); d.Status != api.DeliverySucceeded || d.Attempts != 4 {
			t.Errorf("delivery %s: status %s attempts %d", id, d.Status, d.Attempts)
		}
	}
}

// TestRetryWindowEndsInFailure: a receiver that never recovers gets about a
// day of attempts, then the delivery is failed and nothing stays pending.
func TestRetryWindowEndsInFailure(t *testing.T) {
	clock := clocktest.NewFake(time.Date(2026, 6, 3, 0, 0, 0, 0, time.UTC))
	node := newTestNode(t, clock.Now)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock)
	rc.status = func(int, *http.Request) int { return http.StatusInternalServerError }
	disp := start(t, node, sealer, devGuard, nil, clock, Options{})
	node.ticket(acc, "t")
	rc.waitFor(t, "first attempt", 10*time.Second, func(r []received) bool { return len(r) == 1 })
	for i := 0; i < 20; i++ {
		quiesce(t, disp.d, clock)
		if disp.d.Stats().NextDue.IsZero() {
			break
		}
		advanceToNextRetry(t, disp.d, clock)
	}
	got := rc.all()
	if n := len(got); n < 12 || n > 13 {
		t.Fatalf("%d attempts, want 12-13 (1 m doubling to 6 h over about a day)", n)
	}
	span := got[len(got)-1].at.Sub(got[0].at)
	if span < 18*time.Hour || span > 24*time.Hour {
		t.Fatalf("attempts spanned %s, want about a day", span)
	}
	waitUntil(t, "failure recorded", 5*time.Second, func() bool {
		as := node.attempts(whID)
		return len(as) == len(got) && as[len(as)-1].Outcome == api.AttemptFailed
	})
	d, _ := node.delivery(whID, got[0].delivery)
	if d.Status != api.DeliveryFailed || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d.WebhookDelivery)
	}
	_ = node.f.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(store.BucketWebhookPending).Cursor().First(); k != nil {
			t.Errorf("pending entry left: %s", k)
		}
		return nil
	})
}

// TestGoneDisablesSubscription: a 410 disables the subscription; later events
// are not delivered to it.
func TestGoneDisablesSubscription(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock.Real{})
	rc.status = func(int, *http.Request) int { return http.StatusGone }
	start(t, node, sealer, devGuard, nil, clock.Real{}, Options{})
	node.ticket(acc, "t")
	rc.waitFor(t, "attempt", 5*time.Second, func(r []received) bool { return len(r) == 1 })
	waitUntil(t, "subscription disabled", 5*time.Second, func() bool {
		var w store.Webhook
		_ = node.f.View(func(tx *bolt.Tx) error { w, _ = store.Read(tx).WebhookByID(whID); return nil })
		return !w.Active && strings.Contains(w.DisabledReason, "410")
	})
	as := node.attempts(whID)
	if len(as) != 1 || as[0].Outcome != api.AttemptDisabled || as[0].StatusCode != 410 {
		t.Fatalf("log %+v", as)
	}
	node.ticket(acc, "after")
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.all()); n != 1 {
		t.Fatalf("%d requests after the subscription was disabled", n)
	}
}

// TestPausedAccumulatesNothing: events committed while a subscription is paused
// are never delivered to it, also not after it resumes.
func TestPausedAccumulatesNothing(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock.Real{})
	node.setActive(acc, whID, false)
	start(t, node, sealer, devGuard, nil, clock.Real{}, Options{})
	for i := 0; i < 3; i++ {
		node.ticket(acc, "while paused")
	}
	time.Sleep(50 * time.Millisecond)
	node.setActive(acc, whID, true)
	node.ticket(acc, "after resume")
	rc.waitFor(t, "one delivery", 5*time.Second, func(r []received) bool { return len(r) >= 1 })
	time.Sleep(100 * time.Millisecond)
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want only the event after resume", len(got))
	}
	if b := decodeBody(t, got[0].body); b.Data["subject"] != "after resume" {
		t.Fatalf("delivered %v", b.Data)
	}
}

// TestRedeliver re-queues a past delivery as a new chain with the same ids.
func TestRedeliver(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock.Real{})
	start(t, node, sealer, devGuard, nil, clock.Real{}, Options{})
	node.ticket(acc, "t")
	first := rc.waitFor(t, "delivery", 5*time.Second, func(r []received) bool { return len(r) == 1 })[0]
	waitUntil(t, "recorded", 5*time.Second, func() bool {
		d, ok := node.delivery(whID, first.delivery)
		return ok && d.Status == api.DeliverySucceeded
	})
	v := node.must(fsm.CmdWebhookRedeliver, fsm.WebhookRedeliver{WebhookID: whID, AccountID: acc, DeliveryID: first.delivery})
	if d := v.(api.WebhookDelivery); d.Chain != 2 || d.Status != api.DeliveryPending {
		t.Fatalf("redeliver returned %+v", d)
	}
	second := rc.waitFor(t, "redelivery", 5*time.Second, func(r []received) bool { return len(r) == 2 })[1]
	if second.delivery != first.delivery || decodeBody(t, second.body).ID != decodeBody(t, first.body).ID {
		t.Fatal("redelivery changed the delivery or event id")
	}
	waitUntil(t, "chain 2 recorded", 5*time.Second, func() bool {
		as := node.attempts(whID)
		return len(as) == 2 && as[1].Chain == 2 && as[1].Attempt == 1 && as[1].Outcome == api.AttemptSucceeded
	})
	// Another account cannot redeliver it.
	env, _ := fsm.NewEnvelope(fsm.CmdWebhookRedeliver, time.Now(), fsm.WebhookRedeliver{WebhookID: whID, AccountID: node.newAccount(), DeliveryID: first.delivery})
	if _, err := node.Apply(t.Context(), env); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("foreign redeliver: %v", err)
	}
}

// TestSlowReceiverDoesNotStarveOthers: one subscription's receiver hangs; the
// other subscription of the same account still gets every event promptly.
func TestSlowReceiverDoesNotStarveOthers(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	box := &secretBox{}
	slow := newReceiver(t, false, clock.Real{}, box.get)
	release := make(chan struct{})
	var inSlow atomic.Int64
	slow.status = func(int, *http.Request) int { inSlow.Add(1); <-release; return 200 }
	fast := newReceiver(t, false, clock.Real{}, box.get)
	acc := node.newAccount()
	_, s1 := node.subscribe(sealer, acc, slow.srv.URL)
	_, s2 := node.subscribe(sealer, acc, fast.srv.URL)
	box.set(s1, s2)
	t.Cleanup(func() { close(release) })
	start(t, node, sealer, devGuard, nil, clock.Real{}, Options{PerWebhook: 2, MaxInFlight: 8, AttemptTimeout: 20 * time.Second})
	for i := 0; i < 30; i++ {
		node.ticket(acc, "t")
	}
	fast.waitFor(t, "fast receiver gets all 30", 5*time.Second, func(r []received) bool { return len(r) == 30 })
	// The slow receiver's handler is where the mutex is held while blocked, so
	// count entries instead of reading its list.
	if n := inSlow.Load(); n != 2 {
		t.Fatalf("%d attempts in flight at the slow receiver, want the per-subscription bound 2", n)
	}
}

// TestResumesAfterLeaderChange: the dispatcher of a new term picks up pending
// retries and events the previous term never saw, from the FSM alone.
func TestResumesAfterLeaderChange(t *testing.T) {
	clock := noonClock()
	node := newTestNode(t, clock.Now)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock)
	down := rc.failWhileDown(502, 200)
	first := start(t, node, sealer, devGuard, nil, clock, Options{})
	for i := 0; i < 5; i++ {
		node.ticket(acc, "before")
	}
	rc.waitFor(t, "first attempts", 5*time.Second, func(r []received) bool { return len(r) == 5 })
	waitUntil(t, "retries recorded", 5*time.Second, func() bool { return len(node.attempts(whID)) == 5 })
	first.stop() // leadership lost
	for i := 0; i < 5; i++ {
		node.ticket(acc, "between terms")
	}
	down.Store(false)
	second := start(t, node, sealer, devGuard, nil, clock, Options{})
	rc.waitFor(t, "events of the gap", 5*time.Second, func(r []received) bool { return len(r) == 10 })
	stepUntil(t, second.d, clock, 2*time.Minute, func() bool { return len(rc.all()) == 15 })
	ok := map[string]bool{}
	for _, r := range rc.all() {
		if r.sigErr != nil {
			t.Fatal(r.sigErr)
		}
		ok[r.delivery] = true
	}
	if len(ok) != 10 {
		t.Fatalf("%d distinct deliveries, want 10", len(ok))
	}
	waitUntil(t, "all succeeded", 5*time.Second, func() bool {
		for id := range ok {
			if d, _ := node.delivery(whID, id); d.Status != api.DeliverySucceeded {
				return false
			}
		}
		return true
	})
}

// TestCursorAndOutboxPruning: the cursor follows the delivered events and the
// outbox is pruned once the retention passes.
func TestCursorAndOutboxPruning(t *testing.T) {
	clock := noonClock()
	node := newTestNode(t, clock.Now)
	sealer := newTestSealer(t)
	rc, acc, whID := node.subscribedReceiver(sealer, clock)
	start(t, node, sealer, devGuard, nil, clock, Options{OutboxRetention: time.Hour, Keep: 3})
	for i := 0; i < 5; i++ {
		node.ticket(acc, "t")
	}
	rc.waitFor(t, "deliveries", 5*time.Second, func(r []received) bool { return len(r) == 5 })
	outboxLen := func() (n int, last []byte, cursor []byte) {
		_ = node.f.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(store.BucketOutbox).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				n++
				last = append([]byte{}, k...)
			}
			cursor = store.Read(tx).WebhookCursor()
			return nil
		})
		return
	}
	waitUntil(t, "cursor at the last event", 5*time.Second, func() bool {
		n, last, cur := outboxLen()
		return n == 5 && string(cur) == string(last)
	})
	// The log keeps the newest Keep entries.
	if n := len(node.attempts(whID)); n != 3 {
		t.Fatalf("log has %d entries, want 3", n)
	}
	clock.Advance(2 * time.Hour)
	node.ticket(acc, "later")
	waitUntil(t, "old outbox entries pruned", 5*time.Second, func() bool { n, _, _ := outboxLen(); return n == 1 })
}
