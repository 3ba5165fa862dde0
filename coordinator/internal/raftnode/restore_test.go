package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// A restore at run time, with no write after it: the leader restores a
// backup (Raft's user restore; cluster restore's re-registering of API
// addresses, a write, is left out), the followers install it from the
// leader (InstallSnapshot). Every member's FSM then reports the snapshot's
// Raft index as applied, and linearizable reads are confirmed at once: on
// the leader and on a follower that installed it and then took over.
// Before, the FSM recorded applied index 0 after a restore at run time
// (every member here: the applied-index check fails); the reads passed
// then too, since with raft-wal (a MonotonicLogStore) hashicorp/raft
// removes the old log after both kinds of restore and CommandsApplied
// counts a missing entry as compacted. Restarted, a member keeps the
// snapshot's index.
func TestRunTimeRestoreKeepsReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := make([]*Node, 3)
	dirs := make([]string, 3)
	addrs := make([]string, 3)
	for i := range nodes {
		dirs[i], addrs[i] = t.TempDir(), freeAddr(t)
		nodes[i] = openRestoreMember(t, i, dirs[i], addrs[i])
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.Close()
			}
		}
	})
	a := nodes[0]
	waitLeads(t, a)
	for _, n := range nodes[1:] {
		if err := a.Join(n.ID, string(n.Addr)); err != nil {
			t.Fatal(err)
		}
	}
	register := func(id string) {
		t.Helper()
		env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: id, APIAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, err := leaderOf(t, nodes).Apply(ctx, env)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
				t.Fatalf("register %s: %v", id, err)
			}
		}
	}
	register("kept")
	a = leaderOf(t, nodes)
	confirmRead(ctx, t, a)
	var backup bytes.Buffer
	if err := a.FSM.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	// Commands the restore replaces: in the leader's log after what its
	// reads have confirmed.
	for i := range 3 {
		register(fmt.Sprint("replaced", i))
	}
	// Through the leader, again if leadership moved on the way (the restore
	// is then run again, as the README says).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		a = leaderOf(t, nodes)
		err := a.Restore(bytes.NewReader(backup.Bytes()))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("restore: %v", err)
		}
	}
	snap := lastSnapshotIndex(a)
	for _, n := range nodes {
		waitFor(t, 30*time.Second, n.ID+" installs the snapshot", func() bool { return lastSnapshotIndex(n) >= snap })
		if got := n.FSM.AppliedIndex(); got != snap {
			t.Errorf("%s restored the snapshot at %d at run time; its FSM reports applied index %d", n.ID, snap, got)
		}
	}
	confirmRead(ctx, t, a)
	wantRestored(t, a)

	bi := (indexOf(nodes, a) + 1) % 3
	b := nodes[bi]
	for deadline := time.Now().Add(30 * time.Second); !b.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not take over within 30 s", b.ID)
		}
		_ = leaderOf(t, nodes).TransferLeadership(b.ID)
	}
	confirmRead(ctx, t, b)
	wantRestored(t, b)

	// Restarted before any write, a member that installed the snapshot at
	// run time holds it at its index.
	ci := (bi + 1) % 3
	if err := nodes[ci].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[ci] = nil
	c := openRestoreMember(t, ci, dirs[ci], addrs[ci])
	nodes[ci] = c
	if got := c.FSM.AppliedIndex(); got != snap {
		t.Errorf("restarted, %s reports applied index %d, want the snapshot's %d", c.ID, got, snap)
	}
	wantRestored(t, c)
}

// leaderOf waits up to 30 s for one of nodes to lead and returns it.
func leaderOf(t *testing.T, nodes []*Node) *Node {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, n := range nodes {
			if n != nil && n.IsLeader() {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader within 30 s")
		}
	}
}

func indexOf(nodes []*Node, n *Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// openRestoreMember opens member i ("r0", "r1", ...; r0 bootstraps), with
// timeouts that keep a loaded machine from changing leaders often.
func openRestoreMember(t *testing.T, i int, dir, addr string) *Node {
	t.Helper()
	n, err := Open(Config{ID: fmt.Sprint("r", i), Dir: dir, BindAddr: addr, Bootstrap: i == 0,
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLeaseTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// confirmRead wants a linearizable read on n confirmed within 15 s; each
// attempt that fails (a round lasts up to readConfirmTimeout) is retried
// while n still leads.
func confirmRead(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && n.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if err = n.LinearizableRead(ctx); err == nil {
			return
		}
	}
	st := n.Status()
	t.Fatalf("no linearizable read on %s (%s, commit index %d, FSM at %d): %v", n.ID, st.State, st.CommitIndex, n.FSM.AppliedIndex(), err)
}

// lastSnapshotIndex is the Raft index of n's latest snapshot (0: none).
func lastSnapshotIndex(n *Node) uint64 {
	i, _ := strconv.ParseUint(n.Raft.Stats()["last_snapshot_index"], 10, 64)
	return i
}

// wantRestored wants n's state to be the backup's: the coordinator
// registered before it, none of those registered after.
func wantRestored(t *testing.T, n *Node) {
	t.Helper()
	var addrs map[string]string
	if err := n.FSM.Read(func(r store.ReadTx) error { addrs = r.ClusterAPIAddrs(); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := addrs["kept"]; !ok || len(addrs) != 1 {
		t.Fatalf("%s holds API addresses %v, want only the backup's (kept)", n.ID, addrs)
	}
}

// A restart over a snapshot the FSM's database already holds skips the
// snapshot's copy (fsm.db stays the same file: a restore replaces it) and
// keeps the applied index: the snapshot's index comes with the stream Raft
// opens through fsm.IndexedSnapshots, which startRaft no longer also reads
// from the snapshot store's listing for FSM.PrepareStart.
func TestRestartOverASnapshotSkipsItsCopy(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := openRegistered(t, dir, addr, "snap", 3)
	if err := n.Raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	applied := n.FSM.AppliedIndex()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "fsm.db")
	before, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	n, err = openAt(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	after, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("fsm.db was replaced at the restart: the snapshot the database already held was restored again")
	}
	if got := n.FSM.AppliedIndex(); got < applied {
		t.Errorf("applied index %d after the restart, %d before", got, applied)
	}
	waitLeads(t, n)
}

// A semantics level raise that commits after a restore's backup was read
// (PrepareRestore) and before it is installed: the install applies after
// level 11, so the backup is marked and every replica names the restored
// state with the install's Raft index (the restore epoch). Before, the
// mark was decided on the level read when the upload was spooled (10): the
// restore was left unmarked ("epoch 0") although every member applies 11.
// The raise goes as the leader's level job sends it (HoldLevel around the
// proposal); a second restore runs while a raise holds the level, and
// installs only once it is released, marked as well. A restore with the
// cluster left at level 10 is not marked (no replica holds an epoch).
func TestLevelRaiseBeforeInstallMarksTheRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = openRestoreMember(t, i, t.TempDir(), freeAddr(t))
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	})
	waitLeads(t, nodes[0])
	for _, n := range nodes[1:] {
		if err := nodes[0].Join(n.ID, string(n.Addr)); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(typ fsm.CommandType, payload any) {
		t.Helper()
		env, err := fsm.NewEnvelope(typ, time.Now(), payload)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			l := leaderOf(t, nodes)
			release := l.HoldLevel()
			_, err := l.Apply(ctx, env)
			release()
			if err == nil {
				return
			}
			if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
				t.Fatalf("apply %v: %v", typ, err)
			}
		}
	}
	apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch - 1})
	apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: "kept", APIAddr: "127.0.0.1:1"})
	l := leaderOf(t, nodes)
	confirmRead(ctx, t, l)
	var backup bytes.Buffer
	if err := l.FSM.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: "replaced", APIAddr: "127.0.0.1:2"})

	// restore prepares on the leader, calls between, and installs; again
	// through the new leader if leadership moved on the way.
	restore := func(between func(l *Node)) (snap uint64) {
		t.Helper()
		if have := leaderOf(t, nodes).FSM.ClusterLevel(); have != fsm.LevelRestoreEpoch-1 {
			t.Fatalf("the cluster is at level %d before the restore, want %d", have, fsm.LevelRestoreEpoch-1)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			l := leaderOf(t, nodes)
			p, err := l.PrepareRestore(bytes.NewReader(backup.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			between(l)
			err = p.Install()
			p.Close()
			if err == nil {
				return lastSnapshotIndex(l)
			}
			if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
				t.Fatalf("restore: %v", err)
			}
		}
	}
	wantEpoch := func(snap uint64) {
		t.Helper()
		for _, n := range nodes {
			waitFor(t, 30*time.Second, n.ID+" installs the snapshot", func() bool { return lastSnapshotIndex(n) >= snap })
			var epoch uint64
			if err := n.FSM.Read(func(r store.ReadTx) error { epoch = r.RestoreEpoch(); return nil }); err != nil {
				t.Fatal(err)
			}
			if epoch != snap {
				t.Errorf("%s holds restore epoch %d after the restore installed at %d with the cluster at level %d; want %d", n.ID, epoch, snap, fsm.LevelRestoreEpoch, snap)
			}
			wantRestored(t, n)
		}
	}
	// No raise: the cluster stays at level 10, and the install hands Raft
	// the plain copy (PrepareRestore made both). No replica holds an
	// epoch, as before level 11: a coordinator of an older release in
	// such a cluster would keep a mark in its state where this release's
	// strips it, and the replicas' states would differ.
	snap0 := restore(func(*Node) {})
	for _, n := range nodes {
		waitFor(t, 30*time.Second, n.ID+" installs the snapshot", func() bool { return lastSnapshotIndex(n) >= snap0 })
		var epoch uint64
		if err := n.FSM.Read(func(r store.ReadTx) error { epoch = r.RestoreEpoch(); return nil }); err != nil {
			t.Fatal(err)
		}
		if epoch != 0 {
			t.Errorf("%s holds restore epoch %d after the restore installed at %d with the cluster at level %d; want 0 (the backup not marked)", n.ID, epoch, snap0, fsm.LevelRestoreEpoch-1)
		}
		wantRestored(t, n)
	}

	snap := restore(func(*Node) { apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch}) })
	if snap <= snap0 {
		t.Fatalf("restore at %d, not after the one at %d", snap, snap0)
	}
	wantEpoch(snap)

	// The restored state is the backup's, at level 10 again. A raise that
	// holds the level while the install starts: the install waits for it.
	installed := make(chan uint64, 8)
	var held atomic.Bool
	snap2 := restore(func(l *Node) {
		release := l.HoldLevel()
		held.Store(true)
		go func() {
			defer release()
			time.Sleep(200 * time.Millisecond)
			env, err := fsm.NewEnvelope(fsm.CmdClusterLevel, time.Now(), fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch})
			if err == nil {
				_, err = l.Apply(ctx, env)
			}
			if err != nil {
				t.Errorf("raise the level while holding it: %v", err)
			}
			installed <- lastSnapshotIndex(l)
		}()
	})
	if !held.Load() {
		t.Fatal("the level was not held")
	}
	if before := <-installed; before >= snap2 {
		t.Fatalf("the second restore installed (snapshot %d) while a level raise held the level (snapshot %d then)", snap2, before)
	}
	if snap2 <= snap {
		t.Fatalf("second restore at %d, not after the first at %d", snap2, snap)
	}
	wantEpoch(snap2)
}
