package dispatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// TestActionsCommittedAcrossALeaderChangeAreSentOnce: the dispatcher is
// handed the ids of the actions each commit wrote (fsm.WatchActions) and
// reads only those; a note that arrives while this coordinator is not
// leading, or that a leader job ends before sending, is not acted on, and
// the next leader job's first (full) read finds the action. Three actions:
// one committed while a leader job runs and ending it before its wake-up
// (between the apply and the hand-off), one committed between two leader
// jobs (its note dropped), and one committed while the second job runs.
// Each is sent by the second job once and its result recorded once.
func TestActionsCommittedAcrossALeaderChangeAreSentOnce(t *testing.T) {
	q := newQueuedRig(t, 2)
	d := q.d
	run := func() (context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			d.mu.Lock()
			tracking := d.tracking
			d.mu.Unlock()
			if tracking {
				break
			}
			if time.Now().After(end) {
				t.Fatal("the leader job did not start tracking within 10 s")
			}
		}
		return cancel, done
	}
	create := func() string {
		sc := fsmtest.ServerCreate("acc_1", "hv-up", q.opened)
		q.r.MustAt(t, q.opened, fsm.CmdServerCreate, sc)
		return sc.Action.ID
	}

	stop, done := run()
	between := create() // applied: its note is this job's, which ends before its wake-up
	stop()
	<-done
	d.mu.Lock()
	if d.tracking || d.changed != nil {
		t.Fatalf("an ended leader job still tracks (%v) or holds notes %v", d.tracking, d.changed)
	}
	d.mu.Unlock()
	unled := create() // no leader job: its note is dropped

	first := len(q.sends()) // the first job may have sent `between` before it ended (a resend is then expected)
	close(q.release)        // the agent answers from now on
	stop, done = run()
	defer func() { stop(); <-done }()
	during := create()
	d.Kick()
	want := []string{between, unled, during}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		finished := 0
		_ = q.r.FSM.Read(func(r store.ReadTx) error {
			for _, id := range want {
				if a, err := r.Action(id); err == nil && a.Status == api.ActionSuccess {
					finished++
				}
			}
			return nil
		})
		if finished == len(want) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %v finished within 20 s; sends %v", finished, want, q.sends())
		}
	}
	waitIdle(t, d)
	time.Sleep(300 * time.Millisecond) // a further wake-up (the tick) sends nothing again
	sends := q.sends()[first:]
	for _, id := range want {
		n := 0
		for _, s := range sends {
			if strings.HasSuffix(s, "/"+id) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("action %s sent %d times by the second leader job, want once (sends %v)", id, n, sends)
		}
	}
	if got := counterValue(t, d.finished.WithLabelValues(api.ActionServerProvision, api.ActionSuccess)); got != float64(len(want)) {
		t.Errorf("%v results recorded, want %d (each once)", got, len(want))
	}
	if s := q.sends(); len(s) > 0 {
		for _, x := range s {
			if strings.HasPrefix(x, "hv-away/") {
				t.Errorf("sent %s to a node that is away", x)
			}
		}
	}
}

// counterValue is c's count.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || len(families[0].GetMetric()) != 1 {
		t.Fatalf("gather a counter: %v, %v", families, err)
	}
	return families[0].GetMetric()[0].GetCounter().GetValue()
}
