package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// TestTicketReplyReplayThroughFollower: on a cluster of the current level a
// customer reply sent with an Idempotency-Key through a follower is stored
// on every replica without its answer (fsm.LevelTicketReplyIdem), and the
// key sent again through each coordinator, after more replies, a staff
// reply, an operator's status change and a close, answers the first answer
// byte for byte.
func TestTicketReplyReplayThroughFollower(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := context.Background()
	leader := c.WaitLeader(leaderWait)
	follower := (leader + 1) % len(c.Nodes)
	_, key := c.NewAccount("idem5@example.com", api.AllScopes...)
	// send sends as a client does (pkg/client's policy): a 503 an election
	// answers (on a loaded machine) is sent again
	// after its Retry-After when that cannot apply it twice: a write with
	// an Idempotency-Key, or the close, which closes once.
	send := func(i int, method, path string, body any, hdr map[string]string) framework.Reply {
		t.Helper()
		p := client.Resend{Resendable: func(method string, body any, hdr http.Header) bool {
			return strings.HasSuffix(path, "/close") || client.Resendable(method, body, hdr)
		}, Waiting: func(e *api.Error, pause time.Duration) {
			t.Logf("%s %s on coordinator %d: %v: sent again in %s", method, path, i, e, pause)
		}}
		r, err := newAPIClient(t, c.URL(i)).TryResending(ctx, p, key, method, path, body, hdr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	call := func(i int, method, path string, body any, hdr map[string]string, want int) []byte {
		t.Helper()
		r := send(i, method, path, body, hdr)
		if r.Status != want {
			t.Fatalf("%s on coordinator %d: want %d", r, i, want)
		}
		return r.Body
	}
	var tk api.Ticket
	if err := json.Unmarshal(call(leader, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "s", Message: "first"}, map[string]string{"Idempotency-Key": "open-1"}, 201), &tk); err != nil {
		t.Fatal(err)
	}
	reply := "/v1/tickets/" + tk.ID + "/reply"
	idem := map[string]string{"Idempotency-Key": "reply-1"}
	body := api.TicketReplyRequest{Body: "<b>a reply</b> & more \u2028"}
	first := call(follower, "POST", reply, body, idem, 201)
	for n := range 3 {
		call(leader, "POST", reply, api.TicketReplyRequest{Body: fmt.Sprint("later ", n)}, map[string]string{"Idempotency-Key": fmt.Sprint("later-", n)}, 201)
	}
	// The operator's, sent again after a 503 (a second staff reply, should
	// the first have been applied, changes nothing checked here).
	c.Retry503(func() error {
		_, err := c.Admin(c.WaitLeader(leaderWait)).StaffReply(ctx, tk.ID, api.StaffReplyRequest{Body: "staff", StaffName: "Ann"})
		return err
	})
	c.Retry503(func() error {
		_, err := c.Admin(c.WaitLeader(leaderWait)).SetTicketStatus(ctx, tk.ID, api.TicketOnHold)
		return err
	})
	call(follower, "POST", "/v1/tickets/"+tk.ID+"/close", struct{}{}, nil, 200)
	c.WaitConverged(10 * time.Second)
	for i := range c.Nodes {
		f := c.Nodes[i].Server.Node.FSM
		if l := f.ClusterLevel(); l < fsm.LevelTicketReplyIdem {
			t.Fatalf("coordinator %d at level %d, want %d or more", i, l, fsm.LevelTicketReplyIdem)
		}
		var recs []store.IdemRecord
		_ = f.View(func(tx *bolt.Tx) error {
			return tx.Bucket(store.BucketIdempotency).ForEach(func(k, v []byte) error {
				var rec store.IdemRecord
				if strings.HasSuffix(string(k), "/reply-1") && json.Unmarshal(v, &rec) == nil {
					recs = append(recs, rec)
				}
				return nil
			})
		})
		if len(recs) != 1 || recs[0].Ticket == nil || recs[0].Body != nil {
			t.Fatalf("coordinator %d holds the reply's records %+v, want one without a body", i, recs)
		}
	}
	for i := range c.Nodes {
		r := send(i, "POST", reply, body, idem)
		if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" || string(r.Body) != string(first) {
			t.Fatalf("the key again through coordinator %d (leader %d):\n%s (replayed %q)\nwant 201 %s", i, leader, r, r.Header.Get("Idempotent-Replayed"), first)
		}
	}
}
