// Package dispatch hands committed actions to the agents. It runs on the
// leader: each open action (pending or running in the FSM) whose node holds a
// session here is sent on its own stream; progress and the result come back and
// are recorded through Raft. A stream that breaks (agent restart, network cut,
// leader change) leaves the action open, and it is sent again once the node is
// back: the agent answers a known action id from its journal instead of running
// it twice. An action whose node stays away past its deadline fails.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/prometheus/client_golang/prometheus"
)

// Deps is what the dispatcher needs from the coordinator that assembles it.
type Deps struct {
	// State is the replicated state the open actions and servers are read
	// from (the FSM), through the store's typed accessors.
	State store.Reader
	// Propose commits a command through Raft (on the leader).
	Propose func(ctx context.Context, t fsm.CommandType, payload any) (*fsm.Result, error)
	// Sessions is the agent session listener, or nil when there is none.
	Sessions func() *session.Server
	// Clock is the wall clock node liveness and the waits between sends
	// are timed on (default: the real one).
	Clock clock.Clock
	// Now is the cluster's clock (httpapi API.Now, hlc), the one an
	// action's deadline and a cleanup's not-before time were set on (the
	// FSM's command time plus a duration): they fall due when it passes
	// them, not the wall clock, which on a leader whose clock is behind the
	// one that opened the action is behind them by the skew (default:
	// Clock.Now).
	Now func() time.Time
	// Grace: a session silent this long is dead.
	Grace time.Duration
	// ActionDeadline: an action whose node stays away this long fails.
	ActionDeadline time.Duration
	// Watch registers the function the state calls, after each commit that
	// wrote actions, with their ids (nil: the whole state was replaced):
	// fsm.FSM.WatchActions. The dispatcher keeps its index of open actions
	// from it (index.go). Nil: each wake-up reads every open action.
	Watch func(fn func(ids []string))
	// CleanupRetryBase is the wait before the second attempt of a failed
	// provisioning's cleanup; each next attempt waits twice as long (at
	// most an hour), up to fsm.MaxCleanupAttempts in all (0: a minute).
	CleanupRetryBase time.Duration
	Log              *slog.Logger
}

// Dispatcher hands committed actions to the agents (see the package comment).
type Dispatcher struct {
	s    Deps // named s: the dispatcher's code reads d.s.X
	kick chan struct{}

	mu       sync.Mutex
	secrets  map[string]secret             // action id → secret params, this leader only
	inflight map[string]context.CancelFunc // action id → its stream
	retryAt  map[string]time.Time          // action id → earliest next send after a failed one
	inv      map[string]*nodeInventory     // node id → last inventory
	stepAt   map[string]time.Time          // action id → last progress write
	sent     map[string]int                // action id → sends by this leader
	failed   map[string]int                // action id → streams that broke before a result
	// unreadable: the open actions the last full read of this leader job
	// could not read (a record that does not decode), each logged once while
	// it stays so; nil once the job ends (a follower sends nothing).
	unreadable map[string]bool
	running    bool // the leader job is on
	// tracking: the state's notes of written actions are kept in changed
	// for the next scan (from the first scan of a leader job to its end);
	// rescan: the state was replaced, the next scan reads it all.
	tracking, rescan bool
	changed          map[string]struct{}
	sweptAt          time.Time // forget's last sweep
	// idx is the open actions as this leader knows them (index.go); nil:
	// the next scan reads them all. Only scan and Run touch it.
	idx *openIndex
	// lastVisits is how many open actions the last scan looked at or read,
	// lastReads how many action records it read (tests).
	lastVisits, lastReads int
	// live says whether a node is connected; nil: its session is live
	// within Grace (tests give their own).
	live func(nodeID string) bool
	// call opens an exchange with a node's agent; nil: Sessions().Call
	// (tests give their own).
	call func(ctx context.Context, nodeID string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error
	// callEach sends several actions to a node on one stream, and batches
	// says whether a node takes that; nil: Sessions().CallEach and
	// Sessions().Batches (tests give their own).
	callEach func(ctx context.Context, nodeID string, reqs []*pb.Envelope, recv func(int, *pb.Envelope) (bool, error), end func(int, error))
	batches  func(nodeID string) bool
	// leadStart is when the job started: nodes get a whole deadline from then.
	leadStart time.Time

	sends    *prometheus.CounterVec
	streams  prometheus.Counter
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// sendCounters holds sends' counters, sendKey → prometheus.Counter,
	// each taken from the vector once (sendCounter).
	sendCounters sync.Map
}

type secret struct {
	data []byte
	at   time.Time
}

type nodeInventory struct {
	templates []string
	php       []string          // PHP-FPM versions of a hosting node
	vms       map[string]string // vm name → state
	at        time.Time
}

// progressHold is how long the first progress of a pending action (pending
// → running) waits for the action's result before it is recorded: an action
// that ends sooner (a scripted agent, a quick power action) is recorded by
// its result alone, one Raft command instead of two, and goes from pending
// straight to its end (its started_at is then its finished_at); a longer one
// shows running this much later, started at the progress's arrival as
// before. A stream that breaks does not cancel a held progress.
const progressHold = 50 * time.Millisecond

// maxBrokenSends is how many broken exchanges with a connected node an action
// past its deadline gets before it fails.
const maxBrokenSends = 5

// New returns a dispatcher; Run is its leader job.
func New(deps Deps) *Dispatcher {
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Now == nil {
		deps.Now = deps.Clock.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{s: deps, kick: make(chan struct{}, 1),
		secrets: map[string]secret{}, inflight: map[string]context.CancelFunc{}, retryAt: map[string]time.Time{},
		inv: map[string]*nodeInventory{}, stepAt: map[string]time.Time{}, sent: map[string]int{}, failed: map[string]int{}}
	d.sends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostplane_action_sends_total", Help: "Actions handed to agents by this coordinator as leader; resend=true when the agent may have had it already.",
	}, []string{"command", "resend"})
	d.streams = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostplane_action_streams_total", Help: "Streams this coordinator as leader asked an agent's session for to send actions (several of a node's actions share one when its agent speaks protocol 1.4); an attempt to a node that is not connected counts too.",
	})
	d.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostplane_actions_finished_total", Help: "Action results recorded by this coordinator as leader, by command and status (deadline failures included).",
	}, []string{"command", "status"})
	d.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hostplane_action_exchange_duration_seconds", Help: "From sending an action to its agent to recording the result, by command.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"command"})
	if deps.Watch != nil {
		deps.Watch(d.actionsChanged)
	}
	return d
}

// Collectors are the dispatcher's Prometheus series, plus gauges read on scrape.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hostplane_actions_open", Help: "Actions pending or running in the replicated state.",
	}, func() float64 {
		n := 0
		_ = d.s.State.Read(func(r store.ReadTx) error { n = r.OpenActionCount(); return nil })
		return float64(n)
	})
	unreadable := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hostplane_actions_unreadable", Help: "Open actions whose record this coordinator as leader could not read at its last full read (neither sent nor expired; each is logged); 0 on a follower.",
	}, func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(len(d.unreadable))
	})
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hostplane_agent_sessions", Help: "Agent sessions held by this coordinator (only the leader holds any).",
	}, func() float64 {
		if srv := d.s.Sessions(); srv != nil {
			return float64(len(srv.Sessions()))
		}
		return 0
	})
	return []prometheus.Collector{d.sends, d.streams, d.finished, d.duration, open, unreadable, sessions}
}

// Kick wakes the dispatcher.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) putSecret(id string, b []byte) {
	d.mu.Lock()
	d.secrets[id] = secret{data: b, at: time.Now()}
	d.mu.Unlock()
}

func (d *Dispatcher) dropSecret(id string) {
	d.mu.Lock()
	delete(d.secrets, id)
	d.mu.Unlock()
}

func (d *Dispatcher) phpVersions(nodeID string) ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	inv := d.inv[nodeID]
	if inv == nil || len(inv.php) == 0 {
		return nil, false
	}
	return slices.Clone(inv.php), true
}

func (d *Dispatcher) templates(nodeID string) ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	inv := d.inv[nodeID]
	if inv == nil {
		return nil, false
	}
	return slices.Clone(inv.templates), true
}

// OnInventory keeps the node's last inventory and reconciles power states the
// node reports with the recorded ones (a guest that powered itself off).
func (d *Dispatcher) OnInventory(nodeID string, in *pb.Inventory) {
	inv := &nodeInventory{templates: slices.Clone(in.Templates), php: slices.Clone(in.PhpVersions), vms: map[string]string{}, at: time.Now()}
	for _, vm := range in.Vms {
		inv.vms[vm.Name] = vm.State
	}
	d.mu.Lock()
	d.inv[nodeID] = inv
	running := d.running
	d.mu.Unlock()
	if running {
		go d.reconcile(nodeID, inv)
	}
}

func (d *Dispatcher) reconcile(nodeID string, inv *nodeInventory) {
	var changes []fsm.ServerPower
	_ = d.s.State.Read(func(r store.ReadTx) error {
		ss, err := r.NodeServers(nodeID)
		for _, s := range ss {
			st, ok := inv.vms[s.VMName]
			if !ok || s.ActionID != "" || (s.Status != api.ServerRunning && s.Status != api.ServerStopped) {
				continue
			}
			if w := fsm.PowerWord(st); w != s.PowerState {
				changes = append(changes, fsm.ServerPower{ServerID: s.ID, PowerState: w})
			}
		}
		return err
	})
	if len(changes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.s.Propose(ctx, fsm.CmdServerObserved, fsm.ServerObserved{Changes: changes}); err != nil {
		d.s.Log.Warn("record observed power states", "node", nodeID, "err", err)
		return
	}
	for _, c := range changes {
		d.s.Log.Info("server power state observed", "server", c.ServerID, "power_state", c.PowerState)
	}
}

// Run is the leader job: it returns when ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	d.running, d.leadStart = true, d.s.Clock.Now()
	d.sent, d.failed = map[string]int{}, map[string]int{}
	d.idx = nil // read it all at the first scan
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.tracking, d.changed, d.idx, d.unreadable = false, nil, nil, nil
		for _, cancel := range d.inflight {
			cancel()
		}
		d.mu.Unlock()
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		d.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
			// New actions come in bursts (each order kicks after its
			// commit): wait sendGather for the next ones, so that one
			// scan sends several instead of each its own.
			select {
			case <-ctx.Done():
				return
			case <-time.After(sendGather):
			}
		case <-tick.C:
		}
	}
}

// sendGather is how long a kick waits for further new actions before the
// scan that sends them: a new action reaches its agent up to this much
// later, and under a stream of orders the whole system spends less CPU per
// order (BenchmarkOrderCPU, BenchmarkOrdersVsTickets). At 20 ms rather than
// 10 a stream to one node carried 10-14 actions instead of 6-8 at ~350
// orders/s, and the agent's CPU per action (its session's per-stream work:
// the stream, its goroutines, the gathered answer's packets) fell by about
// 45%; the order/ticket rate did not change measurably.
const sendGather = 20 * time.Millisecond

func (d *Dispatcher) connected(nodeID string) bool {
	if d.live != nil {
		return d.live(nodeID)
	}
	srv := d.s.Sessions()
	if srv == nil {
		return false
	}
	seen, ok := srv.Live(nodeID)
	return ok && d.s.Clock.Now().Sub(seen) <= d.s.Grace
}

// scan is a wake-up: it sends the open actions of connected nodes that are
// not on their way to their agent yet, and fails the actions past their
// deadline (see index.go for what it reads).
func (d *Dispatcher) scan(ctx context.Context) {
	d.mu.Lock()
	full := d.s.Watch == nil || d.idx == nil || d.rescan
	var changed []string
	var busy map[string]bool
	if full {
		// Notes of commits from now on are kept; those before are in the
		// read below (a note of one read already is read again, harmless).
		d.tracking, d.rescan, d.changed = true, false, nil
		// The actions already on their way to an agent are neither sent
		// again nor expired here: only their ids are read, not their
		// records.
		busy = make(map[string]bool, len(d.inflight))
		for id := range d.inflight {
			busy[id] = true
		}
	} else {
		changed = make([]string, 0, len(d.changed))
		busy = make(map[string]bool)
		for id := range d.changed {
			changed = append(changed, id)
			if _, ok := d.inflight[id]; ok {
				busy[id] = true
			}
		}
		d.changed = nil
	}
	d.mu.Unlock()
	visits, reads := 0, 0
	var closed []string
	var ready, expiring []store.Action
	var expired []fsm.ActionFinish
	// fresh holds the changed actions read below that are still open: the
	// send and the expiry take them from here instead of reading each
	// record a second time in the same transaction (an order's action is
	// read once on its way to the agent).
	var fresh map[string]store.Action
	err := d.s.State.Read(func(r store.ReadTx) error {
		actions := r.Actions() // the bucket looked up once for the scan's reads
		action := func(id string) (store.Action, error) {
			if a, ok := fresh[id]; ok {
				return a, nil
			}
			reads++
			return actions.Action(id)
		}
		if full {
			open, inflight, bad, err := r.OpenActionsExcept(func(id string) bool { return busy[id] })
			if err != nil {
				return err
			}
			d.noteUnreadable(bad)
			d.idx = newOpenIndex()
			for _, a := range open {
				d.idx.put(a, true)
			}
			for _, id := range inflight {
				d.idx.putInFlight(id)
			}
			visits += len(open) + len(inflight) + len(bad)
		}
		if len(changed) > 0 {
			fresh = make(map[string]store.Action, len(changed))
		}
		for _, id := range changed {
			visits++
			reads++
			a, err := actions.Action(id)
			if errors.Is(err, store.ErrNotFound) {
				d.idx.drop(id)
				continue
			}
			if err != nil {
				// Not read: the next scan reads everything (rescan
				// below), rather than leaving the action unsent and
				// unexpired until the next leader.
				return err
			}
			d.readable(id)
			if a.Finished() {
				d.idx.drop(id)
				closed = append(closed, id)
				continue
			}
			d.idx.put(a, !busy[id])
			fresh[id] = a
		}
		now := d.s.Clock.Now()
		// due: the deadlines and not-before times, set on the cluster's
		// clock, are judged on it; now (the wall clock) times this leader's
		// own waits.
		due := d.s.Now()
		var sendIDs, expireIDs []string
		broken := map[string]bool{} // expiring: the node is there but every exchange breaks
		for node, n := range d.idx.nodes {
			connected := d.connected(node)
			away := false
			if !connected {
				// An away node's actions wait for their deadlines: none is
				// looked at before the earliest is due.
				first, firstPending := n.earliest()
				away = now.Sub(d.awaySince(node)) > d.s.ActionDeadline
				if !(!firstPending.IsZero() && due.After(firstPending)) && !(away && !first.IsZero() && due.After(first)) {
					continue
				}
			}
			d.mu.Lock()
			for id, e := range n.ids {
				visits++
				if _, busy := d.inflight[id]; busy {
					continue
				}
				if !e.notBefore.IsZero() && due.Before(e.notBefore) {
					continue // a cleanup's next attempt, held back (its deadline counts from then)
				}
				if connected {
					if now.Before(d.retryAt[id]) {
						continue
					}
					if d.failed[id] >= maxBrokenSends && due.After(e.deadline) {
						expireIDs, broken[id] = append(expireIDs, id), true
						continue
					}
					sendIDs = append(sendIDs, id)
					continue
				}
				// A pending action fails at its deadline; one the node already
				// runs only once the node has been away a whole deadline (a long
				// reinstall outlives a short network cut).
				if due.After(e.deadline) && (e.status != api.ActionRunning || away) {
					expireIDs = append(expireIDs, id)
				}
			}
			d.mu.Unlock()
		}
		// In the order of their ids, as the state lists them.
		slices.Sort(sendIDs)
		slices.Sort(expireIDs)
		for _, id := range sendIDs {
			a, err := action(id)
			if err != nil || a.Finished() {
				continue // read again from its note
			}
			d.idx.sent(d.idx.all[id])
			ready = append(ready, a)
		}
		for _, id := range expireIDs {
			a, err := action(id)
			if err != nil || a.Finished() {
				continue
			}
			d.mu.Lock()
			failed := d.failed[id]
			d.mu.Unlock()
			if broken[id] {
				// The node is there but every exchange breaks (an agent that
				// crashes on this action): stop at the deadline.
				expired = append(expired, d.withCleanup(a, fsm.ActionFinish{ID: a.ID, ErrorCode: "node_error",
					ErrorMessage: fmt.Sprintf("the server's host did not complete the action after %d attempts; check the server's state and retry", failed)}))
			} else {
				expired = append(expired, d.withCleanup(a, deadlineResult(a, d.s.ActionDeadline)))
			}
			expiring = append(expiring, a)
		}
		return nil
	})
	d.lastVisits, d.lastReads = visits, reads
	if err != nil {
		// What changed may not have been read: all of it next time.
		d.mu.Lock()
		d.rescan = true
		d.mu.Unlock()
		d.s.Log.Warn("read open actions", "err", err)
	}
	d.sendAll(ctx, ready)
	if len(expired) > 0 {
		if _, err := d.s.Propose(ctx, fsm.CmdActionsFinished, fsm.ActionsFinished{Results: expired}); err != nil {
			d.s.Log.Warn("record expired actions; will retry", "actions", len(expired), "err", err)
		} else {
			for _, r := range expired {
				d.finished.WithLabelValues(commandOf(expiring, r.ID), api.ActionFailed).Inc()
				d.s.Log.Warn("action failed at its deadline", "action", r.ID, "code", r.ErrorCode, "message", r.ErrorMessage)
			}
		}
	}
	d.forget(closed, full)
}

// noteUnreadable keeps the open actions a full read could not read, logging
// each one the first time: such an action (a record that does not decode,
// which no command writes) is neither sent nor expired by this leader, and
// without the line nothing would say why it sits pending.
func (d *Dispatcher) noteUnreadable(bad map[string]error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.unreadable
	d.unreadable = make(map[string]bool, len(bad))
	for id, err := range bad {
		d.unreadable[id] = true
		if !was[id] {
			d.s.Log.Error("open action cannot be read; it is neither sent nor expired until its record reads again", "action", id, "err", err)
		}
	}
}

// readable forgets that action id could not be read, now that it could.
func (d *Dispatcher) readable(id string) {
	d.mu.Lock()
	delete(d.unreadable, id)
	d.mu.Unlock()
}

// forget drops what this leader kept for the closed actions (finished), and,
// after a full read or once a minute, for every action not open (a secret
// only once it is a minute old: its action may not be committed yet).
func (d *Dispatcher) forget(closed []string, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range closed {
		delete(d.secrets, id)
		delete(d.retryAt, id)
		delete(d.stepAt, id)
		delete(d.sent, id)
		delete(d.failed, id)
	}
	if d.idx == nil || (!full && time.Since(d.sweptAt) < time.Minute) {
		return
	}
	d.sweptAt = time.Now()
	open := func(id string) bool { _, ok := d.idx.all[id]; return ok }
	for id, sec := range d.secrets {
		if !open(id) && time.Since(sec.at) > time.Minute {
			delete(d.secrets, id)
		}
	}
	for id := range d.retryAt {
		if !open(id) {
			delete(d.retryAt, id)
		}
	}
	for id := range d.stepAt {
		if !open(id) {
			delete(d.stepAt, id)
		}
	}
	for id := range d.sent {
		if !open(id) {
			delete(d.sent, id)
			delete(d.failed, id)
		}
	}
}

// actionsChanged takes the FSM's note of the actions a commit wrote (nil:
// the state was replaced: read it all again); see index.go.
func (d *Dispatcher) actionsChanged(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.tracking {
		return
	}
	if ids == nil {
		d.rescan = true
		return
	}
	for _, id := range ids {
		d.noteLocked(id)
	}
}

// noteLocked has the next scan read action id again; d.mu held.
func (d *Dispatcher) noteLocked(id string) {
	if !d.tracking {
		return
	}
	if d.changed == nil {
		d.changed = map[string]struct{}{}
	}
	d.changed[id] = struct{}{}
}

// awaySince is when this leader last heard from the node (or when it started
// leading, if never).
func (d *Dispatcher) awaySince(nodeID string) time.Time {
	d.mu.Lock()
	since := d.leadStart
	d.mu.Unlock()
	if srv := d.s.Sessions(); srv != nil {
		if seen := srv.LastSeen(nodeID); seen.After(since) {
			return seen
		}
	}
	return since
}

func commandOf(as []store.Action, id string) string {
	for _, a := range as {
		if a.ID == id {
			return a.Command
		}
	}
	return ""
}

// cleanupDeadline is the deadline (seconds) of the server.terminate a
// failed server.provision, or the hosting.delete a failed hosting.create,
// opens to clean up after itself (the FSM opens it for a bought server or
// hosting account: fsm.ActionFinish.CleanupDeadlineSeconds); 0 for other
// actions.
func (d *Dispatcher) cleanupDeadline(a store.Action) int64 {
	if a.Command != api.ActionServerProvision && a.Command != api.ActionHostingCreate && fsm.CleanupAttempt(a) == 0 {
		return 0
	}
	return max(int64(d.s.ActionDeadline/time.Second), 1)
}

// cleanupRetry is how long (seconds) the next attempt of a, a failed
// cleanup, waits: CleanupRetryBase doubled per attempt made, at most an
// hour; 0 when a is no cleanup or its attempts are spent.
func (d *Dispatcher) cleanupRetry(a store.Action) int64 {
	n := fsm.CleanupAttempt(a)
	if n == 0 || n >= fsm.MaxCleanupAttempts {
		return 0
	}
	wait := d.s.CleanupRetryBase
	if wait <= 0 {
		wait = time.Minute
	}
	for i := 1; i < n && wait < time.Hour; i++ {
		wait *= 2
	}
	return max(int64(min(wait, time.Hour)/time.Second), 1)
}

// withCleanup adds to fin, the failure of a, what the FSM needs to clean up
// after it (a failed provisioning's cleanup, a failed cleanup's next
// attempt) and logs a failed cleanup as the FSM will take it: retried when,
// given up after its last attempt, or not retried at all while the cluster's
// semantics level is below fsm.LevelCleanupRetry (a coordinator still runs
// a release without retries: the FSM records the failure as that release
// does). The level is read here, before the finish is proposed; it only
// rises, so at worst a retry this log says will not happen does.
func (d *Dispatcher) withCleanup(a store.Action, fin fsm.ActionFinish) fsm.ActionFinish {
	fin.CleanupDeadlineSeconds = d.cleanupDeadline(a)
	n := fsm.CleanupAttempt(a)
	if n == 0 {
		return fin
	}
	fin.CleanupRetrySeconds = d.cleanupRetry(a)
	what, left := "a failed provisioning's cleanup", "it stays in error holding its node room and addresses until an operator deletes it"
	if a.Command == api.ActionHostingUncert {
		what = "taking a custom domain off its node (hosting.uncert)"
		left = "the node may still route the name to this hosting account: remove its hosts/<domain> link and certs/<domain>.pem there by hand (the name's new holder's certificate is installed at its next try)"
	}
	switch level := d.clusterLevel(); {
	case fin.CleanupRetrySeconds > 0 && level >= fsm.LevelCleanupRetry:
		d.s.Log.Warn(what+" failed; retrying", "action", a.ID, "command", a.Command, "resource", a.ResourceID,
			"node", a.NodeID, "attempt", n, "max_attempts", fsm.MaxCleanupAttempts, "retry_in", time.Duration(fin.CleanupRetrySeconds)*time.Second,
			"error_code", fin.ErrorCode)
	case fin.CleanupRetrySeconds > 0:
		d.s.Log.Error(what+" failed and is not retried: the cluster's semantics level is below "+strconv.Itoa(fsm.LevelCleanupRetry)+
			" (a coordinator still runs an older release; hostplanectl cluster status), so "+left,
			"action", a.ID, "command", a.Command, "resource", a.ResourceID, "node", a.NodeID, "attempt", n, "semantics_level", level, "error_code", fin.ErrorCode)
	default:
		d.s.Log.Error(what+" failed its last attempt; "+left,
			"action", a.ID, "command", a.Command, "resource", a.ResourceID, "node", a.NodeID, "attempts", n, "error_code", fin.ErrorCode)
	}
	return fin
}

// clusterLevel is the cluster's semantics level in the replicated state (1
// without one).
func (d *Dispatcher) clusterLevel() uint16 {
	level := uint16(1)
	if d.s.State != nil {
		_ = d.s.State.Read(func(r store.ReadTx) error { level = r.ClusterLevel(); return nil })
	}
	return level
}

func deadlineResult(a store.Action, deadline time.Duration) fsm.ActionFinish {
	msg := fmt.Sprintf("the server's host did not take the action within %s (it is unreachable); nothing was changed — retry when the server is reachable again", deadline.Round(time.Second))
	if a.Status == api.ActionRunning {
		msg = fmt.Sprintf("the server's host stopped reporting while the action ran and stayed away for %s; its outcome is unknown — check the server's state", deadline.Round(time.Second))
	}
	return fsm.ActionFinish{ID: a.ID, ErrorCode: "node_unreachable", ErrorMessage: msg}
}

// agentParams builds the params the agent expects for a stored action. A
// snapshot's params are made here from the stored snapshot (the agent names
// it in its own alphabet); every other command's were encoded with the
// action contract when the action was created.
func agentParams(a store.Action) []byte {
	switch a.Command {
	case api.ActionSnapshotCreate, api.ActionSnapshotDelete, api.ActionSnapshotRevert:
		name := a.SnapshotID
		if a.Snapshot != nil && name == "" {
			name = a.Snapshot.ID
		}
		var p action.Params = &action.Snapshot{Name: agentSnapshotName(name)}
		if a.Command == api.ActionSnapshotCreate {
			c := &action.SnapshotCreate{Name: agentSnapshotName(name)}
			if a.Snapshot != nil {
				c.Description = a.Snapshot.Description
			}
			p = c
		}
		b, _ := action.Encode(p)
		return b
	}
	if len(a.Params) == 0 {
		return []byte("{}")
	}
	return a.Params
}

// agentSnapshotName is the libvirt snapshot name of a snapshot id (the agent
// allows a-z, 0-9 and '-').
func agentSnapshotName(id string) string { return strings.ReplaceAll(id, "_", "-") }

// sendAll sends the actions: those of one node on one stream when there
// are several and its agent takes that (protocol 1.4), else each on its own.
func (d *Dispatcher) sendAll(ctx context.Context, as []store.Action) {
	var nodes []string
	byNode := map[string][]store.Action{}
	for _, a := range as {
		if _, ok := byNode[a.NodeID]; !ok {
			nodes = append(nodes, a.NodeID)
		}
		byNode[a.NodeID] = append(byNode[a.NodeID], a)
	}
	for _, n := range nodes {
		group := byNode[n]
		if len(group) > 1 && d.takesBatches(n) {
			d.sendBatch(ctx, group)
			continue
		}
		for _, a := range group {
			d.send(ctx, a)
		}
	}
}

func (d *Dispatcher) takesBatches(nodeID string) bool {
	if d.batches != nil {
		return d.batches(nodeID)
	}
	srv := d.s.Sessions()
	return srv != nil && srv.Batches(nodeID)
}

// prepare marks the action as on its way (cancel ends its exchange) and
// builds what is sent.
func (d *Dispatcher) prepare(a store.Action, cancel context.CancelFunc) *pb.ActionAssign {
	d.mu.Lock()
	d.inflight[a.ID] = cancel
	d.sent[a.ID]++
	first := d.sent[a.ID] == 1
	sec, haveSecret := d.secrets[a.ID]
	d.mu.Unlock()
	assign := &pb.ActionAssign{
		ActionId: a.ID, Command: a.Command, Target: a.Target, Params: agentParams(a),
		DeadlineUnixMs: a.Deadline.UnixMilli(),
		// The action may have reached the agent before: from an earlier leader
		// (it is running, or this leader never sent it and lacks its secret)
		// or from this one.
		Resend: !first || a.Status == api.ActionRunning || (a.NeedsSecret && !haveSecret),
	}
	if haveSecret {
		assign.SecretParams = sec.data
	}
	return assign
}

// exchanged ends an action's exchange (err: how it failed; actx: its context):
// a failed one is sent again a second later, and it is no longer in flight.
func (d *Dispatcher) exchanged(actx context.Context, a store.Action, err error) {
	defer func() {
		d.mu.Lock()
		delete(d.inflight, a.ID)
		d.noteLocked(a.ID) // read again: open (to send again) or finished
		d.mu.Unlock()
	}()
	if err == nil || actx.Err() != nil {
		return
	}
	d.mu.Lock()
	d.retryAt[a.ID] = time.Now().Add(time.Second)
	if !errors.Is(err, session.ErrNotConnected) {
		d.failed[a.ID]++
	}
	d.mu.Unlock()
	if errors.Is(err, session.ErrNotConnected) {
		d.s.Log.Debug("action not sent: node not connected", "action", a.ID, "node", a.NodeID)
		return
	}
	d.s.Log.Warn("action stream ended before its result; it will be sent again", "action", a.ID, "node", a.NodeID, "command", a.Command, "err", err)
}

func (d *Dispatcher) send(ctx context.Context, a store.Action) {
	actx, cancel := context.WithCancel(ctx)
	assign := d.prepare(a, cancel)
	go func() {
		defer cancel()
		d.exchanged(actx, a, d.exchange(actx, a, assign))
	}()
}

// sendBatch sends actions of one node on one stream (see sendAll): each is
// recorded as its own exchange would record it, as soon as its result is
// in; one that fails is sent again on its own or in a later batch.
func (d *Dispatcher) sendBatch(ctx context.Context, as []store.Action) {
	bctx, cancel := context.WithCancel(ctx)
	assigns := make([]*pb.ActionAssign, len(as))
	for i, a := range as {
		assigns[i] = d.prepare(a, cancel)
	}
	go func() {
		defer cancel()
		callEach := d.callEach
		if callEach == nil {
			srv := d.s.Sessions()
			if srv == nil {
				for _, a := range as {
					d.exchanged(bctx, a, session.ErrNotConnected)
				}
				return
			}
			callEach = srv.CallEach
		}
		xs := make([]*exchange, len(as))
		reqs := make([]*pb.Envelope, len(as))
		for i, a := range as {
			xs[i] = d.startExchange(bctx, a, assigns[i])
			reqs[i] = xs[i].request(uint64(i + 1))
		}
		var wg sync.WaitGroup
		d.streams.Inc()
		callEach(bctx, as[0].NodeID, reqs, func(i int, env *pb.Envelope) (bool, error) {
			return xs[i].recv(env)
		}, func(i int, err error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.exchanged(bctx, as[i], xs[i].finish(err))
			}()
		})
		wg.Wait() // then the shared context may end
	}()
}

// exchange sends one action and records what comes back.
func (d *Dispatcher) exchange(ctx context.Context, a store.Action, assign *pb.ActionAssign) error {
	call := d.call
	if call == nil {
		srv := d.s.Sessions()
		if srv == nil {
			return session.ErrNotConnected
		}
		call = srv.Call
	}
	x := d.startExchange(ctx, a, assign)
	d.streams.Inc()
	return x.finish(call(ctx, a.NodeID, x.request(1), x.recv))
}

// exchange is one action's exchange with its agent: recv takes the frames
// that answer it, finish records how it ended.
type exchange struct {
	d      *Dispatcher
	ctx    context.Context
	a      store.Action
	assign *pb.ActionAssign
	sentAt time.Time
	status string
	result *pb.ActionResult
	// The first progress while it is held (see progressHold), and how to
	// record it.
	held       *time.Timer
	heldRecord func()
}

func (d *Dispatcher) startExchange(ctx context.Context, a store.Action, assign *pb.ActionAssign) *exchange {
	// A first send is logged at debug level: "action finished" says how it
	// ended and how long after it was sent (seconds), and the action's
	// started_at when it started. A resend (the action may have reached the
	// agent before) stays at info. Each log line cost the leader ~12 µs of
	// CPU (mostly its write(2)); two per action were a third of the
	// dispatcher's CPU per order under BenchmarkOrderCPU.
	lvl := slog.LevelDebug
	if assign.Resend {
		lvl = slog.LevelInfo
	}
	if d.s.Log.Enabled(ctx, lvl) {
		d.s.Log.Log(ctx, lvl, "action sent", "action", a.ID, "node", a.NodeID, "command", a.Command, "resend", assign.Resend)
	}
	d.sendCounter(a.Command, assign.Resend).Inc()
	return &exchange{d: d, ctx: ctx, a: a, assign: assign, sentAt: time.Now(), status: a.Status}
}

// sendKey names a counter of the sends vector.
type sendKey struct {
	command string
	resend  bool
}

// sendCounter is the sends counter of command and resend: the vector's
// WithLabelValues hashes the labels and looks them up under its lock at
// every call; this looks each pair up there once (nothing deletes a series
// of the vector, so a counter taken stays the one it exports).
func (d *Dispatcher) sendCounter(command string, resend bool) prometheus.Counter {
	k := sendKey{command, resend}
	if c, ok := d.sendCounters.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := d.sends.WithLabelValues(command, strconv.FormatBool(resend))
	d.sendCounters.Store(k, c)
	return c
}

func (x *exchange) request(seq uint64) *pb.Envelope {
	return &pb.Envelope{Seq: seq, Body: &pb.Envelope_ActionAssign{ActionAssign: x.assign}}
}

// recv takes one frame the agent answered; done once the result is in.
func (x *exchange) recv(env *pb.Envelope) (bool, error) {
	d, a, ctx := x.d, x.a, x.ctx
	switch b := env.Body.(type) {
	case *pb.Envelope_ActionProgress:
		p := b.ActionProgress
		if p.ActionId != a.ID {
			return false, fmt.Errorf("progress for %q on the stream of %s", p.ActionId, a.ID)
		}
		d.mu.Lock()
		due := time.Since(d.stepAt[a.ID]) >= time.Second
		if x.status == api.ActionPending || due {
			d.stepAt[a.ID] = time.Now()
		}
		d.mu.Unlock()
		if x.status == api.ActionPending || due {
			// Recorded without holding up the result: a progress entry
			// applied after the result is a no-op, and a lost one is
			// superseded by the result.
			first := x.status == api.ActionPending
			x.status = api.ActionRunning
			prog := fsm.ActionProgress{ID: a.ID, At: d.s.Clock.Now().UTC(), Percent: int(min(p.Percent, 99)), Step: p.Step}
			record := func() {
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if _, err := d.s.Propose(pctx, fsm.CmdActionProgress, prog); err != nil {
					d.s.Log.Debug("record action progress", "action", a.ID, "err", err)
				}
			}
			if first {
				// The start waits progressHold for the result: an
				// action that ends by then is recorded by its result
				// alone (one command instead of two).
				x.held, x.heldRecord = time.AfterFunc(progressHold, record), record
			} else {
				go record()
			}
		}
		return false, nil
	case *pb.Envelope_ActionResult:
		if b.ActionResult.ActionId != a.ID {
			return false, fmt.Errorf("result for %q on the stream of %s", b.ActionResult.ActionId, a.ID)
		}
		x.result = b.ActionResult
		return true, nil
	case *pb.Envelope_Error:
		return false, fmt.Errorf("agent: %s: %s", b.Error.Code, b.Error.Message)
	}
	return false, nil // frames of a newer agent
}

// finish records the result once the exchange ended without err.
func (x *exchange) finish(err error) error {
	d, a, result := x.d, x.a, x.result
	if err != nil {
		return err // a held progress is still recorded when its time is up
	}
	// The result came while the start was held: the result records the
	// start too (StartedAt, when the action has none), unless it cannot be
	// recorded, in which case the start is, as it would have been.
	unheld := x.held != nil && x.held.Stop()
	fin := fsm.ActionFinish{ID: a.ID, Success: result.Success, Result: result.Result}
	if !result.Success {
		fin.ErrorCode = result.ErrorCode
		if fin.ErrorCode == "" {
			fin.ErrorCode = "failed"
		}
		fin.ErrorMessage = scrub(result.ErrorMessage, a)
		if result.ErrorCode != api.NodeErrNotFound { // a cleanup answered not_found is done
			fin = d.withCleanup(a, fin)
		} else {
			fin.CleanupDeadlineSeconds = d.cleanupDeadline(a)
		}
	}
	// The result must be recorded even if this leader's job is being stopped:
	// a bounded, independent context.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), 10*time.Second)
	defer cancel()
	if _, err := d.s.Propose(rctx, fsm.CmdActionFinish, fin); err != nil {
		if unheld {
			go x.heldRecord()
		}
		return fmt.Errorf("record result: %w", err)
	}
	d.dropSecret(a.ID)
	outcome := api.ActionSuccess
	if !result.Success {
		outcome = api.ActionFailed
	}
	took := time.Since(x.sentAt).Seconds()
	d.finished.WithLabelValues(a.Command, outcome).Inc()
	d.duration.WithLabelValues(a.Command).Observe(took)
	d.s.Log.Info("action finished", "action", a.ID, "node", a.NodeID, "command", a.Command, "success", result.Success, "error_code", fin.ErrorCode, "seconds", took)
	return nil
}

// scrub keeps backbone detail (node id, libvirt names) out of the message a
// customer reads.
func scrub(msg string, a store.Action) string {
	if a.Target != "" {
		msg = strings.ReplaceAll(msg, a.Target, a.ResourceID)
	}
	if a.NodeID != "" {
		msg = strings.ReplaceAll(msg, a.NodeID, "the host")
	}
	msg = hostPath.ReplaceAllString(msg, "${1}<path>")
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "") + "…"
	}
	return msg
}

// hostPath matches an absolute file path on the node (pool, data dir, disk).
var hostPath = regexp.MustCompile(`(^|[\s"'(=:])/[^\s"'),;]+`)

// stats asks the node's agent for live stats of a VM.
func (d *Dispatcher) stats(ctx context.Context, nodeID, vm string, stream bool, interval time.Duration, fn func(api.ServerStats) error) error {
	srv := d.s.Sessions()
	if srv == nil || !d.connected(nodeID) {
		return httpapi.ErrNodeOffline
	}
	req := &pb.StatsRequest{Target: vm, Stream: stream, IntervalMs: uint32(interval / time.Millisecond)}
	err := srv.Call(ctx, nodeID, &pb.Envelope{Seq: 1, Body: &pb.Envelope_StatsRequest{StatsRequest: req}}, func(env *pb.Envelope) (bool, error) {
		smp := env.GetStatsSample()
		if smp == nil {
			return false, nil
		}
		if smp.Error != "" || smp.ErrorCode != "" {
			if smp.ErrorCode == "not_found" {
				return true, fmt.Errorf("%w: the server's VM is not on its host", httpapi.ErrNodeOffline)
			}
			return true, fmt.Errorf("%w: %s", httpapi.ErrNodeOffline, smp.ErrorCode)
		}
		if err := fn(api.ServerStats{
			Time: time.UnixMilli(smp.AtUnixMs).UTC(), State: fsm.PowerWord(smp.State), CPUPercent: smp.CpuPercent,
			MemoryBytes: smp.MemoryUsedBytes, DiskReadBytes: smp.DiskReadBytes, DiskWriteBytes: smp.DiskWriteBytes,
			DiskReadBps: smp.DiskReadBps, DiskWriteBps: smp.DiskWriteBps, NetRxBytes: smp.NetRxBytes, NetTxBytes: smp.NetTxBytes,
			NetRxBps: smp.NetRxBps, NetTxBps: smp.NetTxBps,
		}); err != nil {
			return true, err
		}
		return smp.Last || !stream, nil
	})
	if errors.Is(err, session.ErrNotConnected) {
		return httpapi.ErrNodeOffline
	}
	return err
}

// ServerDeps wires the dispatcher into the HTTP API.
func (d *Dispatcher) ServerDeps() *httpapi.ServerDeps {
	return &httpapi.ServerDeps{
		ActionDeadline:  d.s.ActionDeadline,
		PutSecret:       d.putSecret,
		DropSecret:      d.dropSecret,
		Kick:            d.Kick,
		Stats:           d.stats,
		NodeTemplates:   d.templates,
		NodePHPVersions: d.phpVersions,
	}
}
