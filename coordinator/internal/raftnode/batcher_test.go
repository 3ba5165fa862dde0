package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// fakeFuture is a raft.ApplyFuture already decided.
type fakeFuture struct {
	err  error
	resp any
}

func (f fakeFuture) Error() error  { return f.err }
func (f fakeFuture) Response() any { return f.resp }
func (f fakeFuture) Index() uint64 { return 0 }

// fakeRaft applies entries as the FSM answers them: a lone proposal's own
// result, or a batch's results in order; each result's value is the
// proposal's data, so a proposer can tell whether it got its own. While hold
// is set, an apply waits for release.
type fakeRaft struct {
	mu      sync.Mutex
	entries [][]string // the proposals each apply carried
	hold    chan struct{}
	err     error
	// whole, if set, is the response to every entry instead (an FSM that
	// answers a whole entry with one result, e.g. a batch it cannot decode).
	whole any
}

func (f *fakeRaft) apply(data []byte, _ time.Duration) raft.ApplyFuture {
	f.mu.Lock()
	hold, err := f.hold, f.err
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	var entry struct {
		T fsm.CommandType   `json:"t"`
		D []json.RawMessage `json:"d"`
	}
	var got []string
	var resp any
	if json.Unmarshal(data, &entry) == nil && entry.T == fsm.CmdBatch {
		var res fsm.BatchResult
		for _, d := range entry.D {
			got = append(got, string(d))
			res = append(res, &fsm.Result{Value: string(d)})
		}
		resp = res
	} else {
		got = []string{string(data)}
		resp = &fsm.Result{Value: string(data)}
	}
	f.mu.Lock()
	f.entries = append(f.entries, got)
	if f.whole != nil {
		resp = f.whole
	}
	f.mu.Unlock()
	return fakeFuture{err: err, resp: resp}
}

func (f *fakeRaft) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []int
	for _, e := range f.entries {
		n = append(n, len(e))
	}
	return n
}

func queued(b *batcher) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// waitQueued waits until n proposals wait behind the entry in flight.
func waitQueued(t *testing.T, b *batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for queued(b) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d proposals queued after 10 s, want %d", queued(b), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitInFlight waits until an entry is in apply (not queued): the queue is
// empty again and a commit runs.
func waitInFlight(b *batcher) {
	for {
		b.mu.Lock()
		inFlight := b.committing && len(b.queue) == 0
		b.mu.Unlock()
		if inFlight {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// heldBatcher is a batcher of at most perEntry proposals an entry whose first
// entry, proposal 0 (first), is held in apply, with proposals 1 to n (rest)
// queued behind it.
func heldBatcher(t *testing.T, perEntry, n int) (f *fakeRaft, b *batcher, first, rest func() (map[int]any, map[int]error)) {
	t.Helper()
	f = &fakeRaft{hold: make(chan struct{})}
	b = newBatcher(f.apply, nil, nil, perEntry)
	first = proposeAll(b, 0, 1)
	waitInFlight(b)
	rest = proposeAll(b, 1, n+1)
	waitQueued(t, b, n)
	return f, b, first, rest
}

// release lets the held entry (and every later one) be applied.
func (f *fakeRaft) release() {
	f.mu.Lock()
	close(f.hold)
	f.hold = nil
	f.mu.Unlock()
}

// proposeAll proposes {"n":i} for i in [from, to) at once and returns each
// one's value or error, by i.
func proposeAll(b *batcher, from, to int) (wait func() (map[int]any, map[int]error)) {
	var mu sync.Mutex
	vals, errs := map[int]any{}, map[int]error{}
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		wg.Go(func() {
			res, err := b.propose(context.Background(), fmt.Appendf(nil, `{"n":%d}`, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[i] = err
			} else {
				vals[i] = res.Value
			}
		})
	}
	return func() (map[int]any, map[int]error) { wg.Wait(); return vals, errs }
}

func TestBatcherAloneGoesAtOnce(t *testing.T) {
	f := &fakeRaft{}
	b := newBatcher(f.apply, nil, nil, 512)
	defer b.stop()
	for i := range 3 {
		res, err := b.propose(context.Background(), fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"n":%d}`, i); res.Value != want {
			t.Fatalf("result %v, want %s", res.Value, want)
		}
	}
	if got := fmt.Sprint(f.sizes()); got != "[1 1 1]" {
		t.Fatalf("entries of %s proposals, want one entry per proposal made alone", got)
	}
}

// Proposals made while an entry is in flight go out together when it is
// applied, at most maxBatch per entry, and each gets its own result.
func TestBatcherGathersWhileOneIsInFlight(t *testing.T) {
	// The first is in apply (held); then 20 more gather behind it.
	f, b, first, rest := heldBatcher(t, 8, 20)
	defer b.stop()
	f.release()
	vals, errs := first()
	v2, e2 := rest()
	for i, v := range v2 {
		vals[i] = v
	}
	for i, e := range e2 {
		errs[i] = e
	}
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	for i := range 21 {
		if want := fmt.Sprintf(`{"n":%d}`, i); vals[i] != want {
			t.Fatalf("proposal %d got %v, want its own result %s", i, vals[i], want)
		}
	}
	if got := fmt.Sprint(f.sizes()); got != "[1 8 8 4]" {
		t.Fatalf("entries of %s proposals, want [1 8 8 4]", got)
	}
}

func TestBatcherApplyError(t *testing.T) {
	f := &fakeRaft{err: raft.ErrNotLeader}
	b := newBatcher(f.apply, nil, nil, 512)
	defer b.stop()
	_, errs := proposeAll(b, 0, 5)()
	if len(errs) != 5 {
		t.Fatalf("%d errors, want 5", len(errs))
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("error %v, want ErrNotLeader", err)
		}
	}
}

// A stop answers the proposals waiting behind the entry in flight and every
// later one with ErrNotLeader; what is queued is not proposed.
func TestBatcherStop(t *testing.T) {
	f, b, first, waiting := heldBatcher(t, 512, 5)
	b.stop()
	_, errs := waiting()
	if len(errs) != 5 {
		t.Fatalf("%d of the waiting proposals failed, want 5", len(errs))
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("error %v, want ErrNotLeader", err)
		}
	}
	if _, err := b.propose(context.Background(), []byte(`{"n":9}`)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a proposal after stop: %v, want ErrNotLeader", err)
	}
	f.release()
	first()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		busy := b.committing
		b.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the commit goroutine still runs 10 s after stop")
		}
		time.Sleep(time.Millisecond)
	}
	if got := fmt.Sprint(f.sizes()); got != "[1]" {
		t.Fatalf("entries of %s proposals, want only the one in flight at stop", got)
	}
}

// An entry of several proposals answered with one result (the FSM could not
// decode the batch: *fsm.Result with its error) or with none answers every
// proposal of the entry, not only the first: the others would otherwise wait
// until their context ends (for ever without a deadline).
func TestBatcherWholeEntryResult(t *testing.T) {
	bad := &fsm.Result{Err: fmt.Errorf("%w: undecodable batch", fsm.ErrInvalid)}
	for name, whole := range map[string]any{"one result": bad, "no result": struct{}{}} {
		t.Run(name, func(t *testing.T) {
			f := &fakeRaft{hold: make(chan struct{}), whole: whole}
			b := newBatcher(f.apply, nil, nil, 512)
			defer b.stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			type answer struct {
				res *fsm.Result
				err error
			}
			answers := make(chan answer, 4)
			prop := func(i int) {
				res, err := b.propose(ctx, fmt.Appendf(nil, `{"n":%d}`, i))
				answers <- answer{res, err}
			}
			go prop(0)
			waitInFlight(b)
			for i := 1; i < 4; i++ {
				go prop(i)
			}
			waitQueued(t, b, 3)
			f.release()
			for range 4 {
				a := <-answers
				if a.err != nil {
					t.Fatalf("a proposal got no answer from its entry: %v", a.err)
				}
				if whole == bad && !errors.Is(a.res.Err, fsm.ErrInvalid) {
					t.Fatalf("result %+v, want the entry's error", a.res)
				}
			}
			if got := fmt.Sprint(f.sizes()); got != "[1 3]" {
				t.Fatalf("entries of %s proposals, want [1 3]", got)
			}
		})
	}
}

// A proposal whose caller's context ends while it waits in the queue is
// taken out (ErrWithdrawn) and never reaches Raft; one whose context ends
// after it was handed to Raft is an InFlightError that gives Raft's answer
// (and the term read then) once Raft answers.
func TestBatcherWithdrawsATimedOutQueuedProposal(t *testing.T) {
	f := &fakeRaft{hold: make(chan struct{}), err: raft.ErrLeadershipLost}
	b := newBatcher(f.apply, func() uint64 { return 7 }, nil, 512)
	defer b.stop()
	propose := func(ctx context.Context, data string) <-chan error {
		out := make(chan error, 1)
		go func() {
			_, err := b.propose(ctx, []byte(data))
			out <- err
		}()
		return out
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	a := propose(ctxA, `{"a":1}`)
	waitInFlight(b)
	bq := propose(ctxB, `{"b":1}`)
	waitQueued(t, b, 1)
	c := propose(context.Background(), `{"c":1}`)
	waitQueued(t, b, 2)
	cancelA()
	cancelB()

	errB := <-bq
	if !errors.Is(errB, ErrWithdrawn) || !errors.Is(errB, context.Canceled) {
		t.Errorf("the queued proposal whose context ended: %v, want ErrWithdrawn and the context's error", errB)
	}
	errA := <-a
	var inFlight *InFlightError
	if !errors.As(errA, &inFlight) || !errors.Is(errA, context.Canceled) {
		t.Fatalf("the proposal in flight whose context ended: %v, want an InFlightError and the context's error", errA)
	}
	select {
	case <-inFlight.Answered():
		t.Fatal("the proposal in flight is answered before Raft answered it")
	default:
	}
	f.release()
	if err := <-c; !errors.Is(err, ErrNotLeader) {
		t.Errorf("the queued proposal still waited for: %v, want ErrNotLeader (Raft's answer)", err)
	}
	<-inFlight.Answered()
	if term, err := inFlight.Answer(); term != 7 || !errors.Is(err, ErrNotLeader) {
		t.Errorf("the in-flight proposal's answer: term %d, %v; want term 7, ErrNotLeader", term, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := fmt.Sprint(f.entries); got != `[[{"a":1}] [{"c":1}]]` {
		t.Errorf("entries %s, want the in-flight one and the one waited for; never the withdrawn one", got)
	}
}
