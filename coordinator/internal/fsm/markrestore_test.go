package fsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMarkRestoreRefusesAForeignDatabase: a backup whose header is right
// but whose database lacks the meta bucket (CheckSnapshot refuses it first
// in a `cluster restore`; MarkRestore is not to rely on that) makes
// MarkRestore return an error naming the missing bucket, not panic, and
// leaves neither the marked copy nor its working database behind.
func TestMarkRestoreRefusesAForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("accounts"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := filepath.Join(dir, "backup.snap"), filepath.Join(dir, "marked")
	if err := os.WriteFile(src, append(append([]byte{}, snapshotMagic...), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MarkRestore(src, dst); err == nil || !strings.Contains(err.Error(), "meta bucket") {
		t.Fatalf("MarkRestore of a database without the meta bucket: %v, want an error naming it", err)
	}
	for _, p := range []string{dst, dst + ".db"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("MarkRestore left %s (%v)", filepath.Base(p), err)
		}
	}
}
