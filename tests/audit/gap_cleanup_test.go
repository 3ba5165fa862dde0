package audit

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// failedOrder is a server order whose provisioning failed: A's wallet
// credited its price, the order sent to a follower and its provisioning
// waited for.
type failedOrder struct {
	adm   *client.Admin
	used0 api.AdminNodeDetail // audit-node-1 before the order
	order api.ServerOrder
	cl    *client.Client // A's
	prov  api.Action     // the failed provisioning
}

// failedOrder orders a server named label (one the scripted node fails to
// provision) for A and waits for the provisioning to fail.
func (r *rig) failedOrder(label string) failedOrder {
	t := r.t
	t.Helper()
	f := failedOrder{adm: r.c.AnyAlive(nil).Admin(), cl: r.apis[0].Client(r.keyA)}
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	var err error
	if f.used0, err = f.adm.AgentNodeDetail(r.ctx, "audit-node-1"); err != nil {
		t.Fatal(err)
	}
	rep := r.write(r.follower(), r.keyA, "POST", "/v1/servers", serverBody(label))
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	rep.Decode(t, &f.order)
	f.prov = framework.WaitAction(t, f.cl, f.order.Action.ID, 30*time.Second)
	if f.prov.Status != api.ActionFailed || f.prov.FinishedAt == nil {
		t.Fatalf("the provisioning: %+v", f.prov)
	}
	return f
}

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
	f := r.failedOrder("stuck-1")
	adm, used0, o, cl, prov := f.adm, f.used0, f.order, f.cl, f.prov
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

// TestTerminateDuringCleanupWait: a bought server's provisioning fails (a
// stuck1- hostname), its cleanup terminate fails once, and with
// --cleanup-retry-base 10m the next attempt waits ten minutes, the server
// in error with that attempt as its action. The server's owner terminates
// it then (DELETE /v1/servers/{id}: the way to remove a server stuck in
// error): that is not a 409 (action in progress) for ten minutes but a 202
// answering with the waiting attempt, sent at once: the server is
// terminated within seconds, its node room back, the order refunded once
// (not again by the terminate), and no further attempt is made (one failed
// attempt logged, none after).
func TestTerminateDuringCleanupWait(t *testing.T) {
	r := newRig(t, "--cleanup-retry-base", "10m")
	f := r.failedOrder("stuck1-1")
	adm, used0, o, cl, prov := f.adm, f.used0, f.order, f.cl, f.prov
	// The first cleanup (opened with the failure) fails; the server's
	// action becomes the next attempt, opened later, waiting ten minutes.
	var waiting string
	framework.WaitFor(t, "the cleanup's first attempt failed and the next waits", 30*time.Second, 50*time.Millisecond, func() bool {
		s, err := cl.Server(r.ctx, o.Server.ID)
		if err != nil || s.Status != api.ServerError || s.ActionID == "" {
			return false
		}
		a, err := cl.Action(r.ctx, s.ActionID)
		if err != nil || a.Status != api.ActionPending || !a.CreatedAt.After(*prov.FinishedAt) {
			return false
		}
		waiting = a.ID
		return true
	})
	time.Sleep(time.Second) // the waiting attempt is not sent on its own
	if a, err := cl.Action(r.ctx, waiting); err != nil || a.Status != api.ActionPending {
		t.Fatalf("the waiting attempt %+v %v", a, err)
	}

	asked := time.Now()
	rep := r.call(r.follower(), r.keyA, "DELETE", "/v1/servers/"+o.Server.ID, nil, nil)
	if rep.Status != 202 {
		t.Fatalf("terminate while the cleanup's next attempt waits: %s, want 202", rep)
	}
	var acc api.ActionAccepted
	rep.Decode(t, &acc)
	if acc.Action.ID != waiting || acc.Action.Command != api.ActionServerTerminate {
		t.Fatalf("the terminate answered with %+v, want the waiting attempt %s", acc.Action, waiting)
	}
	if a := framework.WaitAction(t, cl, waiting, 20*time.Second); a.Status != api.ActionSuccess {
		t.Fatalf("the terminate %+v", a)
	}
	s, err := cl.Server(r.ctx, o.Server.ID)
	if err != nil || s.Status != api.ServerTerminated || s.TerminatedAt == nil || s.ActionID != "" {
		t.Fatalf("server after the terminate %+v %v", s, err)
	}
	if took := time.Since(asked); took > 20*time.Second {
		t.Fatalf("terminated %s after the request", took)
	}
	if det, err := adm.AgentNodeDetail(r.ctx, "audit-node-1"); err != nil || det.Used != used0.Used {
		t.Fatalf("node room after the terminate: %+v %v, want %+v", det.Used, err, used0.Used)
	}
	if ch := r.charged(r.keyA); ch.balance != serverPrice {
		t.Fatalf("balance %d, want the order refunded once (%d)", ch.balance, serverPrice)
	}
	// Nothing more is sent: the one failed attempt is logged, none after.
	time.Sleep(time.Second)
	retries := 0
	for _, p := range r.c.Nodes {
		b, _ := os.ReadFile(p.LogPath())
		retries += strings.Count(string(b), "cleanup failed")
	}
	if retries < 1 || retries > 2 { // a result recorded again after a leader change is logged again
		t.Fatalf("%d logged failed cleanup attempts, want the one before the terminate", retries)
	}
	if ch := r.charged(r.keyA); ch.balance != serverPrice {
		t.Fatalf("balance %d later, want %d", ch.balance, serverPrice)
	}
}
