package webhook

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/internal/clock"
)

// TestAttemptRecordedOnceWhenApplyFailsAfterCommit: the apply of the
// dispatcher's first batch of attempts commits but answers an error (as
// Raft does when leadership is lost after the entry was replicated, or a
// timeout ends the wait before the commit), so the recorder proposes the
// same batch again, which commits too. The receiver got one request; from
// semantics level 9 the delivery log holds that attempt once. At level 8
// (a cluster with a coordinator of the release before) the log holds it
// twice, as that release does.
func TestAttemptRecordedOnceWhenApplyFailsAfterCommit(t *testing.T) {
	for _, c := range []struct {
		level uint16
		rows  int
	}{{fsm.LevelWebhookAttemptOnce - 1, 2}, {fsm.LevelWebhookAttemptOnce, 1}} {
		t.Run(fmt.Sprintf("level%d", c.level), func(t *testing.T) {
			node := newTestNode(t, nil)
			node.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: c.level})
			sealer := newTestSealer(t)
			rc, acc, whID := node.subscribedReceiver(sealer, clock.Real{})
			var proposed atomic.Int32 // batches with attempts proposed (the first answered as failed)
			apply := fsmtest.FirstAttemptsAnswerFails(node.Apply, &proposed)
			d := New(Options{FlushInterval: 10 * time.Millisecond, PollInterval: 2 * time.Millisecond, AttemptTimeout: 5 * time.Second},
				node.f, apply, sealer, devGuard.Client(5*time.Second, nil, 64), clock.Real{}, testLog(t))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = d.Run(ctx) }()
			defer func() { cancel(); <-done }()

			node.ticket(acc, "Disk full")
			rc.waitFor(t, "the delivery", 10*time.Second, func(r []received) bool { return len(r) >= 1 })
			waitUntil(t, "the batch proposed again", 10*time.Second, func() bool { return proposed.Load() >= 2 })
			cancel()
			<-done
			if n := len(rc.all()); n != 1 {
				t.Fatalf("the receiver got %d requests, want 1", n)
			}
			log := node.attempts(whID)
			if len(log) != c.rows {
				t.Fatalf("level %d: the delivery log holds %d rows for one attempt, want %d: %+v", c.level, len(log), c.rows, log)
			}
			for _, a := range log {
				if a.ID != log[0].ID || a.Attempt != 1 {
					t.Fatalf("rows %+v, want attempt 1 of one id", log)
				}
			}
			if dl, ok := node.delivery(whID, log[0].DeliveryID); !ok || dl.Attempts != 1 {
				t.Fatalf("delivery %+v, want 1 attempt", dl.WebhookDelivery)
			}
		})
	}
}
