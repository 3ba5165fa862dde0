package httpapi

import (
	"context"
	"sync"
	"time"
)

// A follower waits up to 30 s for the leader's answer to a request it
// forwarded (forwardTimeout, the proxy's ResponseHeaderTimeout). A leader
// that hangs or is cut off keeps its connections open, so without more every
// request in flight to it waited those 30 s (pkg/client's own timeout), though
// the others elect a new leader within a second or two. So a request in flight
// to a coordinator that is no longer the leader this follower knows gets
// leaderMoveGrace more for its answer (a leader that stepped down answers at
// once), then ends as the proxy's 503 leader_unreachable with Retry-After.
// The same when this follower has known no leader for leaderMoveGrace: it is
// the one cut off (it heard no heartbeat for an election timeout and stood
// for election), and its requests in flight, whose packets are lost, would
// otherwise wait those 30 s or until the network healed (tests/robustness
// TestPartitionLinearizable, follower-isolated).
const (
	leaderMoveGrace = 2 * time.Second
	leaderMovePoll  = 250 * time.Millisecond
)

// leaderRuns is the follower's record of the leader address it forwards to.
type leaderRuns struct {
	mu  sync.Mutex
	cur *leaderRun
	// leader is who leads now (nil: the API's LeaderAPIAddr); tests set it.
	leader func() string
}

// leaderRun is the time one address leads, as this follower sees it: ctx
// ends leaderMoveGrace after another address leads.
type leaderRun struct {
	addr    string
	ctx     context.Context
	cancel  context.CancelFunc
	done    <-chan struct{} // ctx.Done()
	refs    int             // requests in flight to addr
	polling bool            // a goroutine watches the leader while refs > 0
}

// untilLeaderMoves is ctx for a request forwarded to the leader at addr: it
// also ends leaderMoveGrace after another coordinator is known to lead. done
// releases it.
func (f *forwarder) untilLeaderMoves(ctx context.Context, addr string) (context.Context, func()) {
	ctx, _, done := f.leaderCut(ctx, addr)
	return ctx, done
}

// answerEndsCut holds, in the context of a request forwarded with
// untilAnswered, what stops its leader-move cut.
type answerEndsCut struct{}

// untilAnswered is untilLeaderMoves until the leader's answer starts (its
// response headers: the proxy's ModifyResponse calls endCut): an operator's
// command waits no longer for a hung leader than a customer's request, but a
// backup the leader has started to stream, a consistent copy as of the
// request, is not cut when leadership moves on while it streams.
func (f *forwarder) untilAnswered(ctx context.Context, addr string) (context.Context, func()) {
	ctx, stop, done := f.leaderCut(ctx, addr)
	return context.WithValue(ctx, answerEndsCut{}, stop), done
}

// endCut stops the leader-move cut of a request forwarded with untilAnswered.
func endCut(ctx context.Context) {
	if stop, ok := ctx.Value(answerEndsCut{}).(func() bool); ok {
		stop()
	}
}

// leaderCut is untilLeaderMoves with stop, which ends the cut (the request
// then keeps only ctx's end).
func (f *forwarder) leaderCut(ctx context.Context, addr string) (_ context.Context, stop func() bool, done func()) {
	run := f.joinRun(addr)
	ctx, cancel := context.WithCancel(ctx)
	stop = context.AfterFunc(run.ctx, cancel)
	return ctx, stop, func() {
		stop()
		cancel()
		f.leaveRun(run)
	}
}

// joinRun counts a request in flight to the leader at addr in its run and
// returns the run: its ctx ends leaderMoveGrace after another coordinator is
// known to lead. leaveRun releases it. A request on the forwarding channel
// waits on the run's Done itself (muxClient.send) rather than on a context
// of its own derived from it: that took two contexts, a copy of the request
// and a registration with the run shared by every request in flight, per
// forwarded write.
func (f *forwarder) joinRun(addr string) *leaderRun {
	w := &f.runs
	w.mu.Lock()
	defer w.mu.Unlock()
	run := w.cur
	if run == nil || run.addr != addr {
		// The run replaced is not ended here: addr may be older than its
		// (read just before the leader changed, by a request that got here
		// after one that read the new leader), and ending it would cut the
		// leader's requests. Its watcher, running while it has requests in
		// flight, ends it if its address no longer leads.
		run = &leaderRun{addr: addr}
		run.ctx, run.cancel = context.WithCancel(context.Background())
		run.done = run.ctx.Done()
		w.cur = run
	}
	run.refs++
	if !run.polling {
		run.polling = true
		go f.watchLeader(run)
	}
	return run
}

// leaveRun releases a request's count in run (joinRun).
func (f *forwarder) leaveRun(run *leaderRun) {
	f.runs.mu.Lock()
	run.refs--
	f.runs.mu.Unlock()
}

// watchLeader asks who leads while requests are in flight to run's address,
// and ends run leaderMoveGrace after another address leads, or once no
// leader has been known for leaderMoveGrace (a leader known again in
// between, run's own, starts that count anew).
func (f *forwarder) watchLeader(run *leaderRun) {
	w := &f.runs
	t := time.NewTicker(leaderMovePoll)
	defer t.Stop()
	var none time.Time // since when no leader is known (zero: one is)
	for {
		select {
		case <-run.ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		if run.refs == 0 {
			run.polling = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		addr := f.leaderNow()
		switch {
		case addr == run.addr:
			none = time.Time{}
			continue
		case addr == "" && none.IsZero():
			none = time.Now()
			continue
		case addr == "" && time.Since(none) < leaderMoveGrace:
			continue
		}
		w.mu.Lock()
		if w.cur == run {
			w.cur = nil
		}
		w.mu.Unlock()
		if addr == "" {
			run.cancel() // its grace has passed without a leader
		} else {
			time.AfterFunc(leaderMoveGrace, run.cancel)
		}
		return
	}
}

// leaderNow is the address of the coordinator that leads now, "" unknown.
func (f *forwarder) leaderNow() string {
	if f.runs.leader != nil {
		return f.runs.leader()
	}
	return f.a.LeaderAPIAddr()
}
