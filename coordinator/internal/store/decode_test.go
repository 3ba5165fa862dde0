package store

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestListsDecodeInKeyOrderAndNameABadValue: a whole-bucket list (all) and an
// account's page (ListOwned, newest first) decode every value; a value that
// is not its type's JSON fails the list with an error naming bucket and key.
func TestListsDecodeInKeyOrderAndNameABadValue(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, z := range []string{"a.example", "b.example"} {
			if err := put(tx, BucketReverseZones, []byte(z), ReverseZone{ReverseZone: api.ReverseZone{Zone: z}}); err != nil {
				return err
			}
		}
		for _, id := range []string{"inv_1", "inv_2", "inv_3"} {
			if err := put(tx, BucketInvoices, OwnedKey("acc_a", id), api.Invoice{ID: id}); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(r ReadTx) {
		zs, err := r.ReverseZones()
		if err != nil || len(zs) != 2 || zs[0].Zone != "a.example" || zs[1].Zone != "b.example" {
			t.Fatalf("ReverseZones: %+v %v", zs, err)
		}
		invs, total, err := r.Invoices("acc_a", 1, 5)
		if err != nil || total != 3 || len(invs) != 2 || invs[0].ID != "inv_2" || invs[1].ID != "inv_1" {
			t.Fatalf("Invoices: %+v, total %d, %v", invs, total, err)
		}
	})
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(BucketReverseZones).Put([]byte("c.example"), []byte(`{"zone":1}`)); err != nil {
			return err
		}
		return tx.Bucket(BucketInvoices).Put(OwnedKey("acc_a", "inv_4"), []byte("not json"))
	}); err != nil {
		t.Fatal(err)
	}
	read(t, db, func(r ReadTx) {
		if _, err := r.ReverseZones(); err == nil || !strings.HasPrefix(err.Error(), "decode "+string(BucketReverseZones)+"/c.example: ") {
			t.Errorf("ReverseZones with a bad value: %v", err)
		}
		if _, _, err := r.Invoices("acc_a", 0, 5); err == nil || !strings.HasPrefix(err.Error(), "decode "+string(BucketInvoices)+"/"+string(OwnedKey("acc_a", "inv_4"))+": ") {
			t.Errorf("Invoices with a bad value: %v", err)
		}
	})
}
