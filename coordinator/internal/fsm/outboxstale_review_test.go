package fsm

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// markedBackup is the backup b as the leader hands it to Raft from semantics
// level LevelRestoreEpoch (raftnode PreparedRestore.Install hands Raft the MarkRestore copy).
func markedBackup(t *testing.T, b []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "backup"), filepath.Join(dir, "marked")
	if err := os.WriteFile(src, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MarkRestore(src, dst); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// staleRestore is review53's scene at semantics level lvl: this cluster (X)
// has events to index 60 and its dispatcher read to 60; the backup (B,
// another history, at level bLvl) was applied to 20 with its cursor at 5; B
// is installed at X's index 62 (marked as the leader marks it when mark);
// X's stale flush, read before the restore (epoch 0), applies at 63. It
// returns X, B's outbox and X's log.
func staleRestore(t *testing.T, lvl, bLvl uint16, mark bool) (*FSM, map[string]string, *framework.SyncBuilder) {
	t.Helper()
	dir := t.TempDir()
	logs := new(framework.SyncBuilder) // the FSM writes it from its apply
	mk := func(name string, lvl uint16, last uint64, cursor uint64) *FSM {
		return eventsAt(t, filepath.Join(dir, name), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), lvl, last, cursor)
	}
	b := mk("b.db", bLvl, 20, 5)
	bOutbox, _ := outboxDump(t, b)
	bk := backup(t, b)
	if mark {
		bk = markedBackup(t, bk)
	}
	install := snapshotAt(t, bk, 62)
	x := mk("x.db", lvl, 60, 60)
	install(x)
	// The stale flush: X's dispatcher's cursor, pruning what it passed,
	// read from X's own state (never restored: epoch 0).
	x.Apply(logOf(t, 63, CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(60, 0),
		PruneOutboxBefore: time.Now().Add(24 * 365 * time.Hour), PruneOutboxLimit: 1000}))
	return x, bOutbox, logs
}

func webhookCursor(f *FSM) []byte {
	var cursor []byte
	_ = f.View(func(tx *bolt.Tx) error { cursor = append([]byte{}, store.Read(tx).WebhookCursor()...); return nil })
	return cursor
}

// backupEventsKept reports (as errors) each of the backup's undelivered
// events (past its cursor at 5/0) that f pruned or whose key f's cursor
// passed.
func backupEventsKept(f *FSM, bOutbox map[string]string) []string {
	cursor := webhookCursor(f)
	got := map[string]string{}
	_ = f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketOutbox).ForEach(func(k, v []byte) error { got[string(k)] = string(v); return nil })
	})
	var errs []string
	passed := false
	for k := range bOutbox {
		if bytes.Compare([]byte(k), store.OutboxKey(5, 0)) <= 0 {
			continue // delivered in B
		}
		if _, ok := got[k]; !ok {
			errs = append(errs, "the backup's undelivered event "+cursorOf([]byte(k))+" was pruned by a flush from the replaced state")
		}
		if !passed && bytes.Compare(cursor, []byte(k)) >= 0 {
			passed = true
			errs = append(errs, "the cursor "+cursorOf(cursor)+" passed the backup's undelivered event "+cursorOf([]byte(k))+": it is never sent")
		}
	}
	return errs
}

// TestStaleAttemptsAfterRestoreKeepBackupEvents (review53): the running
// dispatcher's last CmdWebhookAttempts, proposed from the state a `cluster
// restore` replaces and applied after the restore (the leader's group
// commit took it from its queue before the restore's barrier), must not
// move the restored state's cursor past the backup's undelivered events,
// nor prune them. From semantics level 11 (LevelRestoreEpoch) the leader
// marks the backup, the restore names the new state (store.RestoreEpoch)
// and the flush, which carries the epoch it read, keeps its cursor and
// prune to itself, saying so in a debug log; also when the backup is of a
// lower level (restored at 11, the state is at the backup's level until
// the leader raises it again, which is when the stale flush applies).
func TestStaleAttemptsAfterRestoreKeepBackupEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		bLvl uint16
	}{{"backup at level 11", LevelRestoreEpoch}, {"backup at level 10", LevelRestoreEpoch - 1}} {
		t.Run(tc.name, func(t *testing.T) {
			x, bOutbox, logs := staleRestore(t, LevelRestoreEpoch, tc.bLvl, true)
			for _, e := range backupEventsKept(x, bOutbox) {
				t.Error(e)
			}
			if !strings.Contains(logs.String(), "webhook attempts read from a state a restore replaced") {
				t.Errorf("no debug log of the ignored cursor; log:\n%s", logs.String())
			}
			var epoch uint64
			_ = x.View(func(tx *bolt.Tx) error { epoch = store.RestoreEpoch(tx); return nil })
			if epoch != 62 {
				t.Fatalf("restore epoch %d after a restore installed at 62, want 62", epoch)
			}
			// The restored state's own dispatcher, which read epoch 62,
			// moves the cursor as before.
			x.Apply(logOf(t, 64, CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(20, 0), StateEpoch: epoch}))
			if c := webhookCursor(x); !bytes.Equal(c, store.OutboxKey(20, 0)) {
				t.Fatalf("a flush read from the restored state left the cursor at %s, want 20/0", cursorOf(c))
			}
		})
	}
}

// TestStaleAttemptsAfterRestoreAtLevel10: below LevelRestoreEpoch nothing
// marks the backup and the stale flush applies as on the releases before:
// its cursor passes the backup's undelivered events (README's limit, which
// the restore's hold and barrier narrow on the leader). The same log
// applies the same on every release.
func TestStaleAttemptsAfterRestoreAtLevel10(t *testing.T) {
	x, bOutbox, _ := staleRestore(t, LevelRestoreEpoch-1, LevelRestoreEpoch-1, false)
	if len(backupEventsKept(x, bOutbox)) == 0 {
		t.Fatal("at level 10 the stale flush left the restored cursor alone; the releases before move it (a replayed log must apply alike)")
	}
	var epoch uint64
	_ = x.View(func(tx *bolt.Tx) error { epoch = store.RestoreEpoch(tx); return nil })
	if epoch != 0 {
		t.Fatalf("an unmarked restore set the restore epoch to %d", epoch)
	}
}

// TestRestoreEpochSameOnEveryReplica: the epoch changes exactly when a
// marked backup is installed, the same on each replica, and a snapshot of
// the cluster's own (a lagging follower's InstallSnapshot of the leader's
// snapshot taken after the restore) carries it unchanged, so a flush
// applies alike on the leader and that follower; the mark itself leaves
// with the install (the state's own snapshots never carry it).
func TestRestoreEpochSameOnEveryReplica(t *testing.T) {
	dir := t.TempDir()
	b := applied(t, filepath.Join(dir, "b.db"),
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWebhookCreate, whCreate("wh_1", "acc_1", 0)),
		logOf(t, 3, CmdClusterLevel, ClusterLevel{Level: LevelRestoreEpoch}),
		deposit(t, 4, 0))
	install := snapshotAt(t, markedBackup(t, backup(t, b)), 30)
	leader, f1 := open(t, filepath.Join(dir, "l.db")), open(t, filepath.Join(dir, "f1.db"))
	defer leader.Close()
	defer f1.Close()
	install(leader)
	install(f1)
	for _, f := range []*FSM{leader, f1} {
		f.Apply(deposit(t, 31, 1))
	}
	epochOf := func(f *FSM) (epoch uint64, marked bool) {
		_ = f.View(func(tx *bolt.Tx) error {
			epoch, marked = store.RestoreEpoch(tx), tx.Bucket(store.BucketMeta).Get([]byte("restore_mark")) != nil
			return nil
		})
		return
	}
	// f2 lagged: it installs the leader's own snapshot at 31.
	f2 := open(t, filepath.Join(dir, "f2.db"))
	defer f2.Close()
	snapshotAt(t, backup(t, leader), 31)(f2)
	for i, f := range []*FSM{leader, f1, f2} {
		if e, m := epochOf(f); e != 30 || m {
			t.Fatalf("replica %d: restore epoch %d, mark %v; want 30 and no mark", i, e, m)
		}
	}
	// Another marked restore names another state.
	snapshotAt(t, markedBackup(t, backup(t, leader)), 40)(f1)
	if e, _ := epochOf(f1); e != 40 {
		t.Fatalf("a second restore at 40 left the epoch at %d", e)
	}
	for _, f := range []*FSM{leader, f2} {
		f.Apply(logOf(t, 32, CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(31, 0), StateEpoch: 30}))
	}
	dump := func(f *FSM) []byte {
		return bucketDump(f, store.BucketWebhookMeta, store.BucketOutbox, store.BucketMeta)
	}
	if !bytes.Equal(dump(leader), dump(f2)) {
		t.Fatal("the leader and the follower that installed its own snapshot differ after the same flush")
	}
	if c := webhookCursor(f2); !bytes.Equal(c, store.OutboxKey(31, 0)) {
		t.Fatalf("a flush of the current epoch left the cursor at %s, want 31/0", cursorOf(c))
	}
}

// eventsAt opens an FSM at path (logging to log) at semantics level lvl,
// with a webhook subscription, events at indexes 4..last and the delivery
// cursor recorded at cursor (applied at last+1).
func eventsAt(t *testing.T, path string, log *slog.Logger, lvl uint16, last, cursor uint64) *FSM {
	t.Helper()
	entries := []*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWebhookCreate, whCreate("wh_1", "acc_1", 0)),
		logOf(t, 3, CmdClusterLevel, ClusterLevel{Level: lvl}),
	}
	for i := uint64(4); i <= last; i++ {
		entries = append(entries, deposit(t, i, int(last)))
	}
	f, err := Open(path, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.ApplyBatch(entries)
	f.Apply(logOf(t, last+1, CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(cursor, 0)}))
	return f
}
