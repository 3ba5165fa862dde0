package raftnode

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// errFSMClosed is what Raft is told of a snapshot or restore asked after
// Close.
var errFSMClosed = errors.New("raftnode: the state machine is closed")

// errNotApplied is the result of an entry the gate turned away after Close.
var errNotApplied = fmt.Errorf("%w: this coordinator closed its state machine before applying the entry", ErrNotLeader)

// fsmGate is the FSM as Raft calls it, until Node.Close shuts it: then it
// applies, snapshots and restores nothing. Close cannot otherwise know that
// Raft's goroutines have ended: a leader that removed itself has Raft shut
// itself down (ShutdownOnRemove), and the Shutdown Close calls then gets a
// future that does not wait for them (hashicorp/raft v1.7.3 answers a second
// Shutdown with shutdownFuture{nil}), so Raft's FSM goroutine could apply a
// batch it still held after Close closed the database, and panic ("fsm:
// apply batch ending at 8: database not open"; review23). shut waits for a
// call in progress. What is not applied stays in the Raft log, and is applied
// at the next start.
type fsmGate struct {
	f      *fsm.FSM
	mu     sync.RWMutex
	closed bool
}

// Apply implements raft.FSM.
func (g *fsmGate) Apply(l *raft.Log) any { return g.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM.
func (g *fsmGate) ApplyBatch(logs []*raft.Log) []any {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		// Each entry answered as not applied here (a 503 no_leader to the
		// HTTP caller, which sends it again with its Idempotency-Key): a
		// nil result would be answered as a success by the batcher
		// (batcher.go, an empty fsm.Result) for what this node never
		// applied.
		out := make([]any, len(logs))
		for i := range out {
			out[i] = &fsm.Result{Err: errNotApplied}
		}
		return out
	}
	return g.f.ApplyBatch(logs)
}

// Snapshot implements raft.FSM.
func (g *fsmGate) Snapshot() (raft.FSMSnapshot, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, errFSMClosed
	}
	return g.f.Snapshot()
}

// Restore implements raft.FSM.
func (g *fsmGate) Restore(rc io.ReadCloser) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		rc.Close()
		return errFSMClosed
	}
	return g.f.Restore(rc)
}

// shut turns later calls away, once a call in progress has returned.
func (g *fsmGate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
