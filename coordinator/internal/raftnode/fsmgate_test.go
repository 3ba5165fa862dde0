package raftnode

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// After Close, what Raft's FSM goroutine may still hand the FSM is turned
// away, not applied to the closed database. A leader that removed itself
// has Raft shut itself down, so Close's Shutdown does not wait for that
// goroutine: review23 saw it apply a batch after Close ("panic: fsm: apply
// batch ending at 8: database not open") once in about 40 runs of
// TestLeaderRemovingItselfAnswers at load 28. The batch is handed here as
// that goroutine would; without the gate it panics the same way.
func TestFSMTakesNoBatchAfterClose(t *testing.T) {
	n, err := openAt(t.TempDir(), freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	waitLeads(t, n)
	next := n.Raft.LastIndex() + 1
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	applied := n.FSM.AppliedIndex()
	out := n.gate.ApplyBatch([]*raft.Log{{Index: next, Term: n.Raft.CurrentTerm(), Type: raft.LogCommand, Data: []byte(`{}`)}})
	res, _ := out[0].(*fsm.Result)
	if len(out) != 1 || res == nil || !errors.Is(res.Err, ErrNotLeader) || n.FSM.AppliedIndex() != applied {
		t.Fatalf("a batch after Close: %v, applied index %d (was %d); want it turned away, answered not applied (ErrNotLeader)", out, n.FSM.AppliedIndex(), applied)
	}
	// A proposal still waiting for that entry is not answered a success
	// (a nil result was: the batcher answers it an empty fsm.Result).
	b := newBatcher((&fakeRaft{whole: out[0]}).apply, nil, nil, 512)
	defer b.stop()
	if got, err := b.propose(context.Background(), []byte(`{"n":1}`)); err == nil && (got == nil || got.Err == nil) {
		t.Fatalf("a proposal whose entry the gate turned away: %+v, %v; want an error", got, err)
	}
	if _, err := n.gate.Snapshot(); !errors.Is(err, errFSMClosed) {
		t.Fatalf("a snapshot after Close: %v, want errFSMClosed", err)
	}
}
