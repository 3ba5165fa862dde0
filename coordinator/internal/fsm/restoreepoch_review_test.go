package fsm

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// TestRestoreEpochNamesEachRestore (review54): two `cluster restore`s into
// one cluster must give two different restore epochs, or a flush read from
// the state the first installed (carrying its epoch) still moves the cursor
// after the second. The backups come from a cluster Y whose own state was
// restored once at its Raft index 1000 (its epoch is 1000, carried by every
// backup of Y since); cluster X, with a shorter log, restores a backup of Y
// at its index 62, then (another backup of Y, or the same one again after a
// "restore_interrupted") at 70. The era between the two restores flushes
// with the epoch it read; that dispatcher's next flush, taken by the group
// commit before the second restore's barrier, applies at 71.
func TestRestoreEpochNamesEachRestore(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, last, cursor uint64) *FSM {
		return eventsAt(t, filepath.Join(dir, name), slog.New(slog.DiscardHandler), LevelRestoreEpoch, last, cursor)
	}
	epochOf := func(f *FSM) (e uint64) {
		_ = f.View(func(tx *bolt.Tx) error { e = store.RestoreEpoch(tx); return nil })
		return e
	}
	// Y: events at 4..20, cursor at 5, then a restore of its own state at
	// its index 1000 (epoch 1000).
	y := mk("y.db", 20, 5)
	snapshotAt(t, markedBackup(t, backup(t, y)), 1000)(y)
	if e := epochOf(y); e != 1000 {
		t.Fatalf("Y's epoch %d, want 1000", e)
	}
	bk := backup(t, y)
	bOutbox, _ := outboxDump(t, y)

	x := mk("x.db", 60, 60)
	snapshotAt(t, markedBackup(t, bk), 62)(x)
	first := epochOf(x)
	// The era of the first restore: its dispatcher reads epoch first and
	// flushes past an event written after the restore.
	x.Apply(deposit(t, 63, 1))
	_, keys := outboxDump(t, x)
	last := keys[len(keys)-1]
	x.Apply(logOf(t, 64, CmdWebhookAttempts, WebhookAttempts{Cursor: last, StateEpoch: first}))

	snapshotAt(t, markedBackup(t, bk), 70)(x)
	second := epochOf(x)
	// The first era's last flush, applied after the second restore.
	x.Apply(logOf(t, 71, CmdWebhookAttempts, WebhookAttempts{Cursor: last, StateEpoch: first,
		PruneOutboxBefore: time.Now().Add(24 * 365 * time.Hour), PruneOutboxLimit: 1000}))
	if first == second {
		t.Errorf("restores at 62 and 70 both named the state epoch %d", first)
	}
	for _, e := range backupEventsKept(x, bOutbox) {
		t.Error(e)
	}
}
