// Package webhook delivers the platform's events to subscribers' URLs: a
// leader-only dispatcher that reads the FSM's outbox, signs and POSTs each
// (event, subscription) pair through an SSRF-guarded client, retries on a
// back-off schedule driven by an injected clock, and records every attempt
// through Raft in batches. It also seals signing secrets under the KEK.
package webhook

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/version"
	pkgwebhook "github.com/hostplane/hostplane/pkg/webhook"
)

// MaxResponseLog is how much of a receiver's response body the log keeps.
const MaxResponseLog = 1024

// Options tune the dispatcher. Zero values take the defaults noted.
type Options struct {
	Brand string // header brand: X-<Brand>-Signature; "Sunucu"
	// Dialect renames each event's type and payload fields into the
	// brand's names before it is matched, signed and sent (nil: sunucu).
	Dialect         *brand.Brand
	AttemptTimeout  time.Duration // 10 s: a 2xx must arrive within it
	Backoff         Backoff       // DefaultBackoff
	PerWebhook      int           // attempts in flight per subscription; 4
	MaxInFlight     int           // attempts in flight in total; 512 (an account at most half: fair.go)
	FlushInterval   time.Duration // how often attempts are written through Raft; 50 ms
	MaxBatch        int           // attempts per Raft command; 2000
	Keep            int           // log entries kept per subscription; 1000
	OutboxRetention time.Duration // delivered outbox entries are pruned after it; 72 h
	PollInterval    time.Duration // how often the FSM's applied index is checked; 5 ms
	MaxQueued       int           // fresh deliveries held in memory before reading pauses; 100000
}

func (o *Options) defaults() {
	if o.Brand == "" {
		o.Brand = "Sunucu"
	}
	positiveOr(&o.AttemptTimeout, 10*time.Second)
	if o.Backoff.Initial <= 0 {
		o.Backoff = DefaultBackoff
	}
	positiveOr(&o.PerWebhook, 4)
	positiveOr(&o.MaxInFlight, 512)
	positiveOr(&o.FlushInterval, 50*time.Millisecond)
	positiveOr(&o.MaxBatch, 2000)
	positiveOr(&o.Keep, 1000)
	positiveOr(&o.OutboxRetention, 72*time.Hour)
	positiveOr(&o.PollInterval, 5*time.Millisecond)
	positiveOr(&o.MaxQueued, 100000)
}

// positiveOr sets *v to def unless it is positive.
func positiveOr[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// State is the read side of the FSM (*fsm.FSM).
type State interface {
	store.Reader
	AppliedIndex() uint64
}

// Applier proposes a command through Raft and waits for it to apply.
type Applier func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)

// Dispatcher delivers webhooks while its node leads. Run it once per term of
// leadership; it keeps no state between runs beyond what the FSM holds.
type Dispatcher struct {
	opt    Options
	state  State
	apply  Applier
	sealer *Sealer
	client *http.Client
	clock  clock.Clock
	log    *slog.Logger
	rnd    func() float64

	// Observe, if set, is called after each attempt (tests and benchmarks).
	Observe func(AttemptInfo)

	cur atomic.Pointer[run] // the running term, for Stats and tests

	// Hold's state: holds pending, whether a run is active and its cancel.
	holdMu       sync.Mutex
	holdCond     *sync.Cond
	holds        int
	active       bool
	activeCancel context.CancelFunc
}

// Stats is a snapshot of the dispatcher's in-memory state.
type Stats struct {
	Running   bool
	Busy      int64     // deliveries handed to workers and not finished
	Scheduled int       // retries waiting for their time
	NextDue   time.Time // earliest scheduled retry (zero if none)
	Tracked   int       // deliveries owned in memory
	// Read is the FSM's applied index as of the latest read of the
	// subscriptions (and of the outbox, up to MaxQueued); 0 before the first.
	Read uint64
}

// Stats reports the dispatcher's in-memory state.
func (d *Dispatcher) Stats() Stats {
	r := d.cur.Load()
	if r == nil {
		return Stats{}
	}
	st := Stats{Running: true, Busy: r.busy.Load(), Read: r.read.Load()}
	r.timers.mu.Lock()
	st.Scheduled = len(r.timers.h)
	if len(r.timers.h) > 0 {
		st.NextDue = r.timers.h[0].due
	}
	r.timers.mu.Unlock()
	r.mu.Lock()
	st.Tracked = len(r.tracked)
	r.mu.Unlock()
	return st
}

// AttemptInfo describes one finished attempt to an observer.
type AttemptInfo struct {
	WebhookID, DeliveryID, EventID string
	Number, Chain                  int
	Outcome                        string
	Start                          time.Time // wall clock
}

// New builds a dispatcher. client should come from Guard.Client.
func New(opt Options, state State, apply Applier, sealer *Sealer, client *http.Client, clk clock.Clock, log *slog.Logger) *Dispatcher {
	opt.defaults()
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{opt: opt, state: state, apply: apply, sealer: sealer, client: client, clock: clk, log: log, rnd: rand.Float64}
	d.holdCond = sync.NewCond(&d.holdMu)
	return d
}

// Hold ends the running term's reading, attempts and records, waits until
// it has stopped (its last record's proposal answered or given up), and
// keeps any other from starting until release is called; Run then starts
// again from the state as it is. A `cluster restore` holds the dispatcher
// around the restore, so that no record read from the state it replaces
// is proposed after it (the restore's caller then waits for the proposals
// already made with a Raft barrier).
func (d *Dispatcher) Hold() (release func()) {
	release, _ = d.HoldWithin(0)
	return release
}

// ErrHoldTimeout: the running term did not stop within HoldWithin's time (a
// record's proposal that does not return, an apply stalled).
var ErrHoldTimeout = errors.New("the webhook dispatcher did not stop in time")

// HoldWithin is Hold waiting at most timeout (0: no limit) for the running
// term to stop. When it does not, nothing is held (the term, cancelled,
// ends when its proposal returns, and the dispatcher runs again) and the
// error is ErrHoldTimeout.
func (d *Dispatcher) HoldWithin(timeout time.Duration) (release func(), err error) {
	d.holdMu.Lock()
	d.holds++
	if d.active {
		d.activeCancel()
	}
	expired := false
	if timeout > 0 && d.active {
		t := time.AfterFunc(timeout, func() {
			d.holdMu.Lock()
			expired = true
			d.holdCond.Broadcast()
			d.holdMu.Unlock()
		})
		defer t.Stop()
	}
	for d.active && !expired {
		d.holdCond.Wait()
	}
	if d.active {
		d.holds--
		d.holdCond.Broadcast()
		d.holdMu.Unlock()
		return nil, ErrHoldTimeout
	}
	d.holdMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.holdMu.Lock()
			d.holds--
			d.holdCond.Broadcast()
			d.holdMu.Unlock()
		})
	}, nil
}

// enter waits until no Hold is in force and marks a run active, with a
// context Hold cancels; false when ctx ended first.
func (d *Dispatcher) enter(ctx context.Context) (context.Context, bool) {
	stop := context.AfterFunc(ctx, func() {
		d.holdMu.Lock()
		d.holdCond.Broadcast()
		d.holdMu.Unlock()
	})
	defer stop()
	d.holdMu.Lock()
	defer d.holdMu.Unlock()
	for d.holds > 0 && ctx.Err() == nil {
		d.holdCond.Wait()
	}
	if ctx.Err() != nil {
		return nil, false
	}
	runCtx, cancel := context.WithCancel(ctx)
	d.active, d.activeCancel = true, cancel
	return runCtx, true
}

// leave marks the run ended.
func (d *Dispatcher) leave() {
	d.holdMu.Lock()
	d.activeCancel()
	d.active, d.activeCancel = false, nil
	d.holdCond.Broadcast()
	d.holdMu.Unlock()
}

// Options returns the effective options.
func (d *Dispatcher) Options() Options { return d.opt }

// sub is a subscription as the dispatcher uses it: secret unsealed.
type sub struct {
	w         store.Webhook
	secret    string
	unsealErr error
}

// prepared is an event with its delivery body encoded once.
type prepared struct {
	ev   store.Event
	body []byte
}

type job struct {
	webhookID  string
	deliveryID string
	ev         *prepared
	chain      int
	number     int       // attempt number within the chain, 1-based
	chainStart time.Time // the chain's window start (store.Delivery.ChainStart)
	first      bool      // first attempt of chain 1: the record carries the event
	cursorKey  string    // outbox key the cursor waits on ("" if none)
	due        time.Time
}

type result struct {
	job   *job
	rec   *fsm.WebhookAttemptRecord // nil when the job was dropped
	final bool                      // the chain ended (success, failure, disabled, dropped)
	retry *job
}

// run is the state of one leadership term.
type run struct {
	d   *Dispatcher
	ctx context.Context
	// cancel ends the run; restores and gen are the FSM's count of
	// restores and its value in the run's first read of the state (stale).
	cancel   context.CancelFunc
	restores restoreCounter
	gen      uint64
	restored atomic.Bool
	// epoch is the restore epoch (store.RestoreEpoch) of the state the run
	// read: its records carry it, and from semantics level 11 a record read
	// from a state a `cluster restore` replaced moves no cursor when it
	// applies after the restore.
	epoch uint64

	subs   atomic.Pointer[map[string]*sub]
	byAcct map[string][]string // accountID → webhook ids (scanner goroutine only)

	subsVersion, redeliverVersion uint64
	outboxPos                     []byte

	tracker *cursorTracker
	results chan result
	slots   *fairSlots
	queued  atomic.Int64
	busy    atomic.Int64
	read    atomic.Uint64 // Stats.Read

	mu      sync.Mutex
	queues  map[string]*subQueue
	tracked map[string]int // deliveryID → chain owned in memory
	// held are the deliveries of paused subscriptions (Webhook.Holding),
	// by webhook id, released to the timers when the subscription resumes
	// or goes away (loadSubs).
	held map[string][]*job

	timers *timerQueue
	wg     sync.WaitGroup
}

type subQueue struct {
	jobs    []*job
	running int
}

// restoreCounter is the FSM's count of restores (fsm.FSM.Restores), when
// the State has one.
type restoreCounter interface{ Restores() uint64 }

// errRestored ends a run whose state was replaced by a restore.
var errRestored = errors.New("state restored")

// Run delivers until ctx is cancelled (leadership lost). It returns ctx's error
// or a fatal start-up error. A restore installed while it runs (a `cluster
// restore`) ends the run's reading, attempts and records, and a new run
// starts on the restored state, as a new leader's would: from the cursor
// that state holds, with its pending deliveries. The run's position in the
// outbox and its cursor belong to the state it read, and would skip the
// restored state's undelivered events.
func (d *Dispatcher) Run(ctx context.Context) error {
	for {
		runCtx, ok := d.enter(ctx)
		if !ok {
			return ctx.Err()
		}
		err := d.runOnce(runCtx)
		// Held is read before leave, which cancels runCtx itself: after
		// it, every run would look held, and a start-up error would start
		// the run again at once, forever, instead of ending Run.
		held := runCtx.Err() != nil
		d.leave()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errRestored):
			d.log.Info("state restored: the webhook dispatcher starts again from the cursor it holds")
		case held:
			// Held (Hold): the next run starts once released.
		default:
			return err
		}
	}
}

func (d *Dispatcher) runOnce(parent context.Context) error {
	rc, _ := d.state.(restoreCounter)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	r := &run{
		d: d, ctx: ctx, cancel: cancel, restores: rc, tracker: newCursorTracker(), results: make(chan result, 8192),
		slots: newFairSlots(d.opt.MaxInFlight, d.opt.MaxInFlight/2), queues: map[string]*subQueue{}, tracked: map[string]int{},
		held:   map[string][]*job{},
		timers: newTimerQueue(),
	}
	var cursor []byte
	err := d.state.Read(func(tx store.ReadTx) error {
		// Read with the state: a restore swaps the state and counts
		// itself while no read is open (fsm.FSM.Restores).
		if rc != nil {
			r.gen = rc.Restores()
		}
		cursor = tx.WebhookCursor()
		r.epoch = tx.RestoreEpoch()
		r.loadSubs(tx)
		return r.scanPending(tx)
	})
	if err != nil {
		return fmt.Errorf("webhook dispatcher start: %w", err)
	}
	r.outboxPos = cursor
	r.tracker.last = cursor
	d.cur.Store(r)
	defer d.cur.CompareAndSwap(r, nil)
	d.log.Info("webhook dispatcher started", "cursor", cursorString(cursor), "subscriptions", len(*r.subs.Load()), "pending", len(r.tracked))

	recDone := make(chan struct{})
	go func() { defer close(recDone); r.recorder(cursor) }()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.scheduler() }()
	r.poll()
	r.wg.Wait()
	close(r.results)
	<-recDone
	if parent.Err() == nil && r.restored.Load() {
		return errRestored
	}
	return parent.Err()
}

// stale reports whether a restore replaced the state the run read, and
// then ends the run.
func (r *run) stale() bool {
	if r.restored.Load() {
		return true
	}
	if r.restores == nil || r.restores.Restores() == r.gen {
		return false
	}
	r.restored.Store(true)
	r.cancel()
	return true
}

func cursorString(k []byte) string {
	if len(k) != 10 {
		return "start"
	}
	return fmt.Sprintf("%d/%d", binary.BigEndian.Uint64(k), binary.BigEndian.Uint16(k[8:]))
}

func (r *run) loadSubs(tx store.ReadTx) {
	m := map[string]*sub{}
	by := map[string][]string{}
	tx.ForEachWebhook(func(key string, w store.Webhook, err error) {
		if err != nil {
			r.d.log.Error("undecodable webhook subscription", "key", key, "err", err)
			return
		}
		s := &sub{w: w}
		s.secret, s.unsealErr = r.d.sealer.Open(w.ID, w.SealedSecret)
		if s.unsealErr != nil {
			r.d.log.Error("webhook secret cannot be unsealed: is --webhook-kek-file the same on every coordinator?", "webhook_id", w.ID)
		}
		m[w.ID] = s
		by[w.AccountID] = append(by[w.AccountID], w.ID)
	})
	r.subs.Store(&m)
	r.byAcct = by
	r.subsVersion = tx.WebhookMeta(store.WebhookSubsVersionKey)
	r.releaseHeld(tx, m)
}

// releaseHeld hands the held deliveries of every subscription no longer
// paused (resumed, or deleted: attempt drops those) to the timers, due at
// the resume's time as the FSM recorded it (now when it has none), so the
// expiry check (attempt) decides on what every leader reads; the timers
// hand equal-due jobs out in delivery-id order, the events' order
// (PerWebhook are sent at once, so a receiver may see another order).
func (r *run) releaseHeld(tx store.ReadTx, subs map[string]*sub) {
	var out []*job
	r.mu.Lock()
	for id, js := range r.held {
		if s := subs[id]; s == nil || !s.w.Holding() {
			out = append(out, js...)
			delete(r.held, id)
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return
	}
	now := r.d.clock.Now()
	for _, j := range out {
		j.due = now
		if d, err := tx.Delivery(j.webhookID, j.deliveryID); err == nil && d.NextAttemptAt != nil && d.Chain == j.chain {
			j.due = *d.NextAttemptAt
		}
		r.timers.add(j)
	}
	r.d.log.Info("webhook deliveries held while paused released", "deliveries", len(out))
}

// scanPending schedules every pending delivery the run does not own yet (at
// start: all of them; later: new redeliver chains).
func (r *run) scanPending(tx store.ReadTx) error {
	r.redeliverVersion = tx.WebhookMeta(store.WebhookRedeliverVersionKey)
	return tx.ForEachPendingDelivery(func(d store.Delivery) error {
		r.mu.Lock()
		owned, ok := r.tracked[d.ID]
		if ok && owned >= d.Chain {
			r.mu.Unlock()
			return nil
		}
		r.tracked[d.ID] = d.Chain
		r.mu.Unlock()
		j := &job{
			webhookID: d.WebhookID, deliveryID: d.ID, ev: prepare(r.d.opt.Dialect, d.Event), chain: d.Chain,
			number: d.Attempts + 1, chainStart: d.ChainStart,
		}
		if d.NextAttemptAt != nil {
			j.due = *d.NextAttemptAt
		}
		r.timers.add(j)
		return nil
	})
}

// prepare renames ev into the dialect's names and encodes its body. The
// rename is idempotent: an event recorded already renamed (a delivery's
// event, redelivered) comes out the same.
func prepare(b *brand.Brand, ev store.Event) *prepared {
	ev.Data = b.EventData(ev.Type, ev.Data)
	ev.Type = b.Event(ev.Type)
	body, _ := json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt time.Time       `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}{ev.ID, ev.Type, ev.CreatedAt.UTC(), ev.Data})
	return &prepared{ev: ev, body: body}
}

// poll watches the FSM's applied index and reads what changed.
func (r *run) poll() {
	tick := time.NewTicker(r.d.opt.PollInterval)
	defer tick.Stop()
	var seen uint64
	more := false
	for {
		if !more {
			select {
			case <-r.ctx.Done():
				return
			case <-tick.C:
			}
		} else if r.ctx.Err() != nil {
			return
		}
		if r.stale() {
			return
		}
		applied := r.d.state.AppliedIndex()
		if applied == seen && !more {
			continue
		}
		var err error
		more, err = r.readChanges()
		if err != nil {
			r.d.log.Error("webhook dispatcher read failed", "err", err)
			more = false
			continue
		}
		seen = applied
		r.read.Store(applied)
	}
}

const scanBatch = 1000

// readChanges reloads subscriptions and redeliveries when they changed and reads
// new outbox events; more is true when another batch is waiting.
func (r *run) readChanges() (more bool, err error) {
	err = r.d.state.Read(func(tx store.ReadTx) error {
		if r.stale() {
			// A restore replaced the state the run read: nothing of the
			// new one is acted on by this run (the next reads it).
			more = false
			return nil
		}
		if v := tx.WebhookMeta(store.WebhookSubsVersionKey); v != r.subsVersion {
			r.loadSubs(tx)
		}
		if v := tx.WebhookMeta(store.WebhookRedeliverVersionKey); v != r.redeliverVersion {
			if err := r.scanPending(tx); err != nil {
				return err
			}
		}
		if int(r.queued.Load()) >= r.d.opt.MaxQueued {
			return nil // back-pressure: read on once receivers catch up
		}
		if len(r.byAcct) == 0 {
			// No subscription anywhere: no event needs reading, only the
			// cursor moves past them.
			var last []byte
			if last, more = tx.SkipOutbox(r.outboxPos, scanBatch); last != nil {
				r.tracker.add(string(last), 0)
				r.outboxPos = last
			}
			return nil
		}
		// fanOut needs more than the account only for an account with a
		// subscription.
		wanted := func(accountID string) bool { return len(r.byAcct[accountID]) > 0 }
		more = tx.ScanOutboxFor(r.outboxPos, scanBatch, wanted, func(ev store.Event, err error) {
			if err != nil {
				r.d.log.Error("undecodable outbox entry", "key", cursorString(ev.Seq), "err", err)
			} else {
				r.fanOut(tx, &ev)
			}
			r.outboxPos = ev.Seq
		})
		return nil
	})
	return more, err
}

// fanOut makes one delivery per subscription that takes the event.
func (r *run) fanOut(tx store.ReadTx, ev *store.Event) {
	subs := *r.subs.Load()
	var jobs []*job
	var p *prepared
	for _, id := range r.byAcct[ev.AccountID] {
		s := subs[id]
		if s == nil || !Matches(r.d.opt.Dialect, &s.w, ev) {
			continue
		}
		dlv := DeliveryID(ev.ID, s.w.ID, ev.CreatedAt)
		if tx.DeliveryExists(s.w.ID, dlv) {
			continue // a previous leader recorded it; pending ones were scheduled at start
		}
		if p == nil {
			p = prepare(r.d.opt.Dialect, *ev)
		}
		jobs = append(jobs, &job{
			webhookID: s.w.ID, deliveryID: dlv, ev: p, chain: 1, number: 1, first: true, cursorKey: string(ev.Seq),
		})
	}
	r.tracker.add(string(ev.Seq), len(jobs))
	for _, j := range jobs {
		r.mu.Lock()
		r.tracked[j.deliveryID] = 1
		r.mu.Unlock()
		r.queued.Add(1)
		r.dispatch(j)
	}
}

// dispatch queues j behind its subscription's in-flight attempts.
func (r *run) dispatch(j *job) {
	r.busy.Add(1)
	r.mu.Lock()
	q := r.queues[j.webhookID]
	if q == nil {
		q = &subQueue{}
		r.queues[j.webhookID] = q
	}
	if q.running >= r.d.opt.PerWebhook {
		q.jobs = append(q.jobs, j)
		r.mu.Unlock()
		return
	}
	q.running++
	r.mu.Unlock()
	r.wg.Add(1)
	go r.worker(j.webhookID, q, j)
}

func (r *run) worker(webhookID string, q *subQueue, j *job) {
	defer r.wg.Done()
	for j != nil {
		r.attempt(j)
		r.busy.Add(-1)
		r.mu.Lock()
		if len(q.jobs) > 0 && r.ctx.Err() == nil {
			j = q.jobs[0]
			q.jobs[0] = nil
			q.jobs = q.jobs[1:]
		} else {
			j = nil
			q.running--
			if q.running == 0 && len(q.jobs) == 0 {
				delete(r.queues, webhookID)
			}
		}
		r.mu.Unlock()
	}
}

func (r *run) send(res result) {
	select {
	case r.results <- res:
	case <-r.ctx.Done():
	}
}

// attempt makes one HTTP attempt of j and reports it.
func (r *run) attempt(j *job) {
	if j.first {
		defer r.queued.Add(-1)
	}
	account := j.ev.ev.AccountID
	if r.slots.acquire(r.ctx, account) != nil {
		return
	}
	defer r.slots.release(account)
	// The subscription is read under r.mu, as releaseHeld reads the held
	// ones after storing new subscriptions: a job is never held after its
	// subscription's resume was released.
	r.mu.Lock()
	s := (*r.subs.Load())[j.webhookID]
	superseded := r.tracked[j.deliveryID] > j.chain
	if s != nil && !superseded && s.w.Holding() {
		h := *j
		h.first, h.cursorKey = false, ""
		if h.chainStart.IsZero() && h.chain == 1 {
			// Held before its first attempt: its window runs from the
			// event's time, as the FSM records it (recordHeld).
			h.chainStart = j.ev.ev.CreatedAt
		}
		r.held[j.webhookID] = append(r.held[j.webhookID], &h)
		r.mu.Unlock()
		if j.first {
			// Not recorded yet: the FSM creates the delivery, pending and
			// held, so the cursor can pass the event.
			now := r.d.clock.Now()
			ev := j.ev.ev
			r.send(result{job: j, rec: &fsm.WebhookAttemptRecord{
				ID: ids.New("att", now), WebhookID: j.webhookID, DeliveryID: j.deliveryID, Chain: j.chain, At: now.UTC(),
				Outcome: fsm.OutcomeHeld, Event: &ev,
			}})
		}
		return
	}
	r.mu.Unlock()
	if s == nil || !s.w.Active || superseded {
		// Deleted, paused or disabled since below level 2 (the FSM failed
		// its pending deliveries), or replaced by a redeliver: drop
		// without an attempt.
		r.send(result{job: j, final: !superseded})
		return
	}
	now := r.d.clock.Now()
	if j.chainStart.IsZero() {
		j.chainStart = now
	}
	rec := &fsm.WebhookAttemptRecord{
		ID: ids.New("att", now), WebhookID: j.webhookID, DeliveryID: j.deliveryID, Chain: j.chain, Number: j.number, At: now.UTC(),
	}
	if j.first {
		ev := j.ev.ev
		rec.Event = &ev
	}
	// A delivery due past its chain's window (held by a pause or a 410
	// longer than that) expires instead of being sent. Both times are the
	// replicated state's (the delivery's ChainStart and the next attempt the
	// FSM scheduled, the resume's time for a held one), so every leader
	// expires the same deliveries, whichever held them.
	due := j.due
	if due.IsZero() {
		due = now
	}
	if !j.chainStart.IsZero() && due.Sub(j.chainStart) > r.d.opt.Backoff.Window {
		rec.Outcome = api.AttemptExpired
		rec.Error = fmt.Sprintf("not sent: held while the webhook was paused or disabled, and its retry window (%s from %s) was over when it was due at %s; redeliver it to send it again",
			r.d.opt.Backoff.Window, j.chainStart.UTC().Format(time.RFC3339), due.UTC().Format(time.RFC3339))
		if obs := r.d.Observe; obs != nil {
			obs(AttemptInfo{WebhookID: j.webhookID, DeliveryID: j.deliveryID, EventID: j.ev.ev.ID, Number: j.number, Chain: j.chain, Outcome: rec.Outcome, Start: time.Now()})
		}
		r.send(result{job: j, rec: rec, final: true})
		return
	}
	start := time.Now()
	code, respBody, gone, err := r.post(s, j, now)
	rec.DurationMs = time.Since(start).Milliseconds()
	rec.StatusCode, rec.Response = code, respBody
	res := result{job: j, rec: rec}
	switch {
	case err == nil:
		rec.Outcome, res.final = api.AttemptSucceeded, true
	case gone:
		rec.Outcome, res.final = api.AttemptDisabled, true
		rec.Error = err.Error()
		rec.Reason = "disabled after the receiver answered 410 Gone"
		if r.holdsOnDisable() {
			// The FSM holds the delivery with the subscription's others
			// for the resume: so does this run, once the disable applied.
			res.final = false
			res.retry = &job{
				webhookID: j.webhookID, deliveryID: j.deliveryID, ev: j.ev, chain: j.chain, number: j.number + 1,
				chainStart: j.chainStart, due: now.Add(r.d.opt.Backoff.Delay(j.number)),
			}
		}
	default:
		rec.Error = err.Error()
		if next, ok := r.d.opt.Backoff.Next(j.number, j.chainStart, now, r.d.rnd()); ok {
			rec.Outcome = api.AttemptRetrying
			nu := next.UTC()
			rec.NextAttemptAt = &nu
			res.retry = &job{
				webhookID: j.webhookID, deliveryID: j.deliveryID, ev: j.ev, chain: j.chain, number: j.number + 1,
				chainStart: j.chainStart, due: next,
			}
		} else {
			rec.Outcome, res.final = api.AttemptFailed, true
		}
	}
	if obs := r.d.Observe; obs != nil {
		obs(AttemptInfo{WebhookID: j.webhookID, DeliveryID: j.deliveryID, EventID: j.ev.ev.ID, Number: j.number, Chain: j.chain, Outcome: rec.Outcome, Start: start})
	}
	if res.retry != nil {
		r.timers.add(res.retry)
	}
	r.send(res)
}

// holdsOnDisable reports whether the cluster's semantics level holds a
// disabled subscription's pending deliveries (fsm.LevelWebhookHold).
func (r *run) holdsOnDisable() bool {
	var level uint16
	_ = r.d.state.Read(func(tx store.ReadTx) error { level = tx.ClusterLevel(); return nil })
	return level >= fsm.LevelWebhookHold
}

// post sends one signed request. err is nil only for a 2xx; gone marks a 410.
func (r *run) post(s *sub, j *job, now time.Time) (code int, body string, gone bool, err error) {
	if s.unsealErr != nil {
		return 0, "", false, errors.New("the signing secret is unavailable on the delivering coordinator (key-encryption key mismatch); the operator has been alerted")
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.d.opt.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.w.URL, bytes.NewReader(j.ev.body))
	if err != nil {
		return 0, "", false, fmt.Errorf("invalid url: %v", err)
	}
	brand := r.d.opt.Brand
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hostplane-webhooks/"+version.Version)
	req.Header.Set("X-"+brand+"-Signature", pkgwebhook.Sign(s.secret, now, j.ev.body))
	req.Header.Set("X-"+brand+"-Event", j.ev.ev.Type)
	req.Header.Set("X-"+brand+"-Delivery", j.deliveryID)
	resp, err := r.d.client.Do(req)
	if err != nil {
		return 0, "", false, describeError(err, r.d.opt.AttemptTimeout)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseLog))
	// Drain a little more so the connection can be reused; give up beyond that.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	body = strings.ToValidUTF8(string(raw), "\uFFFD")
	code = resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return code, body, false, nil
	case code == http.StatusGone:
		return code, body, true, errors.New("receiver answered 410 Gone; the subscription was disabled")
	case code >= 300 && code < 400:
		loc := resp.Header.Get("Location")
		if len(loc) > 200 {
			loc = loc[:200] + "…"
		}
		return code, body, false, fmt.Errorf("receiver answered %d (redirect to %q); redirects are not followed", code, loc)
	default:
		return code, body, false, fmt.Errorf("receiver answered %d", code)
	}
}

// describeError turns a transport error into the text the customer reads.
func describeError(err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrForbiddenURL):
		var msg string
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.HasPrefix(e.Error(), ErrForbiddenURL.Error()) {
				msg = e.Error() // the outermost one carries the reason
				break
			}
		}
		if msg == "" {
			msg = err.Error()
		}
		return errors.New("blocked before connecting: " + msg)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no response within %s", timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("attempt cancelled (coordinator leadership changed)")
	}
	msg := err.Error()
	// url.Error repeats the method and URL; keep the cause.
	if i := strings.LastIndex(msg, "\": "); i >= 0 {
		msg = msg[i+3:]
	}
	return errors.New("connection failed: " + msg)
}

// recorder batches attempt records into Raft commands; recorded is the
// cursor the state holds.
func (r *run) recorder(recorded []byte) {
	tick := time.NewTicker(r.d.opt.FlushInterval)
	defer tick.Stop()
	var batch []fsm.WebhookAttemptRecord
	var finals []*job
	lastCursor := recorded
	lastFlush := time.Now()
	flush := func() {
		cursor := r.tracker.advance()
		cursorMoved := cursor != nil && !bytes.Equal(cursor, lastCursor)
		if len(batch) == 0 && (!cursorMoved || time.Since(lastFlush) < time.Second) {
			return
		}
		cmd := fsm.WebhookAttempts{
			Attempts: batch, Keep: r.d.opt.Keep,
			PruneOutboxBefore: r.d.clock.Now().Add(-r.d.opt.OutboxRetention).UTC(), PruneOutboxLimit: 1000,
			StateEpoch: r.epoch,
		}
		if cursorMoved {
			cmd.Cursor = cursor
		}
		for r.ctx.Err() == nil && !r.stale() {
			env, err := fsm.NewEnvelope(fsm.CmdWebhookAttempts, r.d.clock.Now(), cmd)
			if err == nil {
				_, err = r.d.apply(r.ctx, env)
			}
			if err == nil {
				break
			}
			r.d.log.Warn("recording webhook attempts failed; retrying", "attempts", len(batch), "err", err)
			select {
			case <-r.ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if r.ctx.Err() != nil || r.stale() {
			return
		}
		lastFlush = time.Now()
		if cursorMoved {
			lastCursor = cursor
		}
		r.mu.Lock()
		for _, j := range finals {
			if r.tracked[j.deliveryID] == j.chain {
				delete(r.tracked, j.deliveryID)
			}
		}
		r.mu.Unlock()
		batch, finals = batch[:0:0], finals[:0:0]
	}
	for {
		select {
		case res, ok := <-r.results:
			if !ok {
				return
			}
			if res.rec != nil {
				batch = append(batch, *res.rec)
			}
			if res.final {
				finals = append(finals, res.job)
			}
			if res.job.first && res.job.cursorKey != "" {
				r.tracker.done(res.job.cursorKey)
			}
			if len(batch) >= r.d.opt.MaxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// scheduler hands retries to dispatch when they fall due on the clock.
func (r *run) scheduler() {
	for {
		r.busy.Add(1) // covers the hand-over from the heap to dispatch
		j, wait := r.timers.next(r.d.clock.Now())
		if j != nil {
			r.dispatch(j)
			r.busy.Add(-1)
			continue
		}
		r.busy.Add(-1)
		var due <-chan time.Time
		if wait > 0 {
			due = r.d.clock.After(wait)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-r.timers.wake:
		case <-due:
		}
	}
}

// timerQueue is a min-heap of jobs by due time.
type timerQueue struct {
	mu   sync.Mutex
	h    jobHeap
	wake chan struct{}
}

func newTimerQueue() *timerQueue { return &timerQueue{wake: make(chan struct{}, 1)} }

func (q *timerQueue) add(j *job) {
	q.mu.Lock()
	heap.Push(&q.h, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next pops a due job, or returns how long until the earliest (0: none queued).
func (q *timerQueue) next(now time.Time) (*job, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return nil, 0
	}
	if !q.h[0].due.After(now) {
		return heap.Pop(&q.h).(*job), 0
	}
	return nil, q.h[0].due.Sub(now)
}

type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }

// Less orders by due time, then by delivery id (the events' order): the
// deliveries a resume releases, all due at once, go out oldest first.
func (h jobHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].deliveryID < h[j].deliveryID
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return j
}

// cursorTracker computes the outbox cursor: the newest key at or below which
// every event's first attempts have been recorded.
type cursorTracker struct {
	mu    sync.Mutex
	q     []*evTrack
	byKey map[string]*evTrack
	last  []byte
}

type evTrack struct {
	key       string
	remaining int
}

func newCursorTracker() *cursorTracker { return &cursorTracker{byKey: map[string]*evTrack{}} }

func (t *cursorTracker) add(key string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n == 0 && len(t.q) == 0 {
		// Nothing before it is waiting: the cursor may pass it now, as
		// advance would.
		t.last = []byte(key)
		return
	}
	e := &evTrack{key: key, remaining: n}
	t.q = append(t.q, e)
	if n > 0 {
		t.byKey[key] = e
	}
}

func (t *cursorTracker) done(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.byKey[key]; e != nil {
		e.remaining--
		if e.remaining <= 0 {
			delete(t.byKey, key)
		}
	}
}

// advance pops finished events and returns the cursor (nil if none yet).
func (t *cursorTracker) advance() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for ; i < len(t.q) && t.q[i].remaining <= 0; i++ {
		t.last = []byte(t.q[i].key)
	}
	if i > 0 {
		t.q = append(t.q[:0:0], t.q[i:]...)
	}
	return t.last
}
