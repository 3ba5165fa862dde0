package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// heldReceiver answers each POST to /held only when the test releases one
// answer (release), and every other path at once; it keeps the delivery ids
// it was sent, in order of arrival.
type heldReceiver struct {
	srv     *httptest.Server
	release chan struct{}
	mu      sync.Mutex
	got     map[string][]string // path → X-Sunucu-Delivery values
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	h := &heldReceiver{release: make(chan struct{}, 100), got: map[string][]string{}}
	stop := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.got[r.URL.Path] = append(h.got[r.URL.Path], r.Header.Get("X-Sunucu-Delivery"))
		h.mu.Unlock()
		if r.URL.Path == "/held" {
			select {
			case <-h.release:
			case <-stop:
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { close(stop); h.srv.Close() })
	return h
}

func (h *heldReceiver) sent(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got[path]...)
}

// subscribe subscribes account acc to events at url, straight through the
// FSM (the API's guard refuses a loopback receiver).
func (w *whAPI) subscribe(acc, url string, events ...string) string {
	w.t.Helper()
	sealer, err := webhook.NewSealer(bytes.Repeat([]byte{7}, webhook.KEKSize))
	if err != nil {
		w.t.Fatal(err)
	}
	id := ids.New("wh", time.Now())
	secret, hint := webhook.NewSecret()
	sealed, err := sealer.Seal(id, secret)
	if err != nil {
		w.t.Fatal(err)
	}
	w.apply(fsm.CmdWebhookCreate, fsm.WebhookCreate{ID: id, AccountID: acc, URL: url, Events: events, SealedSecret: sealed, SecretHint: hint, MaxPerAccount: 3})
	return id
}

// ticket opens a ticket of acc: a ticket.created event in the outbox.
func (w *whAPI) ticket(acc string) {
	w.t.Helper()
	w.apply(fsm.CmdTicketCreate, fsm.TicketCreate{ID: ids.New("tkt", time.Now()), AccountID: acc, MessageID: ids.New("msg", time.Now()),
		Subject: "s", Message: "m", Department: "technical", Priority: "high"})
}

// dispatch runs a webhook dispatcher on w's node until the test ends, one
// attempt in flight per subscription (the events' order), none timing out
// within the test.
func (w *whAPI) dispatch() {
	w.t.Helper()
	sealer, err := webhook.NewSealer(bytes.Repeat([]byte{7}, webhook.KEKSize))
	if err != nil {
		w.t.Fatal(err)
	}
	g := &webhook.Guard{AllowHTTP: true, AllowPrivate: true}
	d := webhook.New(webhook.Options{AttemptTimeout: time.Minute, PerWebhook: 1, FlushInterval: 5 * time.Millisecond},
		w.node.FSM, w.a.Apply, sealer, g.Client(time.Minute, nil, 4), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	w.t.Cleanup(func() { cancel(); <-done })
}

// deliveries is one page of a subscription's delivery log (the answer
// checked against openapi.json).
func (w *whAPI) deliveries(key, id string, page, limit int) (total int, rows []map[string]any) {
	w.t.Helper()
	st, l := w.do(key, "GET", fmt.Sprintf("/v1/webhooks/%s/deliveries?page=%d&limit=%d", id, page, limit), "")
	if st != 200 {
		w.t.Fatalf("deliveries of %s page %d: %d %v", id, page, st, l)
	}
	for _, r := range l["data"].([]any) {
		rows = append(rows, r.(map[string]any))
	}
	return int(l["total"].(float64)), rows
}

// TestWebhookDeliveryListedQueued: a delivery is listed from the moment its
// event applies, as queued, while the receiver holds its first attempt, and
// after the answer as its attempt with the same delivery id, one row
// throughout. A queued delivery's redeliver is a 409; another account's
// events never show.
func TestWebhookDeliveryListedQueued(t *testing.T) {
	w := newWHAPI(t)
	rc := newHeldReceiver(t)
	accA, keyA := w.account(api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	accB, keyB := w.account(api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	whA := w.subscribe(accA, rc.srv.URL+"/held", "ticket.created")
	whB := w.subscribe(accB, rc.srv.URL+"/b", "*")
	w.dispatch()

	w.ticket(accA)
	total, rows := w.deliveries(keyA, whA, 1, 50)
	if total != 1 || len(rows) != 1 {
		t.Fatalf("right after the event: total %d, rows %v; want the queued delivery", total, rows)
	}
	q := rows[0]
	dlv, _ := q["delivery_id"].(string)
	if q["outcome"] != api.AttemptQueued || q["delivery_status"] != api.DeliveryQueued || q["attempt"] != float64(0) ||
		q["event_type"] != "ticket.created" || !ids.Valid("dlv", dlv) || q["id"] != "" {
		t.Fatalf("queued row: %v", q)
	}
	if _, ok := q["attempted_at"]; ok {
		t.Errorf("queued row has an attempt time: %v", q)
	}
	// Account B's own event, past the dispatcher's cursor as A's is.
	w.ticket(accB)

	waitHook(t, "the held attempt to reach the receiver", func() bool { return len(rc.sent("/held")) == 1 })
	if got := rc.sent("/held")[0]; got != dlv {
		t.Fatalf("the receiver was sent delivery %s, the list showed %s", got, dlv)
	}
	if total, rows := w.deliveries(keyA, whA, 1, 50); total != 1 || len(rows) != 1 || rows[0]["delivery_id"] != dlv || rows[0]["outcome"] != api.AttemptQueued {
		t.Fatalf("while the receiver holds the attempt: total %d, rows %v", total, rows)
	}
	st, e := w.do(keyA, "POST", "/v1/webhooks/"+whA+"/deliveries/"+dlv+"/redeliver", "")
	if st != http.StatusConflict || e["code"] != "not_attempted_yet" {
		t.Fatalf("redeliver of the queued delivery: %d %v", st, e)
	}
	// Another account: the subscription is not found, and its queued
	// delivery is no delivery of its own.
	if st, _ := w.do(keyB, "GET", "/v1/webhooks/"+whA+"/deliveries", ""); st != http.StatusNotFound {
		t.Errorf("A's deliveries by B: %d", st)
	}
	if st, e := w.do(keyB, "POST", "/v1/webhooks/"+whB+"/deliveries/"+dlv+"/redeliver", ""); st != http.StatusNotFound {
		t.Errorf("B redelivering A's queued delivery on its own subscription: %d %v", st, e)
	}
	_, rowsB := w.deliveries(keyB, whB, 1, 50)
	for _, r := range rowsB {
		if r["delivery_id"] == dlv || r["event_type"] != "ticket.created" {
			t.Errorf("B's log shows %v", r)
		}
	}
	if len(rowsB) != 1 {
		t.Errorf("B's log: %v, want its one delivery", rowsB)
	}

	rc.release <- struct{}{}
	for deadline := time.Now().Add(10 * time.Second); ; {
		total, rows := w.deliveries(keyA, whA, 1, 50)
		if total != 1 || len(rows) != 1 || rows[0]["delivery_id"] != dlv {
			t.Fatalf("while the attempt applies: total %d, rows %v; want one row of %s", total, rows, dlv)
		}
		if rows[0]["outcome"] == api.AttemptSucceeded {
			if rows[0]["attempt"] != float64(1) || rows[0]["delivery_status"] != api.DeliverySucceeded || rows[0]["attempted_at"] == nil {
				t.Fatalf("delivered row: %v", rows[0])
			}
			break
		}
		if rows[0]["outcome"] != api.AttemptQueued || time.Now().After(deadline) {
			t.Fatalf("after the answer: %v", rows[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookDeliveryListQueuedPages: 50 events to a held receiver are all
// listed at once, and a walk through pages of 7 sees each delivery once,
// with no gap, while the first attempts of the oldest apply mid-walk.
func TestWebhookDeliveryListQueuedPages(t *testing.T) {
	w := newWHAPI(t)
	rc := newHeldReceiver(t)
	acc, key := w.account(api.ScopeWebhooksRead)
	other, _ := w.account(api.ScopeWebhooksRead)
	wh := w.subscribe(acc, rc.srv.URL+"/held", "*")
	w.subscribe(other, rc.srv.URL+"/other", "*")
	w.dispatch()
	for i := range 50 {
		w.ticket(acc)
		if i%10 == 0 {
			w.ticket(other) // another account's events between, never listed
		}
	}
	const limit = 7
	seen := map[string]int{}
	for page := 1; page <= 8; page++ {
		if page == 4 {
			// Mid-walk, the five oldest deliveries' first attempts apply.
			for range 5 {
				rc.release <- struct{}{}
			}
			waitHook(t, "five attempts recorded", func() bool {
				_, rows := w.deliveries(key, wh, 1, 200)
				n := 0
				for _, r := range rows {
					if r["outcome"] == api.AttemptSucceeded {
						n++
					}
				}
				return n == 5
			})
		}
		total, rows := w.deliveries(key, wh, page, limit)
		if total != 50 {
			t.Fatalf("page %d: total %d, want 50", page, total)
		}
		if want := min(limit, 50-(page-1)*limit); len(rows) != want {
			t.Fatalf("page %d: %d rows, want %d", page, len(rows), want)
		}
		for _, r := range rows {
			seen[r["delivery_id"].(string)]++
		}
	}
	if len(seen) != 50 {
		t.Errorf("the walk saw %d deliveries, want 50", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s seen %d times", id, n)
		}
	}
	for _, id := range rc.sent("/held") {
		if seen[id] != 1 {
			t.Errorf("delivery %s sent to the receiver was not listed once: %d", id, seen[id])
		}
	}
}

func waitHook(t *testing.T, what string, cond func() bool) {
	t.Helper()
	framework.WaitFor(t, what, 10*time.Second, 5*time.Millisecond, cond)
}

// TestWebhookDeliveryListedQueuedWhileHeld: a delivery held by a pause
// before its first attempt (recorded pending, nothing logged) stays listed
// as queued, with the same id, until the resume sends it.
func TestWebhookDeliveryListedQueuedWhileHeld(t *testing.T) {
	w := newWHAPI(t)
	w.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	rc := newHeldReceiver(t)
	acc, key := w.account(api.ScopeWebhooksRead)
	wh := w.subscribe(acc, rc.srv.URL+"/now", "*")
	w.ticket(acc)
	paused, resumed := false, true
	w.apply(fsm.CmdWebhookUpdate, fsm.WebhookUpdate{ID: wh, AccountID: acc, Active: &paused})
	total, rows := w.deliveries(key, wh, 1, 50)
	if total != 1 || len(rows) != 1 || rows[0]["outcome"] != api.AttemptQueued {
		t.Fatalf("an event before the pause: total %d, rows %v; want it queued", total, rows)
	}
	dlv := rows[0]["delivery_id"].(string)
	w.dispatch() // it records the delivery held
	waitHook(t, "the hold recorded", func() bool {
		held := false
		_ = w.node.FSM.Read(func(r store.ReadTx) error { held = r.DeliveryExists(wh, dlv); return nil })
		return held
	})
	if total, rows := w.deliveries(key, wh, 1, 50); total != 1 || len(rows) != 1 || rows[0]["delivery_id"] != dlv || rows[0]["outcome"] != api.AttemptQueued {
		t.Fatalf("held: total %d, rows %v; want the one queued row %s", total, rows, dlv)
	}
	if len(rc.sent("/now")) != 0 {
		t.Fatalf("sent while paused: %v", rc.sent("/now"))
	}
	w.apply(fsm.CmdWebhookUpdate, fsm.WebhookUpdate{ID: wh, AccountID: acc, Active: &resumed})
	waitHook(t, "the delivery's attempt after the resume", func() bool {
		total, rows := w.deliveries(key, wh, 1, 50)
		if total != 1 || len(rows) != 1 || rows[0]["delivery_id"] != dlv {
			t.Fatalf("after the resume: total %d, rows %v; want one row of %s", total, rows, dlv)
		}
		return rows[0]["outcome"] == api.AttemptSucceeded
	})
}
