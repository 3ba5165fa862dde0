package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// What the linearizability tests (register, wallet, ticket set) share: the
// history recorder, the faults applied to the leader while clients run, the
// retry policy and the porcupine check.

// pendingForever is the return time of an operation whose outcome is unknown
// (it timed out or failed without a definite answer): it may take effect at
// any point after its call, as porcupine models crashed operations.
const pendingForever = math.MaxInt64

// recorder collects a history from concurrent clients on one monotonic clock.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// fault is what happens to the leader during a run.
type fault int

const (
	faultKill  fault = iota // SIGKILL, restarted 4 s later
	faultPause              // SIGSTOP for 6 s, then SIGCONT
)

func (f fault) String() string { return [...]string{"kill", "pause"}[f] }

// faults is what happens to the cluster while clients run (runClients): a
// fault applied to the leader, or a network partition (partition_test.go).
// inject starts it on rec's clock; the channel closes when it is over.
type faults interface {
	inject(ctx context.Context, t *testing.T, c *cluster, rec *recorder) <-chan struct{}
}

func (f fault) inject(ctx context.Context, t *testing.T, c *cluster, rec *recorder) <-chan struct{} {
	return c.injectFaults(ctx, t, rec, f, f)
}

// faultRounds are faults applied to the leader one after the other, one a
// round (injectFaults): faultRounds{faultPause, faultKill} pauses the
// leader, then kills the next one.
type faultRounds []fault

func (fs faultRounds) inject(ctx context.Context, t *testing.T, c *cluster, rec *recorder) <-chan struct{} {
	return c.injectFaults(ctx, t, rec, fs...)
}

// injectFaults applies rounds[0] to whichever coordinator leads at 5 s
// into rec's clock and each next one to whichever leads 3 s after the one
// before ended, unless ctx ends first; the channel closes when it is done
// (the coordinator running again).
func (c *cluster) injectFaults(ctx context.Context, t *testing.T, rec *recorder, rounds ...fault) <-chan struct{} {
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		next := 5 * time.Second
		for _, f := range rounds {
			select {
			case <-time.After(next - time.Duration(rec.now())):
			case <-ctx.Done():
				return
			}
			ld := c.leaderOrNone(5 * time.Second)
			if ld < 0 {
				t.Errorf("no leader to %s at %.1fs", f, time.Duration(rec.now()).Seconds())
				return
			}
			p := c.procs[ld]
			switch f {
			case faultKill:
				t.Logf("SIGKILL leader %s at %.1fs", p.ID, time.Duration(rec.now()).Seconds())
				p.Kill()
				time.Sleep(4 * time.Second)
				t.Logf("restart %s at %.1fs", p.ID, time.Duration(rec.now()).Seconds())
				if err := p.Start(); err != nil {
					t.Error(err)
					return
				}
			case faultPause:
				t.Logf("SIGSTOP leader %s at %.1fs", p.ID, time.Duration(rec.now()).Seconds())
				p.Pause()
				time.Sleep(6 * time.Second)
				t.Logf("SIGCONT %s at %.1fs", p.ID, time.Duration(rec.now()).Seconds())
				p.Resume()
			}
			next = time.Duration(rec.now()) + 3*time.Second
		}
	}()
	return faultDone
}

// reader is a read on p recorded as client's operation, with meta.
type reader func(ctx context.Context, p *framework.CoordinatorProcess, client int, meta string) error

// runClients runs clients concurrent clients until ctx ends, client i with a
// random source of its own: op after op (do) on the coordinator clientProc
// picks, with think time (0-40 ms) between them. Meanwhile f happens (a
// fault: injectFaults). Once every client has finished its last operation
// and the fault is over, every coordinator i, running again, reads once more
// (final, unless nil; tried for up to 20 s) as client clients+i: the last
// word.
func (c *cluster) runClients(ctx context.Context, t *testing.T, rec *recorder, f faults, clients int, do func(i int, rng *rand.Rand, p *framework.CoordinatorProcess), final reader) {
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				do(i, rng, c.clientProc(i, rng))
				// Think time: porcupine's search grows as 2^(operations in
				// flight) wherever it has to backtrack, so clients pause a
				// little between operations (0-40 ms; 2-3 in flight on average).
				thinkTime(ctx, rng, 40*time.Millisecond)
			}
		}(i)
	}
	faultDone := f.inject(ctx, t, c, rec)
	wg.Wait()
	<-faultDone
	if final == nil {
		return
	}
	for i, p := range c.procs {
		c.waitReady(p, 20*time.Second)
		framework.PollFor(t, p.ID+" reading a last time", 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, final(ctx, p, clients+i, p.ID+" (final)")
		}, func(struct{}) bool { return true })
	}
}

// readCount counts a run's reads: answered and failed.
type readCount struct{ ok, failed atomic.Int64 }

// read is client's read on p during a run, which may wait 3 s: a client
// stuck on the paused coordinator gives up and reads again. A failed read
// constrains nothing; the client pauses per the retry policy.
func (n *readCount) read(ctx context.Context, read reader, p *framework.CoordinatorProcess, client int) {
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := read(rctx, p, client, p.ID)
	rcancel()
	if err == nil {
		n.ok.Add(1)
		return
	}
	n.failed.Add(1)
	st, _ := statusOf(err)
	retryPause(ctx, st)
}

// linRun is what a run's clients share: the history, the last write's
// number (from 1), the reads counted, and when a write still without a
// definite answer is given up (20 s after the run's dur).
type linRun struct {
	*recorder
	next    atomic.Int64
	reads   readCount
	giveUp  time.Time
	countMu sync.Mutex
}

func newLinRun() *linRun { return &linRun{recorder: newRecorder()} }

// count counts (do) under the run's lock.
func (r *linRun) count(do func()) { r.countMu.Lock(); do(); r.countMu.Unlock() }

// drive is runClients for dur (do gets the run's context), the last word
// read; it answers the clients' reads (r.reads.read) answered and failed.
func (r *linRun) drive(t *testing.T, c *cluster, f faults, clients int, dur time.Duration, do func(ctx context.Context, i int, rng *rand.Rand, p *framework.CoordinatorProcess), read reader) (answered, failed int) {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	r.giveUp = time.Now().Add(dur + 20*time.Second)
	c.runClients(ctx, t, r.recorder, f, clients, func(i int, rng *rand.Rand, p *framework.CoordinatorProcess) { do(ctx, i, rng, p) }, read)
	return int(r.reads.ok.Load()), int(r.reads.failed.Load())
}

// clientProc is the coordinator client i sends its next operation to: half
// the clients stay on one coordinator, half pick one per operation; together
// they go through all three.
func (c *cluster) clientProc(i int, rng *rand.Rand) *framework.CoordinatorProcess {
	if i%2 == 1 {
		return c.procs[rng.IntN(len(c.procs))]
	}
	return c.procs[i%len(c.procs)]
}

// retryPause follows the documented retry policy: wait Retry-After (1 s) after
// a 503, a short moment after a network error.
func retryPause(ctx context.Context, status int) {
	d := 100 * time.Millisecond
	if status == 503 {
		d = time.Second
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// thinkTime pauses a client between operations (0-max): porcupine's search
// grows as 2^(operations in flight) wherever it has to backtrack.
func thinkTime(ctx context.Context, rng *rand.Rand, max time.Duration) {
	select {
	case <-time.After(time.Duration(rng.IntN(int(max/time.Millisecond))) * time.Millisecond):
	case <-ctx.Done():
	}
}

// checkTimeout bounds one porcupine check, in wall-clock time (porcupine
// has no other bound). The checks here take 0.1-3 s of CPU, but on a loaded
// machine their wall time is the CPU they get: soak61 (2 cores, load ~30,
// two CPU burners beside) saw a kill run's check of 5839 operations take
// 13.6 s where runs of 8664-9436 took 2.7-3.2 s, and a partition phase's
// 29.0 s where the same phase took 3.7 s. At 40 s, a CI a little busier
// would fail a linearizable history as undecided.
const checkTimeout = 120 * time.Second

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// checkLinearizable fails the test unless hist is linearizable under model;
// an illegal history's visualization is written to a file named in the
// failure, and the operations porcupine could linearize least far are logged.
func checkLinearizable(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	start, cpu := time.Now(), cpuTime()
	res := porcupine.CheckOperationsTimeout(model, hist, checkTimeout)
	t.Logf("%s: porcupine checked %d operations in %s (%s of this process's CPU): %s", name, len(hist),
		time.Since(start).Round(time.Millisecond), (cpuTime() - cpu).Round(time.Millisecond), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Errorf("%s: the history is NOT linearizable: %s", name, visualize(t, model, name, hist))
	default:
		t.Errorf("%s: porcupine could not decide within its timeout (%s)", name, res)
	}
	return res
}

// checkBites checks hist under model (checkLinearizable) and, when porcupine
// finds it linearizable, that the check bites: corrupt's copy of hist, with
// one defect (defect names it), must be judged Illegal; a history corrupt
// finds no read in fails the test.
func checkBites(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation, defect string, corrupt func([]porcupine.Operation) ([]porcupine.Operation, bool)) {
	t.Helper()
	if checkLinearizable(t, model, name, hist) != porcupine.Ok {
		return
	}
	bad, ok := corrupt(hist)
	if !ok {
		t.Fatalf("%s: no read to corrupt", name)
	}
	if res := porcupine.CheckOperationsTimeout(model, bad, checkTimeout); res != porcupine.Illegal {
		t.Errorf("%s: a history with %s was judged %s, want Illegal", name, defect, res)
	}
}

// visualize writes porcupine's visualization of hist and returns where.
func visualize(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation) string {
	t.Helper()
	_, info := porcupine.CheckOperationsVerbose(model, hist, checkTimeout)
	explain(t, model, name, hist, info)
	dir := os.Getenv("HOSTPLANE_TEST_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("hostplane-linearizability-%s-%d.html", name, time.Now().Unix()))
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Sprintf("(visualization failed: %v)", err)
	}
	return "visualization in " + path
}

// try is the answer to one attempt of an operation: done when it is definite
// (applied, or refused without effect), else status is what to pause by
// before the next attempt (0: no answer).
type try struct {
	done   bool
	status int
}

// untilDefinite runs one logical operation as a careful client does: send
// on coordinator first, and after an unknown outcome (no answer, a 5xx, a
// 409 for the same key still in flight) the same request with the same
// Idempotency-Key on the next coordinator, until one answer is definite or
// giveUp passes. Each attempt waits patience(rng): the client is at times
// impatient, so that some attempts it gives up on still take effect and the
// retry must find them. It returns the first attempt's call time and the
// definite answer's return time on rec's clock (pendingForever if none came:
// the operation may have taken effect, once, at any time after its call),
// and the attempts made.
func (c *cluster) untilDefinite(rec *recorder, rng *rand.Rand, first int, giveUp time.Time, send func(ctx context.Context, p *framework.CoordinatorProcess) try) (call, ret int64, attempts int) {
	call = rec.now()
	for i := first; ; i++ {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), patience(rng))
		r := send(ctx, c.procs[i%len(c.procs)])
		cancel()
		if r.done {
			return call, rec.now(), attempts
		}
		if time.Now().After(giveUp) {
			return call, pendingForever, attempts
		}
		retryPause(context.Background(), r.status)
	}
}

// addWrite adds client's write that untilDefinite ran (first sent to p,
// from call to ret, in attempts tries) to the history when it was
// acknowledged (acked) or its outcome stayed unknown (ret pendingForever);
// a write refused for good changed nothing and is left out.
func (r *recorder) addWrite(client int, in, out any, acked bool, call, ret int64, p *framework.CoordinatorProcess, attempts int) {
	if ret == pendingForever || acked {
		r.add(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret,
			Metadata: fmt.Sprintf("%s first, %d attempts", p.ID, attempts)})
	}
}

// retryCounts are a run's writes whose outcome stayed unknown and those
// sent more than once.
type retryCounts struct{ unknown, retried int }

// count counts a write that untilDefinite ran (ret and attempts as it
// answered).
func (c *retryCounts) count(ret int64, attempts int) {
	if ret == pendingForever {
		c.unknown++
	}
	if attempts > 1 {
		c.retried++
	}
}

// patience is how long a client waits for one attempt's answer: 3 s (a
// client stuck on the paused coordinator gives up and tries the next), but
// one attempt in 5 only 2-40 ms, about what a write takes here, so that
// some attempts the client abandons are committed all the same.
func patience(rng *rand.Rand) time.Duration {
	if rng.IntN(5) == 0 {
		return time.Duration(2+rng.IntN(39)) * time.Millisecond
	}
	return 3 * time.Second
}

// statusOf is the HTTP status and error code of a pkg/client call's error:
// 0 and "" when no answer came (a network error, a timeout).
func statusOf(err error) (int, string) {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Code
	}
	return 0, ""
}

// unknownOutcome says whether an answer leaves a write's outcome unknown:
// none came, a 5xx, or a 409 because the same key's first request is still
// being processed (the API's documented answer; retry).
func unknownOutcome(status int, code string) bool {
	return status == 0 || status >= 500 || (status == 409 && code == "idempotency_key_in_flight")
}

// explain logs where porcupine got stuck on an illegal history: the state
// after the longest prefix it could linearize, that prefix's last
// operations, and the operations it could not place next (the unplaced
// operation that returned first and every unplaced one called before that).
// Operation ids are indices into hist (the models here do not partition).
func explain(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation, info porcupine.LinearizationInfo) {
	t.Helper()
	var longest []int
	for _, part := range info.PartialLinearizations() {
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	describe := func(op porcupine.Operation) string {
		ret := "∞"
		if op.Return != pendingForever {
			ret = fmt.Sprintf("%.3fs", time.Duration(op.Return).Seconds())
		}
		return fmt.Sprintf("[%.3fs, %s] client %d: %s (%v)", time.Duration(op.Call).Seconds(), ret, op.ClientId, model.DescribeOperation(op.Input, op.Output), op.Metadata)
	}
	state := model.Init()
	placed := map[int]bool{}
	for _, id := range longest {
		_, state = model.Step(state, hist[id].Input, hist[id].Output)
		placed[id] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: porcupine linearized %d of %d operations at most; then the state is %s.\nThe last ones placed:\n", name, len(longest), len(hist), model.DescribeState(state))
	for _, id := range longest[max(0, len(longest)-6):] {
		fmt.Fprintf(&b, "  %s\n", describe(hist[id]))
	}
	first := int64(pendingForever)
	for id, op := range hist {
		if !placed[id] && op.Return < first {
			first = op.Return
		}
	}
	b.WriteString("None of these fits next:\n")
	shown := 0
	for id, op := range hist {
		if !placed[id] && op.Call <= first && shown < 20 {
			fmt.Fprintf(&b, "  %s\n", describe(op))
			shown++
		}
	}
	t.Log(b.String())
}
