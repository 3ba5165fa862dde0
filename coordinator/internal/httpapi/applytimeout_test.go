package httpapi

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/pkg/api"
)

// stalledApply is a leader whose followers do not answer: a ticket's
// proposal is never committed, and its wait ends with the apply timeout
// while this coordinator still leads. inRaft says whether the proposal had
// reached Raft (it may still commit) or still waited in the node's queue
// (withdrawn: never appended), as raftnode.Apply reports the two.
type stalledApply struct {
	raftnode.Cluster
	inRaft   bool
	proposed atomic.Bool
}

func (s *stalledApply) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if env.Type != fsm.CmdTicketCreate {
		return s.Cluster.Apply(ctx, env)
	}
	s.proposed.Store(true)
	<-ctx.Done()
	if s.inRaft {
		return nil, fmt.Errorf("%w (the proposal is with raft and may still commit)", ctx.Err())
	}
	return nil, fmt.Errorf("%w (%w)", ctx.Err(), raftnode.ErrWithdrawn)
}

// TestWriteUnansweredWhileLeadingIs503: a write whose Raft apply does not
// finish within the apply timeout on a coordinator that still leads is a
// 503 leader_unreachable with Retry-After: 1, the answer README's retry
// policy gives for a write that may or may not have taken effect (send it
// again with the same Idempotency-Key; pkg/client does so itself), not a
// 500 internal_error that tells the client nothing. The message says
// whether it may still take effect.
func TestWriteUnansweredWhileLeadingIs503(t *testing.T) {
	for _, tc := range []struct {
		inRaft bool
		says   string
	}{
		{true, "may or may not take effect"},
		{false, "was not applied"},
	} {
		t.Run(fmt.Sprintf("inRaft=%v", tc.inRaft), func(t *testing.T) {
			w := newWHAPIWith(t, Config{NodeID: "n1", ApplyTimeout: 300 * time.Millisecond})
			acc, _ := w.account()
			_, key := w.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeTicketsWrite}})
			s := &stalledApply{Cluster: w.a.raft, inRaft: tc.inRaft}
			w.a.raft = s
			rep := w.api.Call(key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "s", Message: "m"}, map[string]string{"Idempotency-Key": "k-1"})
			if !s.proposed.Load() {
				t.Fatalf("the ticket was not proposed: %s", rep)
			}
			if !s.IsLeader() {
				t.Fatal("the coordinator stopped leading: this is not the case under test")
			}
			if rep.Status != 503 || rep.Code() != "leader_unreachable" || rep.Header.Get("Retry-After") != "1" {
				t.Fatalf("a write unanswered while this coordinator leads: %s, Retry-After %q; want 503 leader_unreachable with Retry-After: 1", rep, rep.Header.Get("Retry-After"))
			}
			if !strings.Contains(rep.String(), tc.says) {
				t.Fatalf("the answer does not say the write %s: %s", tc.says, rep)
			}
		})
	}
}
