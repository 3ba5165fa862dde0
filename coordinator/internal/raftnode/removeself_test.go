package raftnode

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A leader that removes itself through itself answers that the removal is
// done, and the members left go on and take it back (three rounds). This
// does not reproduce the race awaitFuture is for (TestAwaitFutureEnds...):
// that needs the FSM goroutine busy at the commit, as under load.
func TestLeaderRemovingItselfAnswers(t *testing.T) {
	nodes := map[string]*Node{}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	open := func(id string, bootstrap bool) *Node {
		n := openMember(t, id, t.TempDir(), freeAddr(t), bootstrap)
		nodes[id] = n
		return n
	}
	leader := func() *Node {
		t.Helper()
		var l *Node
		waitFor(t, 15*time.Second, "a leader", func() bool {
			for _, n := range nodes {
				if n.IsLeader() {
					l = n
					return true
				}
			}
			return false
		})
		return l
	}
	a := open("a", true)
	waitLeads(t, a)
	for _, id := range []string{"b", "c"} {
		if err := a.Join(id, string(open(id, false).Addr)); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		l := leader()
		done := make(chan error, 1)
		go func() { done <- l.Remove(l.ID) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: %s removing itself: %v", round, l.ID, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: %s removing itself has not answered in 20 s (state %v)", round, l.ID, l.Raft.State())
		}
		waitFor(t, 10*time.Second, l.ID+"'s Raft to shut down", func() bool { return l.Raft.State() == raft.Shutdown })
		l.Close()
		delete(nodes, l.ID)
		// The others go on without it; it comes back empty.
		nl := leader()
		servers, err := nl.Servers()
		if err != nil || len(servers) != 2 {
			t.Fatalf("round %d: members after removing %s: %v %v", round, l.ID, servers, err)
		}
		var joinErr error
		n := open(l.ID, false)
		waitFor(t, 20*time.Second, l.ID+" to join again", func() bool {
			if joinErr = leader().Join(l.ID, string(n.Addr)); joinErr != nil {
				t.Logf("round %d: join %s: %v", round, l.ID, joinErr)
			}
			return joinErr == nil
		})
	}
}

// neverFuture is a future whose answer never comes, as a configuration
// change's when hashicorp/raft's FSM goroutine takes its shutdown first.
type neverFuture struct{}

func (neverFuture) Error() error { select {} }

// A future that never answers ends with ErrRaftShutdown once Raft has shut
// down, instead of waiting for ever (the leader removing itself through
// itself: noleader18 saw `cluster remove` of the leader hang under load, the
// leader having logged "removed ourself, shutting down").
func TestAwaitFutureEndsWhenRaftShutsDown(t *testing.T) {
	n := openLeader(t)
	if err := n.Raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.awaitFuture(neverFuture{}) }()
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("awaitFuture after shutdown: %v, want ErrRaftShutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("awaitFuture still waits 5 s after Raft shut down")
	}
}

// neverApplyFuture is an applied entry's future whose answer never comes,
// as a committed entry's when Raft shuts down (a leader that removed
// itself) before its FSM goroutine answered it.
type neverApplyFuture struct{ neverFuture }

func (neverApplyFuture) Response() any { return nil }
func (neverApplyFuture) Index() uint64 { return 0 }

// An entry Raft never answers holds its proposal, and every proposal queued
// behind it, only until Raft has shut down: then they are answered
// ErrNotLeader (a 503 no_leader the client may send again), and later ones
// at once. Before, the batcher's commit goroutine waited on the entry for
// ever, and every later proposal on the node queued behind it.
func TestBatcherEndsWhenRaftShutsDownUnderAnUnansweredEntry(t *testing.T) {
	n := openLeader(t)
	// Open's batcher, with the wait Open gave it: only its first entry's
	// future is replaced by one that never answers.
	applied := make(chan struct{})
	n.batch.mu.Lock()
	apply := n.batch.apply
	n.batch.apply = func(data []byte, timeout time.Duration) raft.ApplyFuture {
		select {
		case <-applied:
			return apply(data, timeout)
		default:
			close(applied)
			return neverApplyFuture{}
		}
	}
	n.batch.mu.Unlock()
	ctx := t.Context()
	errs := make(chan error, 2)
	go func() { _, err := n.batch.propose(ctx, []byte(`{"n":0}`)); errs <- err }()
	<-applied
	go func() { _, err := n.batch.propose(ctx, []byte(`{"n":1}`)); errs <- err }()
	waitQueued(t, n.batch, 1)
	if err := n.Raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrNotLeader) {
				t.Fatalf("proposal %d after the shutdown: %v, want ErrNotLeader", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 2 proposals still wait 5 s after Raft shut down", 2-i)
		}
	}
	if _, err := n.batch.propose(ctx, []byte(`{"n":2}`)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a proposal after: %v, want ErrNotLeader", err)
	}
}
