package webhook

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	bolt "go.etcd.io/bbolt"
)

// TestRecordsCarryTheRestoredStateEpoch: at semantics level 11 a `cluster
// restore` names the state it installs (store.RestoreEpoch) and the FSM
// ignores the cursor of a record read from another state. The dispatcher's
// term after the restore reads the new epoch and its records carry it: the
// events committed after the restore are delivered and the cursor follows
// them (a record carrying the replaced state's epoch would leave it behind,
// and a new leader would send them again).
func TestRecordsCarryTheRestoredStateEpoch(t *testing.T) {
	node, sealer := newLevel2Node(t, nil)
	node.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch})
	rc, acc, _ := node.subscribedReceiver(sealer, clock.Real{})
	s := start(t, node, sealer, &Guard{AllowPrivate: true, AllowHTTP: true}, nil, clock.Real{}, Options{})
	node.ticket(acc, "before")
	rc.waitFor(t, "the first delivery", 10*time.Second, func(r []received) bool { return len(r) >= 1 })

	// A restore of the state's own backup, marked as the leader marks it.
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := node.f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	if err := os.WriteFile(src, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fsm.MarkRestore(src, dst); err != nil {
		t.Fatal(err)
	}
	marked, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	release := s.d.Hold()
	node.mu.Lock()
	err = node.f.Restore(io.NopCloser(marked))
	node.mu.Unlock()
	release()
	if err != nil {
		t.Fatal(err)
	}
	var epoch uint64
	_ = node.f.View(func(tx *bolt.Tx) error { epoch = store.RestoreEpoch(tx); return nil })
	if epoch == 0 {
		t.Fatal("a marked restore left the restore epoch at 0")
	}

	node.ticket(acc, "after")
	rc.waitFor(t, "the event committed after the restore", 10*time.Second, func(r []received) bool { return len(r) >= 2 })
	var last []byte
	_ = node.f.View(func(tx *bolt.Tx) error {
		last, _ = tx.Bucket(store.BucketOutbox).Cursor().Last()
		last = append([]byte{}, last...)
		return nil
	})
	waitUntil(t, "the cursor at the event committed after the restore", 10*time.Second, func() bool {
		var cur []byte
		_ = node.f.View(func(tx *bolt.Tx) error { cur = append([]byte{}, store.Read(tx).WebhookCursor()...); return nil })
		return bytes.Compare(cur, last) >= 0
	})
}
