package httpapi

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/pkg/api"
)

// unansweredApply is a Raft member whose proposals Raft never answers and
// which stops leading once one is made: a leader that removed itself
// (hostplanectl cluster remove of the leader, through it) shuts its Raft
// down right after the removal commits, and hashicorp/raft may then leave a
// proposal that committed with it unanswered (raftnode.awaitFuture says the
// same of the removal's own future). The proposal's wait ends with the
// apply timeout.
type unansweredApply struct {
	raftnode.Cluster
	deposed atomic.Bool
}

func (u *unansweredApply) IsLeader() bool { return !u.deposed.Load() && u.Cluster.IsLeader() }

func (u *unansweredApply) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if env.Type != fsm.CmdTicketCreate {
		return u.Cluster.Apply(ctx, env)
	}
	u.deposed.Store(true)
	<-ctx.Done()
	return nil, fmt.Errorf("%w (the proposal is with raft and may still commit)", ctx.Err())
}

// TestWriteUnansweredAfterLeadershipEndsIs503: a write whose proposal is not
// answered within the apply timeout, on a coordinator that no longer leads
// by then, is a 503 no_leader with Retry-After: 1 (it may or may not have
// been applied: the client sends it again with its Idempotency-Key, README
// "Retry policy"), never a 500 internal_error. tests/audit
// TestOps17MembershipWhileCustomersWrite's script got that 500 from the
// leader it removed through itself (seen at load 25-30).
func TestWriteUnansweredAfterLeadershipEndsIs503(t *testing.T) {
	w := newWHAPIWith(t, Config{NodeID: "n1", ApplyTimeout: 300 * time.Millisecond})
	acc, _ := w.account()
	_, key := w.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeTicketsWrite}})
	u := &unansweredApply{Cluster: w.a.raft}
	w.a.raft = u
	rep := w.api.Call(key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "s", Message: "m"}, map[string]string{"Idempotency-Key": "k-1"})
	if !u.deposed.Load() {
		t.Fatalf("the ticket was not proposed: %s", rep)
	}
	if rep.Status != 503 || rep.Code() != "no_leader" || rep.Header.Get("Retry-After") != "1" {
		t.Fatalf("a write left unanswered by a Raft that stopped leading: %s, Retry-After %q; want 503 no_leader with Retry-After: 1", rep, rep.Header.Get("Retry-After"))
	}
}
