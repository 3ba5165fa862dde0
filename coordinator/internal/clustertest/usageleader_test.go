package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestUsageSurvivesLeaderChange: the requests a leader answered and had not
// yet written (its usage flush runs every --usage-flush-interval) are not
// lost when it hands the leadership over: as a follower it sends them to the
// new leader (ShipUsage), whose flush writes them, each once.
func TestUsageSurvivesLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3, func(_ int, cfg *server.Config) { cfg.UsageFlush = 3 * time.Second })
	acc, key := c.NewAccount("usage-leader@example.com")
	ctx := t.Context()
	ld := c.WaitLeader(leaderWait)
	const calls = 5
	for i := 0; i < calls; i++ {
		c.Retry503(func() error { _, err := c.Client(ld, key).Account(ctx); return err })
	}
	// At once, within the old leader's flush interval: what it recorded is
	// not written yet.
	to := (ld + 1) % 3
	var st api.ClusterStatus
	c.Retry503(func() (err error) {
		st, err = c.Admin(ld).ClusterTransferLeadership(ctx, c.Nodes[to].ID)
		return err
	})
	if st.LeaderID != c.Nodes[to].ID {
		t.Fatalf("leadership went to %q, want %s", st.LeaderID, c.Nodes[to].ID)
	}
	waitAllSeeLeader(t, c, c.Nodes[to].ID)
	deadline := time.Now().Add(20 * time.Second)
	var count int64
	for {
		keys, err := c.Admin(to).Keys(ctx, acc.ID)
		if err == nil && len(keys) == 1 {
			count = keys[0].UseCount
		}
		if count >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A little longer: a batch written twice would show now.
	time.Sleep(7 * time.Second)
	keys, err := c.Admin(to).Keys(context.Background(), acc.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys: %v %+v", err, keys)
	}
	if keys[0].UseCount != calls {
		t.Fatalf("use_count %d after %d calls answered by the leader that then handed over (seen %d within 20 s), want %d", keys[0].UseCount, calls, count, calls)
	}
	log, err := c.Admin(to).KeyUsage(context.Background(), keys[0].ID)
	if err != nil || len(log) != calls {
		t.Fatalf("usage log: %v, %d entries, want %d", err, len(log), calls)
	}
}
