package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// batcher is a group commit in front of raft.Apply. Proposals that arrive while
// a log entry is already being replicated wait and then go out together as one
// CmdBatch entry, so under load each fsync of the Raft log (on the leader and
// on every follower) commits many writes instead of a few. With no load a
// proposal goes out at once, alone.
//
// A proposal is queued under a mutex, not sent to a goroutine: the goroutine
// that commits (one at a time) takes what has gathered when its previous
// entry is applied, so a proposal wakes nobody unless no commit is under way
// (then it starts one). Handing each proposal to a gathering goroutine cost a
// goroutine wake-up per write.
type batcher struct {
	apply    func(data []byte, timeout time.Duration) raft.ApplyFuture
	maxBatch int
	done     chan struct{} // closed by stop

	mu         sync.Mutex
	queue      []*proposal
	committing bool // a commit goroutine is running
	stopped    bool
}

type proposal struct {
	data []byte
	res  chan proposalResult
}

type proposalResult struct {
	res *fsm.Result
	err error
}

// newBatcher group-commits through apply (raft.Apply), at most maxBatch
// proposals per entry, one entry in flight at a time.
func newBatcher(apply func([]byte, time.Duration) raft.ApplyFuture, maxBatch int) *batcher {
	return &batcher{apply: apply, maxBatch: maxBatch, done: make(chan struct{})}
}

// stop fails the proposals not yet committed, and every later one.
func (b *batcher) stop() {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.stopped = true
	close(b.done)
	b.mu.Unlock()
}

var errShuttingDown = fmt.Errorf("%w: shutting down", ErrNotLeader)

// propose queues encoded envelope data and waits for its result.
func (b *batcher) propose(ctx context.Context, data []byte) (*fsm.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &proposal{data: data, res: make(chan proposalResult, 1)}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil, errShuttingDown
	}
	b.queue = append(b.queue, p)
	start := !b.committing
	b.committing = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
	select {
	case r := <-p.res:
		return r.res, r.err
	case <-ctx.Done():
		// The proposal may still commit; the caller only stops waiting.
		return nil, ctx.Err()
	case <-b.done:
		return nil, errShuttingDown
	}
}

// run commits what is queued, one entry at a time, until the queue is empty.
func (b *batcher) run() {
	for {
		b.mu.Lock()
		if b.stopped || len(b.queue) == 0 {
			// Proposals left by a stop get no answer: their callers return
			// on done.
			b.queue = nil
			b.committing = false
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), b.maxBatch)
		batch := make([]*proposal, n)
		copy(batch, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		b.commit(batch)
	}
}

func (b *batcher) fail(batch []*proposal, err error) {
	for _, p := range batch {
		p.res <- proposalResult{err: err}
	}
}

func (b *batcher) commit(batch []*proposal) {
	data := batch[0].data
	if len(batch) > 1 {
		encoded := make([][]byte, len(batch))
		for i, p := range batch {
			encoded[i] = p.data
		}
		data = fsm.EncodeBatch(time.Now(), encoded)
	}
	fut := b.apply(data, 30*time.Second)
	if err := fut.Error(); err != nil {
		b.fail(batch, applyError(err))
		return
	}
	switch r := fut.Response().(type) {
	case fsm.BatchResult:
		for i, p := range batch {
			if i < len(r) && r[i] != nil {
				p.res <- proposalResult{res: r[i]}
			} else {
				p.res <- proposalResult{res: &fsm.Result{}}
			}
		}
	case *fsm.Result:
		// One result for the whole entry (a batch the FSM could not
		// decode): every proposal in it gets it, each its own copy.
		for _, p := range batch {
			rc := *r
			p.res <- proposalResult{res: &rc}
		}
	default:
		for _, p := range batch {
			p.res <- proposalResult{res: &fsm.Result{}}
		}
	}
}

func applyError(err error) error {
	if leadershipError(err) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return fmt.Errorf("raft apply: %w", err)
}

// leadershipError: raft refused or gave up because this node is not, or
// stopped being, the leader.
func leadershipError(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrRaftShutdown)
}
