package clustertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestClusterTransferLeadership hands the leadership to a named follower and to
// "the most up-to-date voter" through a follower's admin socket (forwarded to the
// leader), checks that every member then names the new leader and that writes go
// on, and that a bad target is refused with a 400 naming the field, leadership
// unchanged.
func TestClusterTransferLeadership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3)
	ctx := context.Background()
	_, key := c.NewAccount("transfer@example.com")
	ld := c.WaitLeader(leaderWait)
	target := (ld + 1) % 3
	var st api.ClusterStatus
	c.Retry503(func() (err error) {
		st, err = c.Admin((ld+2)%3).ClusterTransferLeadership(ctx, c.Nodes[target].ID)
		return err
	})
	if st.LeaderID != c.Nodes[target].ID {
		t.Fatalf("after transfer to %s the old leader reports leader %q", c.Nodes[target].ID, st.LeaderID)
	}
	waitAllSeeLeader(t, c, c.Nodes[target].ID)
	if _, err := c.Client(ld, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "after", Message: "transfer"}, ""); err != nil {
		t.Fatalf("write through the old leader after the transfer: %v", err)
	}

	// No target: the most up-to-date other voter takes over.
	c.Retry503(func() (err error) {
		st, err = c.Admin(ld).ClusterTransferLeadership(ctx, "")
		return err
	})
	if st.LeaderID == "" || st.LeaderID == c.Nodes[target].ID {
		t.Fatalf("after an untargeted transfer from %s: leader %q", c.Nodes[target].ID, st.LeaderID)
	}
	waitAllSeeLeader(t, c, st.LeaderID)

	now := c.Nodes[c.WaitLeader(leaderWait)].ID
	for _, to := range []string{"nope", now, "Bad ID!"} {
		_, err := c.Admin(0).ClusterTransferLeadership(ctx, to)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_field" {
			t.Errorf("transfer to %q: %v, want 400 invalid_field", to, err)
		}
	}
	if got := c.Nodes[c.WaitLeader(leaderWait)].ID; got != now {
		t.Errorf("a refused transfer moved the leadership from %s to %s", now, got)
	}
}

func waitAllSeeLeader(t *testing.T, c *testcluster.Cluster, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := range c.Nodes {
		for {
			st, err := c.Admin(i).ClusterStatus(context.Background())
			if err == nil && st.LeaderID == id {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not see leader %s: %+v %v", c.Nodes[i].ID, id, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
