package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// batcher is a group commit in front of raft.Apply. Proposals that arrive while
// maxInFlight log entries are already being replicated wait and then go out
// together as one CmdBatch entry, so under load each fsync of the Raft log
// (on the leader and on every follower) commits many writes instead of a few.
// With no load a proposal goes out at once, alone.
type batcher struct {
	n        *Node
	reqs     chan *proposal
	inflight chan struct{}
	maxBatch int
	done     chan struct{}
}

type proposal struct {
	data []byte
	res  chan proposalResult
}

type proposalResult struct {
	res *fsm.Result
	err error
}

func newBatcher(n *Node, maxInFlight, maxBatch int) *batcher {
	b := &batcher{
		n: n, reqs: make(chan *proposal, 4096), inflight: make(chan struct{}, maxInFlight),
		maxBatch: maxBatch, done: make(chan struct{}),
	}
	go b.run()
	return b
}

func (b *batcher) stop() { close(b.done) }

// propose queues encoded envelope data and waits for its result.
func (b *batcher) propose(ctx context.Context, data []byte) (*fsm.Result, error) {
	p := &proposal{data: data, res: make(chan proposalResult, 1)}
	select {
	case b.reqs <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.done:
		return nil, fmt.Errorf("%w: shutting down", ErrNotLeader)
	}
	select {
	case r := <-p.res:
		return r.res, r.err
	case <-ctx.Done():
		// The proposal may still commit; the caller only stops waiting.
		return nil, ctx.Err()
	case <-b.done:
		return nil, fmt.Errorf("%w: shutting down", ErrNotLeader)
	}
}

func (b *batcher) run() {
	for {
		var batch []*proposal
		select {
		case p := <-b.reqs:
			batch = append(batch, p)
		case <-b.done:
			return
		}
		// Wait for an in-flight slot, gathering what arrives meanwhile.
	acquire:
		for {
			select {
			case b.inflight <- struct{}{}:
				break acquire
			case p := <-b.reqs:
				batch = append(batch, p)
			case <-b.done:
				b.fail(batch, fmt.Errorf("%w: shutting down", ErrNotLeader))
				return
			}
		}
		for len(batch) < b.maxBatch {
			select {
			case p := <-b.reqs:
				batch = append(batch, p)
				continue
			default:
			}
			break
		}
		if len(batch) > b.maxBatch {
			// Over-full: the rest waits for the next round.
			rest := batch[b.maxBatch:]
			batch = batch[:b.maxBatch]
			go func() {
				for _, p := range rest {
					b.reqs <- p
				}
			}()
		}
		go b.commit(batch)
	}
}

func (b *batcher) fail(batch []*proposal, err error) {
	for _, p := range batch {
		p.res <- proposalResult{err: err}
	}
}

func (b *batcher) commit(batch []*proposal) {
	defer func() { <-b.inflight }()
	data := batch[0].data
	if len(batch) > 1 {
		encoded := make([][]byte, len(batch))
		for i, p := range batch {
			encoded[i] = p.data
		}
		data = fsm.EncodeBatch(time.Now(), encoded)
	}
	fut := b.n.Raft.Apply(data, 30*time.Second)
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
		batch[0].res <- proposalResult{res: r}
	default:
		batch[0].res <- proposalResult{res: &fsm.Result{}}
	}
}

func applyError(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return fmt.Errorf("raft apply: %w", err)
}
