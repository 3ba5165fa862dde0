package store

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	bolt "go.etcd.io/bbolt"
)

// TestOwnerKey: every id has a key of its own, ids of any shape included;
// a time-ordered id's key starts with its time, so the ids made in one
// millisecond sort together whatever their prefix, and in the order they
// were made.
func TestOwnerKey(t *testing.T) {
	odd := []string{"srv_x", "inv_x", "x", "_x", "x_", "\x00x", "x\x00srv", "srv_\x00x", "a_b_c", "b_c_a", "c_a_b", "a_b", "b_a", "", "_", "srv_", "x_srv", "srv_x_"}
	seen := map[string]string{}
	for _, id := range odd {
		k := string(OwnerKey(id))
		if other, ok := seen[k]; ok {
			t.Fatalf("ids %q and %q share key %q", other, id, k)
		}
		seen[k] = id
	}
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	// In the order of their keys: an hour before, a millisecond before,
	// an order's ids made at one time, a millisecond after.
	want := []string{ids.New("srv", at.Add(-time.Hour)), ids.New("srv", at.Add(-time.Millisecond)),
		ids.New("srv", at), ids.New("act", at), ids.New("inv", at), ids.New("pay", at), ids.New("wtx", at),
		ids.New("inv", at.Add(time.Millisecond))}
	keys := map[string]string{}
	var sorted []string
	for _, id := range want {
		k := string(OwnerKey(id))
		keys[k] = id
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, func(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) })
	var got []string
	for _, k := range sorted {
		got = append(got, keys[k])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ids in their keys' order:\n%q\nwant\n%q", got, want)
	}
}

// TestOwnerOfReadsBothIndexes: an id indexed in owner_ids (level 10 on) or
// in the type's old index (below) resolves; one of another type's old
// index does not.
func TestOwnerOfReadsBothIndexes(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		if err := PutOwner(tx, "srv_new", "acc_a"); err != nil {
			return err
		}
		if err := tx.Bucket(BucketServerIDs).Put([]byte("srv_old"), []byte("acc_b")); err != nil {
			return err
		}
		return tx.Bucket(BucketInvoiceIDs).Put([]byte("inv_old"), []byte("acc_c"))
	})
	_ = db.View(func(tx *bolt.Tx) error {
		for id, want := range map[string]string{"srv_new": "acc_a", "srv_old": "acc_b", "inv_old": "", "srv_none": ""} {
			if got := string(OwnerOf(tx, BucketServerIDs, id)); got != want {
				t.Errorf("OwnerOf(server_ids, %s) = %q, want %q", id, got, want)
			}
		}
		if got := string(OwnerOf(tx, BucketInvoiceIDs, "inv_old")); got != "acc_c" {
			t.Errorf("OwnerOf(invoice_ids, inv_old) = %q", got)
		}
		return nil
	})
}

// TestOwnerOfAllocatesNoKey: OwnerOf's look-up of an id in owner_ids
// allocates no more than bbolt's Get of the key itself (the key is built
// on the stack): an order's apply looks its new server's id up on every
// coordinator.
func TestOwnerOfAllocatesNoKey(t *testing.T) {
	id := ids.New("srv", time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC))
	db := testDB(t, func(tx *bolt.Tx) error { return PutOwner(tx, id, "acc_a") })
	if err := db.View(func(tx *bolt.Tx) error {
		key := OwnerKey(id)
		get := testing.AllocsPerRun(100, func() { tx.Bucket(BucketOwnerIDs).Get(key) })
		owner := testing.AllocsPerRun(100, func() {
			if string(OwnerOf(tx, BucketServerIDs, id)) != "acc_a" {
				t.Fatal("owner not found")
			}
		})
		if owner > get {
			t.Errorf("OwnerOf allocated %.0f times, bbolt's Get of its key %.0f: the key is allocated", owner, get)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
