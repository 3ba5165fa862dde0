package clustertest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestAttemptCommittedButFailedListedOnce: on a 3-coordinator cluster at
// semantics level 9, the leader's first record of a webhook attempt
// commits through Raft but its apply answers raft.ErrLeadershipLost (the
// answer of an entry replicated before leadership was lost), so the
// dispatcher proposes the same record again and it commits again. The
// receiver got one request, and the delivery log the customer lists
// (GET /v1/webhooks/{id}/deliveries) and every replica's hold the attempt
// once.
func TestAttemptCommittedButFailedListedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	var proposed atomic.Int32 // proposals of a batch with attempts (the first answered as failed)
	wrap := func(apply webhook.Applier) webhook.Applier { return fsmtest.FirstAttemptsAnswerFails(apply, &proposed) }
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000), withWebhooks(sharedKEK(t), func(w *server.WebhookConfig) { w.WrapApply = wrap }))
	for _, nd := range c.Nodes {
		waitFor(t, "semantics level 9 on every coordinator", 30*time.Second, func() bool {
			return nd.Server.Node.FSM.ClusterLevel() >= fsm.LevelWebhookAttemptOnce
		})
	}
	rc := newSink(t, 0)
	acc, key := c.NewAccount("once@example.com")
	ctx := context.Background()
	var wh api.Webhook
	c.Retry503(func() (err error) {
		wh, err = c.Client(c.WaitLeader(10*time.Second), key).CreateWebhook(ctx, api.WebhookCreateRequest{URL: rc.srv.URL + "/h/0", Events: []string{"ticket.created"}}, "")
		return err
	})
	rc.setSecret("0", wh.Secret)
	c.Retry503(func() error {
		_, err := c.Client(c.WaitLeader(10*time.Second), key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "Disk full", Message: "m"}, "")
		return err
	})
	waitFor(t, "the delivery and its record proposed again", 30*time.Second, func() bool {
		return len(rc.snapshot()) >= 1 && proposed.Load() >= 2
	})
	c.WaitConverged(30 * time.Second)
	if n, bad := len(rc.snapshot()), rc.bad.Load(); n != 1 || bad != 0 {
		t.Fatalf("the receiver got %d requests (%d badly signed), want 1", n, bad)
	}
	var page api.Page[api.WebhookAttempt]
	c.Retry503(func() (err error) {
		page, err = c.Client(c.WaitLeader(10*time.Second), key).ListWebhookDeliveries(ctx, wh.ID, client.ListQuery{})
		return err
	})
	if len(page.Data) != 1 || page.Total != 1 || page.Data[0].ID == "" || page.Data[0].Attempt != 1 || page.Data[0].DeliveryStatus != api.DeliverySucceeded {
		t.Fatalf("delivery log %+v (total %d), want the one attempt once, succeeded", page.Data, page.Total)
	}
	for i, nd := range c.Nodes {
		var log []api.WebhookAttempt
		if err := nd.Server.Node.FSM.Read(func(r store.ReadTx) (err error) { log, _, err = r.DeliveryLog(acc.ID, wh.ID, 0, 100); return }); err != nil {
			t.Fatal(err)
		}
		if len(log) != 1 || log[0].ID != page.Data[0].ID {
			t.Fatalf("coordinator %d's delivery log %+v, want %s once", i+1, log, page.Data[0].ID)
		}
	}
}
