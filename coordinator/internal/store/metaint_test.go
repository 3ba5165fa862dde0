package store

import (
	"bytes"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMetaInt64: EventAt and AppliedAt, through the one meta-bucket int64
// helper, read 0 while absent (or of another size), read back what was
// set (negative too: a time before 1970), keep to their own keys, and
// store the 8 big-endian bytes they always did (a snapshot of an older
// release reads the same).
func TestMetaInt64(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		if EventAt(tx) != 0 || AppliedAt(tx) != 0 {
			t.Fatalf("absent: %d %d", EventAt(tx), AppliedAt(tx))
		}
		if err := SetEventAt(tx, 1_765_000_000_123_456_789); err != nil {
			return err
		}
		if err := SetAppliedAt(tx, -5); err != nil {
			return err
		}
		return tx.Bucket(BucketMeta).Put([]byte("odd"), []byte{1, 2, 3})
	})
	if err := db.View(func(tx *bolt.Tx) error {
		if got := EventAt(tx); got != 1_765_000_000_123_456_789 {
			t.Errorf("EventAt %d", got)
		}
		if got := AppliedAt(tx); got != -5 {
			t.Errorf("AppliedAt %d", got)
		}
		if got := metaInt64(tx, []byte("odd")); got != 0 {
			t.Errorf("a 3-byte value reads %d, want 0", got)
		}
		if v := tx.Bucket(BucketMeta).Get(keyEventAt); !bytes.Equal(v, []byte{0x18, 0x7e, 0x8a, 0x26, 0x13, 0xec, 0x4d, 0x15}) {
			t.Errorf("event_at stored as %x", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
