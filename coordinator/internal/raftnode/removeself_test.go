package raftnode

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A leader that removes itself through itself answers that the removal is
// done, and the members left go on and take it back (three rounds). This
// does not reproduce the race awaitFuture is for (TestAwaitFutureEnds...):
// that needs the FSM goroutine busy at the commit, as under load.
//
// A membership change the leader loses its leadership under before it
// commits is answered ErrNotLeader (Remove, Join: "leadership lost while
// committing log"); with these members' 150 ms lease that is an election a
// loaded machine makes often. Such a change may or may not have committed,
// and is sent again through the leader, as its callers do (httpapi answers
// it 503 no_leader, which hostplanectl and pkg/client send again); a
// removal of the old leader sent again through another member leaves it a
// follower, not shut down, so it is closed. A leader whose Raft shut down
// had its removal committed: it must answer done, never ErrNotLeader.
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
	// within is change(l), failing t if it has not answered in 20 s.
	within := func(what string, l *Node, change func(*Node) error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- change(l) }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s through %s has not answered in 20 s (state %v)", what, l.ID, l.Raft.State())
			return nil
		}
	}
	// throughLeader makes change through the leader, again through the
	// leader then while it is answered ErrNotLeader; it returns the member
	// that answered it done.
	throughLeader := func(what string, change func(*Node) error) *Node {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; {
			l := leader()
			err := within(what, l, change)
			if err == nil {
				return l
			}
			if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
				t.Fatalf("%s through %s: %v", what, l.ID, err)
			}
			t.Logf("%s through %s: %v; sent again through the leader", what, l.ID, err)
		}
	}
	a := open("a", true)
	waitLeads(t, a)
	for _, id := range []string{"b", "c"} {
		n := open(id, false)
		throughLeader("join "+id, func(l *Node) error { return l.Join(id, string(n.Addr)) })
	}
	for round := range 3 {
		l := leader()
		what := fmt.Sprintf("round %d: %s removing itself", round, l.ID)
		by := l
		if err := within(what, l, func(l *Node) error { return l.Remove(l.ID) }); err != nil {
			// Only a leader that lost the leadership before the removal
			// committed may answer ErrNotLeader; it is then a follower.
			// Raft shuts a leader down only once its removal committed:
			// that removal is done, and Remove answers it so (cluster.go),
			// which is what this test is for.
			if !errors.Is(err, ErrNotLeader) || l.Raft.State() == raft.Shutdown {
				t.Fatalf("%s: %v (state %v); want done, or ErrNotLeader from a leader that lost the leadership and did not shut down", what, err, l.Raft.State())
			}
			t.Logf("%s: %v; sent again through the leader", what, err)
			by = throughLeader(fmt.Sprintf("round %d: removing %s", round, l.ID), func(by *Node) error { return by.Remove(l.ID) })
		}
		if by == l {
			waitFor(t, 10*time.Second, l.ID+"'s Raft to shut down", func() bool { return l.Raft.State() == raft.Shutdown })
		}
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
