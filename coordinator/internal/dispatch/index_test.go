package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	replica "github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// queuedRig is a replicated state with an account, two enrolled nodes
// (hv-away, not connected, and hv-up) and n servers of hv-away whose
// provisioning actions are pending, due in an hour; and a dispatcher on it,
// watching it as the coordinator's does, whose proposals are committed to
// it and whose agent on hv-up answers each action when release is closed.
type queuedRig struct {
	r       *replica.Replica
	d       *Dispatcher
	opened  time.Time
	now     time.Time // the cluster's clock
	mu      sync.Mutex
	sent    []string // node/action of each send
	release chan struct{}
	away    []string        // the actions of hv-away
	breaks  map[string]bool // actions whose first stream breaks at once
}

func newQueuedRig(t testing.TB, n int) *queuedRig {
	t.Helper()
	q := &queuedRig{r: replica.Open(t), opened: time.Now().UTC(), release: make(chan struct{}), breaks: map[string]bool{}}
	q.now = q.opened
	q.r.MustAt(t, q.opened, fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "a@example.com", Name: "A", Country: "TR"})
	q.r.MustAt(t, q.opened, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	for i, node := range []string{"hv-away", "hv-up"} {
		tok, hash := "jt_"+node, "h"+node
		q.r.MustAt(t, q.opened, fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: tok, Hash: hash, ExpiresAt: q.opened.Add(time.Hour)})
		q.r.MustAt(t, q.opened, fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: tok, TokenHash: hash, NodeID: node, CertSerial: "s" + string(rune('1'+i)), CertNotAfter: q.opened.Add(26 * time.Hour)})
	}
	for range n {
		sc := fsmtest.ServerCreate("acc_1", "hv-away", q.opened)
		q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
		q.away = append(q.away, sc.Action.ID)
	}
	q.d = New(Deps{State: q.r.FSM, Watch: q.r.FSM.WatchActions, Sessions: func() *session.Server { return nil },
		Now: func() time.Time { q.mu.Lock(); defer q.mu.Unlock(); return q.now }, ActionDeadline: time.Hour,
		Propose: func(ctx context.Context, ct fsm.CommandType, p any) (*fsm.Result, error) {
			env, err := fsm.NewEnvelope(ct, time.Now(), p)
			if err != nil {
				return nil, err
			}
			return q.r.Commit(ctx, env)
		}})
	q.d.leadStart = time.Now()
	q.d.live = func(node string) bool { return node == "hv-up" }
	q.d.batches = func(string) bool { return false }
	q.d.call = func(ctx context.Context, node string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
		id := req.GetActionAssign().GetActionId()
		q.mu.Lock()
		q.sent = append(q.sent, node+"/"+id)
		broken := q.breaks[id]
		delete(q.breaks, id)
		q.mu.Unlock()
		if broken {
			return errors.New("stream reset by peer")
		}
		select {
		case <-q.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := recv(resultFrame(id))
		return err
	}
	return q
}

func (q *queuedRig) sends() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.sent...)
}

// TestWakeUpVisitsOnlyWhatChanged: with many actions queued for a node
// that is away, a wake-up after one new action for a connected node sends
// that action having looked at it alone (the scan's visits are counted:
// before the index every wake-up read every open action) and read its record
// once; while it is on its
// way it is not sent again, and once its result is recorded it is gone; the
// queued ones still fail at their deadline, all of them, and a replaced
// state (a restore) is read whole again.
func TestWakeUpVisitsOnlyWhatChanged(t *testing.T) {
	const n = 300
	q := newQueuedRig(t, n)
	d := q.d
	ctx := context.Background()
	d.scan(ctx)
	if d.lastVisits < n {
		t.Fatalf("first scan of a leader looked at %d actions, want all %d", d.lastVisits, n)
	}
	if s := q.sends(); len(s) != 0 {
		t.Fatalf("sent %v to a node that is away", s)
	}
	d.scan(ctx)
	if d.lastVisits != 0 {
		t.Fatalf("a wake-up with nothing changed looked at %d actions", d.lastVisits)
	}

	sc := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
	q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
	d.scan(ctx)
	if d.lastVisits > 2 {
		t.Fatalf("the wake-up after one new action looked at %d actions (%d queued for a node away), want at most 2", d.lastVisits, n)
	}
	if d.lastReads != 1 {
		t.Fatalf("the wake-up that sent one new action read %d action records, want 1 (read once, sent from that read)", d.lastReads)
	}
	for end := time.Now().Add(10 * time.Second); len(q.sends()) == 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	want := "hv-up/" + sc.Action.ID
	if s := q.sends(); len(s) != 1 || s[0] != want {
		t.Fatalf("sent %v, want [%s]", s, want)
	}
	d.scan(ctx) // on its way: not sent again
	close(q.release)
	waitIdle(t, d)
	d.scan(ctx)
	if s := q.sends(); len(s) != 1 {
		t.Fatalf("sent %v, want the new action once", s)
	}
	var a store.Action
	_ = q.r.FSM.Read(func(r store.ReadTx) (err error) { a, err = r.Action(sc.Action.ID); return })
	if a.Status != api.ActionSuccess {
		t.Fatalf("the sent action is %q, want its result recorded", a.Status)
	}
	if _, ok := d.idx.all[sc.Action.ID]; ok {
		t.Fatal("the finished action is still in the index")
	}

	// One whose stream breaks is sent again (a second later), and only then.
	sc2 := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
	q.mu.Lock()
	q.breaks[sc2.Action.ID] = true
	q.mu.Unlock()
	q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc2)
	d.scan(ctx)
	waitIdle(t, d)
	d.scan(ctx)
	if s := q.sends(); len(s) != 2 {
		t.Fatalf("sent %v, want the broken one once before its retry time", s)
	}
	time.Sleep(1100 * time.Millisecond)
	d.scan(ctx)
	waitIdle(t, d)
	if s := q.sends(); len(s) != 3 || s[2] != "hv-up/"+sc2.Action.ID {
		t.Fatalf("sent %v, want %s sent again after its stream broke", s, sc2.Action.ID)
	}

	q.d.actionsChanged(nil) // a restore replaced the state
	d.scan(ctx)
	if d.lastVisits < n {
		t.Fatalf("the scan after a restore looked at %d actions, want all %d", d.lastVisits, n)
	}

	q.mu.Lock()
	q.now = q.opened.Add(2 * time.Hour)
	q.mu.Unlock()
	d.scan(ctx)
	open := 0
	_ = q.r.FSM.Read(func(r store.ReadTx) error { open = r.OpenActionCount(); return nil })
	if open != 0 {
		t.Fatalf("%d actions of the away node still open past their deadline", open)
	}
	d.scan(ctx)
	if d.lastVisits > n || len(d.idx.all) != 0 {
		t.Fatalf("after the expiry: %d visits, %d in the index", d.lastVisits, len(d.idx.all))
	}
}

// BenchmarkWakeUp10k is a wake-up of a leader with 10,000 actions queued
// for a node that is away and nothing changed since the last one.
func BenchmarkWakeUp10k(b *testing.B) {
	q := newQueuedRig(b, 10000)
	ctx := context.Background()
	q.d.scan(ctx)
	b.ResetTimer()
	for range b.N {
		q.d.scan(ctx)
	}
}

// BenchmarkWakeUpSends8 is the wake-up after 8 new actions for a connected
// node (a burst of orders gathered into one scan), with 300 queued for a
// node that is away; the agent answers nothing (as a stopped one).
func BenchmarkWakeUpSends8(b *testing.B) {
	q := newQueuedRig(b, 300)
	q.d.call = func(ctx context.Context, node string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q.d.scan(ctx)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range 8 {
			q.r.MustAt(b, q.opened, fsm.CmdServerCreate, fsmtest.ServerCreate("acc_1", "hv-up", q.opened))
		}
		b.StartTimer()
		q.d.scan(ctx)
	}
	b.ReportMetric(float64(q.d.lastReads), "reads/scan")
}

// brokenState is the state the dispatcher reads, but while on is set the
// reads are served from copy, a copy in which one action's record does not
// decode: a read of an action that fails other than "not found" (a corrupt
// record), which no command writes.
type brokenState struct {
	store.Reader
	on   atomic.Bool
	copy *bolt.DB
}

func (b *brokenState) Read(fn func(store.ReadTx) error) error {
	if b.on.Load() {
		return b.copy.View(func(tx *bolt.Tx) error { return fn(store.Read(tx)) })
	}
	return b.Reader.Read(fn)
}

// breakAction has b's reads served from a copy of q's state as it is now in
// which action id's record does not decode.
func (b *brokenState) breakAction(t *testing.T, q *queuedRig, id string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broken.db")
	if err := q.r.FSM.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) }); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketActions).Put([]byte(id), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	b.copy = db
	b.on.Store(true)
}

// TestWakeUpRereadsAnActionItCouldNotRead: a wake-up that cannot read an
// action a commit wrote (its record does not decode: not absent) keeps it;
// the next wake-up reads every open action again and sends it once the
// read works. Before a486fcd the incremental scan dropped it from the index,
// and it sat unsent (and unexpired) until the next leader's full read.
func TestWakeUpRereadsAnActionItCouldNotRead(t *testing.T) {
	const n = 3
	q := newQueuedRig(t, n)
	st := &brokenState{Reader: q.r.FSM}
	q.d.s.State = st
	ctx := context.Background()
	q.d.scan(ctx)

	sc := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
	q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
	st.breakAction(t, q, sc.Action.ID)
	q.d.scan(ctx)
	if s := q.sends(); len(s) != 0 {
		t.Fatalf("sent %v while the new action could not be read", s)
	}

	st.on.Store(false)
	q.d.scan(ctx)
	visits := q.d.lastVisits
	for end := time.Now().Add(5 * time.Second); len(q.sends()) == 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	if s, want := q.sends(), "hv-up/"+sc.Action.ID; len(s) != 1 || s[0] != want {
		t.Fatalf("sent %v once the action could be read again, want [%s]", s, want)
	}
	if visits < n+1 {
		t.Fatalf("the wake-up after a failed read looked at %d actions, want all %d open", visits, n+1)
	}
	close(q.release)
	waitIdle(t, q.d)
}

// unreadableGauge is hostplane_actions_unreadable as a scrape of d's
// collectors reads it.
func unreadableGauge(t *testing.T, d *Dispatcher) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hostplane_actions_unreadable" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no hostplane_actions_unreadable series")
	return 0
}

// TestUnreadableOpenActionIsSaid: an open action whose record does not
// decode is neither sent nor expired by a leader (it cannot read what to
// send); the full read that meets it logs it once, naming it, and counts it
// in hostplane_actions_unreadable while it stays so, and a write that makes
// it read again (its note) sends it and clears the count. Before, the full
// read skipped it without a word: it sat pending with nothing to say why.
func TestUnreadableOpenActionIsSaid(t *testing.T) {
	q := newQueuedRig(t, 2)
	st := &brokenState{Reader: q.r.FSM}
	q.d.s.State = st
	var logs framework.SyncBuilder // the dispatcher may log from its send goroutines too
	q.d.s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	q.d.scan(ctx)

	sc := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
	q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
	id := sc.Action.ID
	st.breakAction(t, q, id)
	// The wake-up for its note fails to read it; the next reads everything
	// and meets it again; two more full reads (a replaced state's) meet it
	// again and say nothing new.
	for i := range 4 {
		if i >= 2 {
			q.d.actionsChanged(nil)
		}
		q.d.scan(ctx)
		if i >= 2 && q.d.lastVisits < 3 {
			t.Fatalf("wake-up %d looked at %d actions, want a full read", i+1, q.d.lastVisits)
		}
	}
	if s := q.sends(); len(s) != 0 {
		t.Fatalf("sent %v while the action could not be read", s)
	}
	line := "open action cannot be read"
	if n := strings.Count(logs.String(), line); n != 1 || !strings.Contains(logs.String(), "action="+id) {
		t.Fatalf("%d log lines %q naming %s over four wake-ups, want 1; log:\n%s", n, line, id, logs.String())
	}
	if g := unreadableGauge(t, q.d); g != 1 {
		t.Fatalf("hostplane_actions_unreadable %v while %s cannot be read, want 1", g, id)
	}

	st.on.Store(false)
	q.d.actionsChanged([]string{id}) // as the write that mends it notes it
	q.d.scan(ctx)
	for end := time.Now().Add(5 * time.Second); len(q.sends()) == 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
	}
	if s, want := q.sends(), "hv-up/"+id; len(s) != 1 || s[0] != want {
		t.Fatalf("sent %v once the action read again, want [%s]", s, want)
	}
	if g := unreadableGauge(t, q.d); g != 0 {
		t.Fatalf("hostplane_actions_unreadable %v once the action read again, want 0", g)
	}
	close(q.release)
	waitIdle(t, q.d)
}

// TestUnreadableCountIsTheLeaders: hostplane_actions_unreadable is the
// leader's, as the action is its to send: a coordinator whose leader job
// ended (a follower now, the next leader counting the action itself) shows
// 0, not the count of its last full read, which nothing it does as a
// follower would ever clear; and leading again, it says so again.
func TestUnreadableCountIsTheLeaders(t *testing.T) {
	q := newQueuedRig(t, 1)
	st := &brokenState{Reader: q.r.FSM}
	q.d.s.State = st
	var logs framework.SyncBuilder
	q.d.s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	sc := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
	q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
	st.breakAction(t, q, sc.Action.ID)
	line := "open action cannot be read"
	for term := 1; term <= 2; term++ {
		// A leader job that ends after its first wake-up (a full read).
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		q.d.Run(ctx)
		if n := strings.Count(logs.String(), line); n != term {
			t.Fatalf("%d log lines %q after %d leader jobs, want one a job; log:\n%s", n, line, term, logs.String())
		}
		if g := unreadableGauge(t, q.d); g != 0 {
			t.Fatalf("hostplane_actions_unreadable %v on a coordinator whose leader job ended, want 0 (the leader counts it)", g)
		}
	}
}
