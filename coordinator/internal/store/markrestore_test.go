package store

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMarkRestoreWithoutMetaBucket: MarkRestore on a database that has no
// meta bucket (not a hostplane state) is an error, not a panic, and writes
// nothing; on one that has it, the mark is set (TakeRestoreMark takes it).
func TestMarkRestoreWithoutMetaBucket(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "other.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone-elses"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(MarkRestore); err == nil {
		t.Fatal("MarkRestore on a database without the meta bucket succeeded")
	}
	noMetaBucketAfter(t, db, "MarkRestore")

	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(BucketMeta)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(MarkRestore); err != nil {
		t.Fatalf("MarkRestore with the meta bucket: %v", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		epoch, marked, err := TakeRestoreMark(tx, 42)
		if err != nil || !marked || epoch != 42 {
			t.Errorf("TakeRestoreMark after MarkRestore: epoch %d, marked %v, %v; want 42, true", epoch, marked, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTakeRestoreMarkWithoutMetaBucket: TakeRestoreMark on a database that
// has no meta bucket (not a hostplane state) is an error naming the missing
// bucket, not a panic, and writes nothing (as MarkRestore).
func TestTakeRestoreMarkWithoutMetaBucket(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "bare.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		_, _, err := TakeRestoreMark(tx, 7)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "meta bucket") {
		t.Fatalf("TakeRestoreMark on a bare database: %v, want an error naming the meta bucket", err)
	}
	noMetaBucketAfter(t, db, "TakeRestoreMark")
}

// noMetaBucketAfter fails the test when db has a meta bucket after the
// failed call named what: a refusal writes nothing.
func noMetaBucketAfter(t *testing.T, db *bolt.DB, what string) {
	t.Helper()
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(BucketMeta) != nil {
			t.Errorf("the failed %s created the meta bucket", what)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
