package clustertest

import (
	"context"
	"encoding/json"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestDeliverySentAgainKeepsItsIDWhenTheLeaderMovesBeforeItsRecord: the other
// path of TestAttemptCommittedButFailedListedOnce, made certain. The leader
// sends a ticket's delivery, then loses the leadership before the record of
// that attempt commits (its proposal is answered raft.ErrLeadershipLost and
// never reaches the log: the leadership is handed to another coordinator
// first). The new leader finds the delivery unsent and sends it again: the
// receiver gets it twice (webhooks are at least once), both requests with
// the same X-Sunucu-Delivery and event, validly signed, and the delivery
// log lists one attempt, succeeded, on every coordinator.
func TestDeliverySentAgainKeepsItsIDWhenTheLeaderMovesBeforeItsRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	const nodes = 3
	var cl atomic.Pointer[testcluster.Cluster] // set once New returns, read by the dispatchers
	var dropped atomic.Int32                   // -1-i: coordinator i dropped its first record
	wrap := func(i int, cfg *server.Config) {
		cfg.Webhooks.WrapApply = func(apply webhook.Applier) webhook.Applier {
			return func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
				var p fsm.WebhookAttempts
				if env.Type == fsm.CmdWebhookAttempts && json.Unmarshal(env.Data, &p) == nil && len(p.Attempts) > 0 &&
					dropped.CompareAndSwap(0, int32(-1-i)) {
					// A transfer may time out on a loaded machine: tried again.
					// One that finds this coordinator led no more (an
					// election on a loaded machine) is the same path.
					nd := cl.Load().Nodes[i].Server.Node
					var err error
					for range 5 {
						if err = nd.TransferLeadership(""); err == nil || !nd.IsLeader() {
							break
						}
					}
					if err != nil && nd.IsLeader() {
						t.Errorf("coordinator %d hands on the leadership: %v", i+1, err)
					}
					return nil, raft.ErrLeadershipLost // not proposed: never in the log
				}
				return apply(ctx, env)
			}
		}
	}
	c := testcluster.New(t, nodes, testcluster.WithRateLimit(1_000_000), withWebhooks(sharedKEK(t), nil), wrap)
	cl.Store(c)
	rc := newSink(t, 0)
	acc, key := c.NewAccount("resend@example.com")
	ctx := context.Background()
	wh := rc.hook(ctx, c, key)
	c.Retry503(func() error {
		_, err := c.Client(c.WaitLeader(10*time.Second), key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "Disk full", Message: "m"}, "")
		return err
	})
	waitFor(t, "the delivery sent again by the next leader", 60*time.Second, func() bool { return len(rc.snapshot()) >= 2 })
	c.WaitConverged(30 * time.Second)
	time.Sleep(200 * time.Millisecond) // a third request, were one coming, is caught below
	hits := rc.snapshot()
	if d := dropped.Load(); d >= 0 {
		t.Fatalf("no coordinator dropped its first record (%d)", d)
	}
	if bad := rc.bad.Load(); bad != 0 {
		t.Fatalf("%d requests badly signed", bad)
	}
	if len(hits) != 2 || hits[0].delivery == "" || hits[0].delivery != hits[1].delivery || hits[0].event == "" || hits[0].event != hits[1].event {
		t.Fatalf("the receiver got %+v; want the one delivery twice, with the same X-Sunucu-Delivery and event", hits)
	}
	var page api.Page[api.WebhookAttempt]
	c.Retry503(func() (err error) {
		page, err = c.Client(c.WaitLeader(10*time.Second), key).ListWebhookDeliveries(ctx, wh.ID, client.ListQuery{})
		return err
	})
	if len(page.Data) != 1 || page.Total != 1 {
		t.Fatalf("delivery log %+v (total %d), want the one attempt", page.Data, page.Total)
	}
	if a := page.Data[0]; a.ID == "" || a.Attempt != 1 || a.DeliveryStatus != api.DeliverySucceeded || a.DeliveryID != hits[0].delivery || a.EventID != hits[0].event {
		t.Fatalf("delivery log row %+v, want attempt 1 of delivery %s (event %s), succeeded", a, hits[0].delivery, hits[0].event)
	}
	ids := idsOf(page.Data)
	for i, nd := range c.Nodes {
		var log []api.WebhookAttempt
		if err := nd.Server.Node.FSM.Read(func(r store.ReadTx) (err error) { log, _, err = r.DeliveryLog(acc.ID, wh.ID, 0, 100); return }); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(idsOf(log), ids) {
			t.Fatalf("coordinator %d's delivery log %+v, want %v", i+1, log, ids)
		}
	}
}
