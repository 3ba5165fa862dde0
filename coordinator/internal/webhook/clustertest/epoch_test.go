package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
)

// TestEveryReplicaHoldsTheRestoreEpoch: a `cluster restore` over HTTP on
// three coordinators at level 11, with one follower stopped during it.
// Restarted, that follower catches up through InstallSnapshot (the
// restore leaves a hole in the leader's log before its index). Then every
// coordinator's own `GET /admin/cluster/status` shows the same
// state_epoch, not 0, and every replica holds the backup's state (its
// account, not the one the restore replaced). A webhook dispatcher's record
// read from the replaced state then moves no cursor on any replica, the
// caught-up one included, and one read from the restored state moves it on
// every replica.
func TestEveryReplicaHoldsTheRestoreEpoch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 1-node and a 3-node cluster")
	}
	ctx := context.Background()
	a := testcluster.New(t, 1, testcluster.WithRateLimit(1_000_000))
	a.NewAccount("backup@example.com")
	var backup bytes.Buffer
	if err := a.Admin(0).Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	a.Kill(0)

	b := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000))
	b.NewAccount("replaced@example.com")
	waitFor(t, "every coordinator at level 11", 30*time.Second, func() bool {
		for _, nd := range b.Nodes {
			if nd.Server.Node.FSM.ClusterLevel() < fsm.LevelRestoreEpoch {
				return false
			}
		}
		return true
	})
	ld := b.WaitLeader(10 * time.Second)
	stopped := (ld + 1) % 3
	b.Kill(stopped)
	restoreThroughLeader(t, b, backup.Bytes())
	b.Restart(stopped)
	b.WaitConverged(30 * time.Second)

	var epochs []uint64
	waitFor(t, "every coordinator shows the same state_epoch", 30*time.Second, func() bool {
		epochs = epochs[:0]
		for i := range b.Nodes {
			st, err := b.Admin(i).ClusterStatus(ctx)
			if err != nil {
				return false
			}
			epochs = append(epochs, st.StateEpoch)
		}
		return epochs[0] != 0 && epochs[1] == epochs[0] && epochs[2] == epochs[0]
	})
	for i, nd := range b.Nodes {
		var kept, replaced bool
		_ = nd.Server.Node.FSM.Read(func(r store.ReadTx) error {
			kept, replaced = r.AccountIDByEmail("backup@example.com") != "", r.AccountIDByEmail("replaced@example.com") != ""
			return nil
		})
		if !kept || replaced {
			t.Errorf("coordinator %d (stopped during the restore: %v) holds the backup's account %v, the replaced state's %v", i+1, i == stopped, kept, replaced)
		}
	}
	if snaps := b.Nodes[stopped].Server.Node.Raft.Stats()["last_snapshot_index"]; snaps == "0" {
		t.Errorf("coordinator %d caught up without a snapshot", stopped+1)
	}

	// A dispatcher record read from the replaced state (epoch 0) moves no
	// cursor on any replica, the caught-up one included; the same record
	// read from the restored state (its epoch) moves it on every replica.
	cursors := func() []string {
		var out []string
		for _, nd := range b.Nodes {
			var c []byte
			_ = nd.Server.Node.FSM.Read(func(r store.ReadTx) error { c = r.WebhookCursor(); return nil })
			out = append(out, fmt.Sprintf("%x", c))
		}
		return out
	}
	record := func(epoch uint64) {
		t.Helper()
		env, err := fsm.NewEnvelope(fsm.CmdWebhookAttempts, time.Now(), fsm.WebhookAttempts{
			Cursor: []byte{0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0}, Keep: 100, StateEpoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		b.Retry503(func() error { _, err := b.Nodes[b.WaitLeader(10*time.Second)].Server.API.Apply(ctx, env); return err })
		b.WaitConverged(20 * time.Second)
	}
	before := cursors()
	record(0)
	if after := cursors(); !slices.Equal(after, before) {
		t.Errorf("a record read from the replaced state moved the cursors %v to %v", before, after)
	}
	record(epochs[0])
	want := fmt.Sprintf("%x", []byte{0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0})
	if after := cursors(); slices.ContainsFunc(after, func(c string) bool { return c != want }) {
		t.Errorf("a record read from the restored state left the cursors at %v, want %s on every replica", after, want)
	}
	t.Logf("state_epoch %v; coordinator %d was stopped during the restore", epochs, stopped+1)
}
