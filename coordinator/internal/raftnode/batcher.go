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
	apply func(data []byte, timeout time.Duration) raft.ApplyFuture
	term  func() uint64 // the current Raft term (nil: 0)
	// await waits for an applied entry's future (nil: its Error()); the
	// Node's ends once Raft has shut down (Node.awaitFuture), since Raft may
	// then leave a committed entry's future unanswered for ever, and
	// every later proposal would wait behind it.
	await    func(raft.Future) error
	maxBatch int
	done     chan struct{} // closed by stop

	mu         sync.Mutex
	queue      []*proposal
	committing bool // a commit goroutine is running
	stopped    bool
}

type proposal struct {
	data []byte
	// done is closed once Raft answered the proposal: res, err and term
	// are set then.
	done chan struct{}
	res  *fsm.Result
	err  error
	term uint64 // the Raft term read when Raft answered
	// taken (guarded by batcher.mu): out of the queue, in an entry on its
	// way to Raft. A proposal not taken can be withdrawn.
	taken bool
}

// newBatcher group-commits through apply (raft.Apply), at most maxBatch
// proposals per entry, one entry in flight at a time; term reads the
// current Raft term (raft.CurrentTerm); await waits for an entry's answer
// (batcher.await).
func newBatcher(apply func([]byte, time.Duration) raft.ApplyFuture, term func() uint64, await func(raft.Future) error, maxBatch int) *batcher {
	return &batcher{apply: apply, term: term, await: await, maxBatch: maxBatch, done: make(chan struct{})}
}

// ErrWithdrawn is in Apply's error (with the context's) when the caller's
// context ended while its proposal still waited in this node's queue: the
// proposal was taken out, and never reaches the Raft log.
var ErrWithdrawn = errors.New("withdrawn before it reached raft")

// InFlightError is Apply's error when the caller's context ended after its
// proposal left this node's queue for Raft: it may still commit. Unlike a
// proposal still queued (ErrWithdrawn), it cannot be taken back, and until
// Raft answers it no one can say in which term it will be appended, if at
// all (Raft may hold it a while before its leader loop appends it). It
// unwraps to the context's error.
type InFlightError struct {
	Err error // the context's error
	p   *proposal
}

func (e *InFlightError) Error() string {
	return e.Err.Error() + " (the proposal is with raft and may still commit)"
}

func (e *InFlightError) Unwrap() error { return e.Err }

// Answered is closed once Raft answered the proposal (Answer).
func (e *InFlightError) Answered() <-chan struct{} { return e.p.done }

// Answer waits for Raft's answer to the proposal (Answered): a nil error
// if it committed and was applied here; else the error (it may have been
// appended, and commit, all the same), and term, the Raft term read when
// Raft answered: every copy of the proposal the log may hold was appended
// in that term or an earlier one.
func (e *InFlightError) Answer() (term uint64, err error) {
	<-e.p.done
	return e.p.term, e.p.err
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
	p := &proposal{data: data, done: make(chan struct{})}
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
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		if b.withdraw(p) {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), ErrWithdrawn)
		}
		select {
		case <-p.done: // answered meanwhile
			return p.res, p.err
		default:
		}
		return nil, &InFlightError{Err: ctx.Err(), p: p}
	case <-b.done:
		return nil, errShuttingDown
	}
}

// withdraw takes p out of the queue unless it was taken: then it never
// reaches Raft, and withdraw returns true.
func (b *batcher) withdraw(p *proposal) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.taken {
		return false
	}
	for i, q := range b.queue {
		if q == p {
			copy(b.queue[i:], b.queue[i+1:])
			b.queue[len(b.queue)-1] = nil
			b.queue = b.queue[:len(b.queue)-1]
			break
		}
	}
	return true
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
		for _, p := range batch {
			p.taken = true
		}
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		b.commit(batch)
	}
}

// answer gives p Raft's answer.
func (p *proposal) answer(res *fsm.Result, err error, term uint64) {
	p.res, p.err, p.term = res, err, term
	close(p.done)
}

func (b *batcher) currentTerm() uint64 {
	if b.term == nil {
		return 0
	}
	return b.term()
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
	await := raft.Future.Error
	if b.await != nil {
		await = b.await
	}
	if err := await(fut); err != nil {
		// Read after Raft answered: the entry, if it was appended at
		// all, was appended in this term or an earlier one.
		term := b.currentTerm()
		err = applyError(err)
		for _, p := range batch {
			p.answer(nil, err, term)
		}
		return
	}
	switch r := fut.Response().(type) {
	case fsm.BatchResult:
		for i, p := range batch {
			if i < len(r) && r[i] != nil {
				p.answer(r[i], nil, 0)
			} else {
				p.answer(&fsm.Result{}, nil, 0)
			}
		}
	case *fsm.Result:
		// One result for the whole entry (a batch the FSM could not
		// decode): every proposal in it gets it, each its own copy.
		for _, p := range batch {
			rc := *r
			p.answer(&rc, nil, 0)
		}
	default:
		for _, p := range batch {
			p.answer(&fsm.Result{}, nil, 0)
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
