package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestRunTimeRestoreThenLinearizableReads: after a `cluster restore` every
// member restores a snapshot at run time, the leader from the backup
// (Raft's user restore) and the followers by InstallSnapshot from it. With
// no write after, a linearizable read (GET /v1/tickets, the default
// consistency) answers 200 with the backup's state through the leader, and
// through a follower that installed the snapshot and then took over the
// leadership; every member's FSM reports the snapshot's Raft index as
// applied. Before, a restore at run time recorded applied index 0 (a
// follower still reports it when the check runs, before the restore's own
// write moves it on: racy); the reads passed then too, since
// hashicorp/raft removes the old log of a raft-wal store after a restore
// and CommandsApplied counts a missing entry as compacted.
//
// A follower stopped while the leader snapshots and truncates its log does
// not get an InstallSnapshot in such a test: raft-wal still reads truncated
// entries from its unsealed tail segment (64 MiB), so the leader sends them
// instead; the restore is the way to have members install one at run time.
func TestRunTimeRestoreThenLinearizableReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	// Key usage is written through Raft by the leader every UsageFlush: an
	// hour keeps the reads below from causing the write that would hide the
	// fault.
	c := testcluster.New(t, 3, func(_ int, cfg *server.Config) { cfg.UsageFlush = time.Hour })
	ctx := context.Background()
	_, key := c.NewAccount("runtimerestore@example.com")
	ticket := func(i int) {
		c.Retry503(func() error {
			_, err := c.Client(c.WaitLeader(leaderWait), key).CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprint("s", i), Message: "m"}, fmt.Sprint("runtimerestore-", i))
			return err
		})
	}
	const inBackup = 3
	for i := range inBackup {
		ticket(i)
	}
	var backup bytes.Buffer
	c.Retry503(func() error {
		backup.Reset()
		return c.Admin(c.WaitLeader(leaderWait)).Backup(ctx, &backup)
	})
	for i := inBackup; i < inBackup+4; i++ {
		ticket(i) // commands the restore replaces, still in the leader's log
	}
	// A read confirmed now leaves the members' record of how far their log
	// holds no unapplied command where it is.
	readThrough(t, c, c.WaitLeader(leaderWait), key, inBackup+4)

	ld := c.WaitLeader(leaderWait)
	c.Retry503(func() error {
		ld = c.WaitLeader(leaderWait)
		_, err := c.Admin(ld).Restore(ctx, bytes.NewReader(backup.Bytes()))
		return err
	})
	snapIdx := lastSnapshot(c, ld)
	for i := range c.Nodes {
		waitInstalled(t, c, i, snapIdx)
	}
	readThrough(t, c, ld, key, inBackup)

	// A follower that installed the snapshot takes over, with no write after.
	next := (ld + 1) % 3
	c.Retry503(func() error {
		_, err := c.Admin(ld).ClusterTransferLeadership(ctx, c.Nodes[next].ID)
		return err
	})
	waitAllSeeLeader(t, c, c.Nodes[next].ID)
	readThrough(t, c, next, key, inBackup)
}

// lastSnapshot is the Raft index of member i's latest snapshot (0: none).
func lastSnapshot(c *testcluster.Cluster, i int) uint64 {
	n, _ := strconv.ParseUint(c.Nodes[i].Server.Node.Raft.Stats()["last_snapshot_index"], 10, 64)
	return n
}

// waitInstalled waits up to 30 s until member i holds the snapshot at idx,
// then wants its FSM to report idx (or later) as applied.
func waitInstalled(t *testing.T, c *testcluster.Cluster, i int, idx uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); lastSnapshot(c, i) < idx; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not install the snapshot at %d within 30 s (its latest is at %d)", c.Nodes[i].ID, idx, lastSnapshot(c, i))
		}
	}
	if fa := c.Nodes[i].Server.Node.FSM.AppliedIndex(); fa < idx {
		t.Errorf("%s restored the snapshot at %d, and its FSM reports applied index %d", c.Nodes[i].ID, idx, fa)
	}
}

// readThrough reads the ticket list through member i (a linearizable read:
// the default consistency) and wants want tickets; a 503 is retried for up
// to 15 s (an election may fall into it on a loaded machine), anything else
// fails.
func readThrough(t *testing.T, c *testcluster.Cluster, i int, key string, want int) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var p api.Page[api.Ticket]
		p, err = c.Client(i, key).Tickets(context.Background(), 1, 100)
		if err == nil {
			if p.Total != want {
				t.Fatalf("read through %s: %d tickets, want %d", c.Nodes[i].ID, p.Total, want)
			}
			return
		}
		if api.StatusOf(err) != 503 || time.Now().After(deadline) {
			break
		}
	}
	st := c.Nodes[i].Server.Node.Status()
	t.Fatalf("read through %s (%s, commit index %d, FSM at %d): %v", c.Nodes[i].ID, st.State, st.CommitIndex, c.Nodes[i].Server.Node.FSM.AppliedIndex(), err)
}
