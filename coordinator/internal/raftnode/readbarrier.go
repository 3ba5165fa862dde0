package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// readBarrier makes local reads on the leader linearizable, ReadIndex-style:
// a confirmation round records the commit index, confirms with a quorum that
// this member is still the leader (raft.VerifyLeader: a heartbeat round), and
// waits until the FSM has applied every command up to the recorded index. A read
// that passes a round started after it arrived sees every write acknowledged
// before it arrived, by this leader or any earlier one, and no newer leader can
// have acknowledged a write before the round's quorum answered.
//
// hashicorp/raft's VerifyLeader also counts a follower's answer to a heartbeat
// or append sent before the round began. That answer can only be stale (given
// before a newer leader was elected) if its round trip outlasted an election
// timeout, and a leader that runs normally steps down by its lease before
// then; but a leader whose process was stopped (SIGSTOP, a paused VM, a swap
// storm) finds such answers buffered when it runs again. So after this process
// has not run for a while (stallWatch), rounds confirm through the log instead
// (raft.Barrier: an entry of this term committed by a quorum after the round
// began) for a while.
//
// Rounds are shared, as etcd batches ReadIndex: one round runs at a time; reads
// that arrive while it is in flight wait together for the next round, never
// piggybacking on one that started before they arrived.
type readBarrier struct {
	confirm func() error // one confirmation round

	mu      sync.Mutex
	running bool
	next    *readRound // the round that reads arriving now will join
	rounds  uint64     // rounds started (for tests and metrics)
}

type readRound struct {
	done    chan struct{}
	err     error
	readers int // reads that joined it (under readBarrier.mu)
}

func newReadBarrier(confirm func() error) *readBarrier {
	return &readBarrier{confirm: confirm}
}

// wait returns once a round that started after the call has confirmed
// leadership and the FSM has caught up, or with that round's error.
func (b *readBarrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	r.readers++
	if !b.running {
		// Nothing in flight: this read's round starts now.
		b.running = true
		b.next = nil
		b.rounds++
		go b.run(r)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run performs r, then every round that gathered readers meanwhile, one at a time.
func (b *readBarrier) run(r *readRound) {
	for r != nil {
		r.err = b.confirm()
		close(r.done)
		b.mu.Lock()
		r = b.next
		if r != nil {
			b.next = nil
			b.rounds++
		} else {
			b.running = false
		}
		b.mu.Unlock()
	}
}

// Rounds is the number of confirmation rounds started so far.
func (b *readBarrier) Rounds() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rounds
}

// readConfirmTimeout bounds one confirmation round.
const readConfirmTimeout = 5 * time.Second

// LinearizableRead returns once this member may serve a linearizable read from
// its local FSM: it is the leader, a quorum confirmed that after the call began,
// and the FSM has applied everything committed before the call began. Concurrent
// callers share confirmation rounds. It fails with ErrNotLeader when leadership
// is not (or no longer) held; the caller then must not serve the read.
func (n *Node) LinearizableRead(ctx context.Context) error {
	return n.reads.wait(ctx)
}

// ReadRounds is the number of leadership confirmation rounds run for reads.
func (n *Node) ReadRounds() uint64 { return n.reads.Rounds() }

// confirmRead is one confirmation round (see readBarrier).
func (n *Node) confirmRead() error {
	if n.Raft.State() != raft.Leader {
		return fmt.Errorf("%w: read refused", ErrNotLeader)
	}
	term := n.Raft.CurrentTerm()
	if n.stall.stalled() {
		// Commit an entry of this term: only a leader a quorum still follows
		// can, and Barrier returns once the FSM has applied everything before it.
		if err := n.Raft.Barrier(readConfirmTimeout).Error(); err != nil {
			return fmt.Errorf("%w: %v", ErrNotLeader, applyError(err))
		}
		if n.Raft.CurrentTerm() != term {
			return fmt.Errorf("%w: leadership changed during the read", ErrNotLeader)
		}
		return nil
	}
	if n.readTerm.Load() != term {
		// A new leader's commit index may not yet cover entries an earlier
		// leader committed: commit one of its own term (a barrier) first.
		if err := n.Raft.Barrier(readConfirmTimeout).Error(); err != nil {
			return fmt.Errorf("%w: %v", ErrNotLeader, applyError(err))
		}
		n.readTerm.Store(term)
	}
	idx := n.Raft.CommitIndex()
	if err := n.Raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: leadership not confirmed: %v", ErrNotLeader, err)
	}
	if n.Raft.State() != raft.Leader || n.Raft.CurrentTerm() != term {
		return fmt.Errorf("%w: leadership changed during the read", ErrNotLeader)
	}
	return n.waitApplied(idx, time.Now().Add(readConfirmTimeout))
}

// waitApplied waits until the FSM has applied every command with a Raft index
// up to idx (see CommandsApplied).
func (n *Node) waitApplied(idx uint64, deadline time.Time) error {
	for sleep := 50 * time.Microsecond; ; {
		if n.CommandsApplied(idx) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the state machine did not reach index %d (at %d)", ErrNotLeader, idx, n.FSM.AppliedIndex())
		}
		time.Sleep(sleep)
		if sleep < 2*time.Millisecond {
			sleep *= 2
		}
	}
}

// CommandsAppliedWithin waits up to d for CommandsApplied(idx).
func (n *Node) CommandsAppliedWithin(idx uint64, d time.Duration) bool {
	return n.waitApplied(idx, time.Now().Add(d)) == nil
}

// maxQuietScan bounds the log entries one CommandsApplied call reads (a
// variable for tests).
var maxQuietScan uint64 = 4096

// CommandsApplied reports whether the FSM holds every command with a Raft index
// up to idx (idx at most the commit index). The FSM's applied index moves with
// the entries Raft hands it (commands, and configuration changes in a batch);
// the entries after it may all be others (the leader's no-op, barriers — the
// systemd watchdog's progress check commits one per ping on the leader), so
// those are looked up in the log. How
// far the log is known to hold no unapplied command is remembered, so an idle
// member's growing run of barriers is read once, not on every call: before
// that, a member idle under the watchdog for 64 barriers answered every
// linearizable read with 503 and /readyz with "catching up" until the next
// write.
func (n *Node) CommandsApplied(idx uint64) bool {
	fa, quiet := n.FSM.AppliedIndex(), n.quietThrough.Load()
	if fa >= idx || quiet >= idx {
		return true
	}
	if n.Raft.AppliedIndex() < idx {
		return false // entries between are still on their way to the FSM
	}
	from := max(fa, quiet) + 1
	to := min(idx, from+maxQuietScan-1)
	if n.commandsBetween(from, to) {
		return false
	}
	// Every command up to to is in the FSM (one up to max(fa, quiet) was, and
	// none lies after it), whoever reads the FSM from now on.
	for cur := quiet; cur < to && !n.quietThrough.CompareAndSwap(cur, to); cur = n.quietThrough.Load() {
	}
	return to >= idx
}

// commandsBetween reports whether the log holds a command in [from, to]. An entry
// missing from the log was compacted into a snapshot the FSM already holds.
func (n *Node) commandsBetween(from, to uint64) bool {
	var l raft.Log
	for i := from; i <= to; i++ {
		if err := n.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return true
		}
		if l.Type == raft.LogCommand {
			return true
		}
	}
	return false
}

// stallWatch notices that this process did not run for a while: a ticker that
// finds its own tick late by more than threshold (the monotonic clock keeps
// counting while a process is stopped).
type stallWatch struct {
	start     time.Time
	threshold time.Duration
	caution   time.Duration
	last      atomic.Int64 // monotonic ns since start of the latest tick
	until     atomic.Int64 // reads confirm through the log until then
	done      chan struct{}
	onStall   func(gap, caution time.Duration)
}

const stallTick = 10 * time.Millisecond

// newStallWatch starts a watch: a tick late by more than threshold makes
// stalled true for caution.
func newStallWatch(threshold, caution time.Duration, onStall func(gap, caution time.Duration)) *stallWatch {
	s := &stallWatch{start: time.Now(), threshold: threshold, caution: caution, done: make(chan struct{}), onStall: onStall}
	go s.run()
	return s
}

func (s *stallWatch) now() int64 { return int64(time.Since(s.start)) }

func (s *stallWatch) run() {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.tick()
		case <-s.done:
			return
		}
	}
}

func (s *stallWatch) tick() {
	now := s.now()
	if gap := time.Duration(now - s.last.Load()); gap > s.threshold {
		s.until.Store(now + int64(s.caution))
		if s.onStall != nil {
			s.onStall(gap, s.caution)
		}
	}
	s.last.Store(now)
}

// stalled reports whether the process has (or may have) not run for a while
// recently: the ticker is late now, or it was within the caution period.
func (s *stallWatch) stalled() bool {
	now := s.now()
	return time.Duration(now-s.last.Load()) > s.threshold || now < s.until.Load()
}

func (s *stallWatch) stop() { close(s.done) }
