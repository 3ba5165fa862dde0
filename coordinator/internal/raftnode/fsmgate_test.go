package raftnode

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
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
	if len(out) != 1 || out[0] != nil || n.FSM.AppliedIndex() != applied {
		t.Fatalf("a batch after Close: %v, applied index %d (was %d); want it turned away", out, n.FSM.AppliedIndex(), applied)
	}
	if _, err := n.gate.Snapshot(); !errors.Is(err, errFSMClosed) {
		t.Fatalf("a snapshot after Close: %v, want errFSMClosed", err)
	}
}
