package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
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

// injectFaults applies f to whichever coordinator leads, at 5 s into rec's
// clock and again 3 s after the first fault ended, unless ctx ends first; the
// channel closes when it is done (the coordinator running again).
func (c *cluster) injectFaults(ctx context.Context, t *testing.T, rec *recorder, f fault) <-chan struct{} {
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		next := 5 * time.Second
		for round := 0; round < 2; round++ {
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

// checkLinearizable fails the test unless hist is linearizable under model;
// an illegal history's visualization is written to a file named in the
// failure, and the operations porcupine could linearize least far are logged.
func checkLinearizable(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(model, hist, 40*time.Second)
	t.Logf("%s: porcupine checked %d operations in %s: %s", name, len(hist), time.Since(start).Round(time.Millisecond), res)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Errorf("%s: the history is NOT linearizable: %s", name, visualize(t, model, name, hist))
	default:
		t.Errorf("%s: porcupine could not decide within its timeout (%s)", name, res)
	}
	return res
}

// visualize writes porcupine's visualization of hist and returns where.
func visualize(t *testing.T, model porcupine.Model, name string, hist []porcupine.Operation) string {
	t.Helper()
	_, info := porcupine.CheckOperationsVerbose(model, hist, 40*time.Second)
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
// Idempotency-Key on the next coordinator, each attempt given perTry, until
// one answer is definite or giveUp passes. It returns the first attempt's
// call time and the definite answer's return time on rec's clock
// (pendingForever if none came: the operation may have taken effect, once,
// at any time after its call), and the attempts made.
func (c *cluster) untilDefinite(rec *recorder, first int, perTry time.Duration, giveUp time.Time, send func(ctx context.Context, p *framework.CoordinatorProcess) try) (call, ret int64, attempts int) {
	call = rec.now()
	for i := first; ; i++ {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), perTry)
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
