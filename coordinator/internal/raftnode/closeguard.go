package raftnode

import (
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// closeGuard is the node's log store with a Close that waits for the stable
// store writes in progress and makes the ones after it no-ops.
//
// hashicorp/raft answers a leader's heartbeat on the transport's goroutine
// (the heartbeat fast path), which checks for shutdown only before it
// starts: a heartbeat that passed that check while Shutdown ran writes the
// leader's term after Shutdown's future has returned and the store has been
// closed, and raft panics on the store's error ("failed to save current
// term: closed", hashicorp/raft#717, open; seen in a clean-clone CI of
// coordinator/internal/session). The transport does not wait for its
// handlers, so the node cannot wait for that heartbeat either; dropping its
// write is safe: raft's own goroutines have ended, and a term learned from a
// heartbeat is no vote (a vote is persisted while raft runs, before it is
// answered), so a restart at the older term cannot give a second vote in a
// term this node voted in.
type closeGuard struct {
	logStore
	log hclog.Logger

	mu     sync.RWMutex
	closed bool
}

// Set writes a stable key, or drops the write once the store is closed.
func (g *closeGuard) Set(key, val []byte) error {
	return g.write(key, func() error { return g.logStore.Set(key, val) })
}

// SetUint64 is Set of a number.
func (g *closeGuard) SetUint64(key []byte, val uint64) error {
	return g.write(key, func() error { return g.logStore.SetUint64(key, val) })
}

// write runs a stable-store write unless the store is closed (then it is
// dropped and logged at debug), with Close kept waiting until it returns.
func (g *closeGuard) write(key []byte, w func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		g.log.Debug("raft stable store write after close dropped (a heartbeat raced the shutdown)", "key", string(key))
		return nil
	}
	return w()
}

// IsMonotonic passes on the WAL's raft.MonotonicLogStore: an embedded
// interface promotes only its own methods, and raft must still see that the
// log takes no gaps (it resets the log on a snapshot restore only then).
func (g *closeGuard) IsMonotonic() bool {
	m, ok := g.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// Close waits for the stable store writes in progress, then closes the store.
func (g *closeGuard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	return g.logStore.Close()
}
