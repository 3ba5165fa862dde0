package audit

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestFailedCleanupIsRetried: a bought server's provisioning fails (the
// scripted node fails it for a stuck- hostname) and the node cannot remove
// what is left twice in a row (its first two server.terminate fail) before
// it answers that it holds no such VM. With --cleanup-retry-base 1s the
// cleanup is tried again after 1 s, then 2 s, without anyone terminating
// the server: it ends terminated (3 s or more after the failure: the
// waits were kept), its node room back, refunded once. While
// it waits the operator sees the server in error with the pending retry as
// its action, and the leader's log names each failed attempt and its retry.
func TestFailedCleanupIsRetried(t *testing.T) {
	r := newRig(t, "--cleanup-retry-base", "1s")
	adm := r.c.AnyAlive(nil).Admin()
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	used0, err := adm.AgentNodeDetail(r.ctx, "audit-node-1")
	if err != nil {
		t.Fatal(err)
	}
	var o api.ServerOrder
	rep := r.call(r.follower(), r.keyA, "POST", "/v1/servers", serverBody("stuck-1"), nil)
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	rep.Decode(t, &o)
	cl := r.apis[0].Client(r.keyA)
	prov := framework.WaitAction(t, cl, o.Action.ID, 30*time.Second)
	if prov.Status != api.ActionFailed || prov.FinishedAt == nil {
		t.Fatalf("the provisioning: %+v", prov)
	}
	// The operator sees the server in error with a cleanup pending (an
	// attempt, or a retry waiting) at least once before it ends.
	sawPending := false
	var s api.Server
	framework.WaitFor(t, "the server cleaned up after its failed cleanups", 40*time.Second, 50*time.Millisecond, func() bool {
		det, err := adm.AgentNodeDetail(r.ctx, "audit-node-1")
		if err != nil {
			return false
		}
		for _, v := range det.Servers {
			if v.ID == o.Server.ID && v.Status == api.ServerError && v.ActionID != "" {
				sawPending = true
			}
		}
		s, err = cl.Server(r.ctx, o.Server.ID)
		return err == nil && s.Status == api.ServerTerminated
	})
	if !sawPending {
		t.Errorf("the operator's node view never showed the server in error with its cleanup pending")
	}
	if s.TerminatedAt == nil || s.ActionID != "" {
		t.Fatalf("cleaned-up server %+v", s)
	}
	// The retries waited 1 s and 2 s (backoff), not sent at once.
	if took := s.TerminatedAt.Sub(*prov.FinishedAt); took < 3*time.Second {
		t.Fatalf("terminated %s after the failed provisioning, want at least the 1 s + 2 s of the two retries' waits", took)
	}
	if det, err := adm.AgentNodeDetail(r.ctx, "audit-node-1"); err != nil || det.Used != used0.Used {
		t.Fatalf("node room after the cleanup: %+v %v, want %+v", det.Used, err, used0.Used)
	}
	if ch := r.charged(r.keyA); ch.balance != serverPrice {
		t.Fatalf("balance %d, want the order refunded once (%d)", ch.balance, serverPrice)
	}
	// Each failed attempt is in the leader's log with its retry.
	retries := 0
	for _, p := range r.c.Nodes {
		b, _ := os.ReadFile(p.LogPath())
		retries += strings.Count(string(b), "cleanup failed; retrying")
	}
	if retries < 2 { // a result recorded again after a leader change is logged again
		t.Fatalf("%d logged retries of the failed cleanup, want the two", retries)
	}
}
