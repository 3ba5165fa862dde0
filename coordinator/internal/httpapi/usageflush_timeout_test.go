package httpapi

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
)

// stallFSM makes the member's FSM, once it has applied the next entry,
// wait until release is called: Raft answers no proposal meanwhile, so the
// entry the batcher has in flight stays unanswered and later proposals
// wait in its queue. stalled is closed once the FSM waits.
func stallFSM(w *whAPI) (stalled <-chan struct{}, release func()) {
	armed := &atomic.Bool{}
	armed.Store(true)
	in, hold := make(chan struct{}), make(chan struct{})
	w.node.FSM.OnApply = func(uint64) {
		if armed.CompareAndSwap(true, false) {
			close(in)
			<-hold
		}
	}
	released := &atomic.Bool{}
	release = func() {
		if released.CompareAndSwap(false, true) {
			close(hold)
		}
	}
	w.t.Cleanup(release)
	return in, release
}

// accountEnv is a harmless command: a new account.
func accountEnv() *fsm.Envelope {
	acc := ids.New("acc", time.Now())
	env, _ := fsm.NewEnvelope(fsm.CmdAccountCreate, time.Now(), fsm.AccountCreate{ID: acc, Email: acc + "@example.com", Name: "x", Country: "TR"})
	return env
}

// shipped is what a coordinator that does not lead would ship to the
// leader now (ShipUsage; no leader address is known, so it is kept and
// taken here): the number of uses.
func shipped(w *whAPI) int64 {
	w.t.Helper()
	_ = w.a.ShipUsage(context.Background())
	var n int64
	if u := w.a.Usage.Take(); u != nil {
		for _, b := range u.Keys {
			n += b.Count
		}
	}
	return n
}

// deposedFlushTimesOut: once the FSM has stalled (stallFSM), the leader's
// flush, with a 300 ms apply timeout, times out while the coordinator is
// deposed (faultyApply); it returns what the coordinator ships then, and
// releases the FSM. what names the flush in a failure.
func deposedFlushTimesOut(w *whAPI, f *faultyApply, stalled <-chan struct{}, release func(), what string) (sent int64) {
	w.t.Helper()
	<-stalled
	w.a.cfg.ApplyTimeout = 300 * time.Millisecond
	f.depose(true)
	if err := w.a.FlushUsage(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		w.t.Fatalf("%s: %v, want its timeout", what, err)
	}
	sent = shipped(w)
	release()
	return sent
}

// TestUsageFlushTimedOutInTheQueue: a leader's flush whose proposal timed
// out while it still waited in the member's group-commit queue (the entry
// before it in flight, unanswered) is kept; the coordinator, deposed, then
// hands its uses to the new leader. The proposal must not reach the log
// afterwards, once the queue moves again: the uses would count twice (the
// new leader writes them under its own flush id). In this single-member
// rig the deposition is faultyApply's (it answers as a member that no
// longer leads, whose term is the one before the one its FSM applies); a
// proposal left in the queue that reaches Raft later is appended in the
// term the member leads in then, as it would be by a member leading again.
func TestUsageFlushTimedOutInTheQueue(t *testing.T) {
	w, f := usageAPI(t, fsm.MaxLevel)
	w.a.cfg.ClusterSecret = "s" // ships (to no known leader: kept, and taken by shipped)
	id, key := usageKey(w)
	useKey(w, key, 2)

	stalled, release := stallFSM(w)
	before := make(chan error, 1)
	go func() {
		_, err := w.a.Apply(context.Background(), accountEnv())
		before <- err
	}()
	sent := deposedFlushTimesOut(w, f, stalled, release, "the flush queued behind an unanswered entry")
	if err := <-before; err != nil {
		t.Fatalf("the entry in flight: %v", err)
	}
	w.a.cfg.ApplyTimeout = 10 * time.Second
	w.apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: ids.New("acc", time.Now()), Email: "later@example.com", Name: "x", Country: "TR"}) // queued after anything left in the queue
	n, _, logged := keyUses(w, id)
	if n+sent != 2 || int64(logged)+sent != 2 {
		t.Errorf("2 uses: the deposed leader shipped %d, and the log holds use_count %d, %d usage log entries; want 2 in all (the timed-out flush written or shipped, once)", sent, n, logged)
	}

	f.depose(false)
	flushOK(w, "the flush when it leads again")
	if n2, _, _ := keyUses(w, id); n2 != n {
		t.Errorf("leading again, its flush wrote %d more uses; want none", n2-n)
	}
}

// TestUsageFlushTimedOutWithRaft: a flush whose proposal timed out after
// the batcher handed it to Raft (appended, the FSM behind on an earlier
// entry) may still be written: a deposed coordinator must not hand its
// uses back before Raft answered it. (The earlier entry goes to Raft
// directly, around the batcher, so the flush's proposal is handed at once;
// the deposition is faultyApply's, as in TestUsageFlushTimedOutInTheQueue:
// the flush is appended in a later term than the one read when its wait
// ended.)
func TestUsageFlushTimedOutWithRaft(t *testing.T) {
	w, f := usageAPI(t, fsm.MaxLevel)
	w.a.cfg.ClusterSecret = "s"
	id, key := usageKey(w)
	useKey(w, key, 2)

	stalled, release := stallFSM(w)
	data, err := accountEnv().Encode()
	if err != nil {
		t.Fatal(err)
	}
	fut := w.node.Raft.Apply(data, 5*time.Second)
	sent := deposedFlushTimesOut(w, f, stalled, release, "the flush behind an entry the FSM has not applied")
	if err := fut.Error(); err != nil {
		t.Fatalf("the entry ahead: %v", err)
	}
	w.a.cfg.ApplyTimeout = 10 * time.Second
	w.apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: ids.New("acc", time.Now()), Email: "later@example.com", Name: "x", Country: "TR"})
	sent += shipped(w) // Raft has answered the flush's proposal by now
	n, _, logged := keyUses(w, id)
	if n+sent != 2 || int64(logged)+sent != 2 {
		t.Errorf("2 uses: the deposed leader shipped %d, and the log holds use_count %d, %d usage log entries; want 2 in all (the timed-out flush written or shipped, once)", sent, n, logged)
	}
}
