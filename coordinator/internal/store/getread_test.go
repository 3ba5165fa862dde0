package store

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestReadersFallBackToEncodingJSON: each accessor with a reader of
// plainjson's subset gives a record outside that subset whole (decoded by
// encoding/json), and an absent record as it always did: a not-found error
// naming the object (account, server, action), ErrNotFound itself
// (GetAccount, Product) or retail pricing (AccountPricing).
func TestReadersFallBackToEncodingJSON(t *testing.T) {
	srv := Server{Server: api.Server{ID: "srv_1", Status: api.ServerRunning}, AccountID: "acc_a",
		PTRs: map[string]string{"192.0.2.7": "mail.example.com."}} // PTRs: not readServer's
	act := Action{Action: api.Action{ID: "act_1", Status: api.ActionSuccess}, Meta: map[string]string{"os": "debian-13"}} // Meta: not readAction's
	prod := api.AdminProduct{Slug: "vps-s", ProductRequest: api.ProductRequest{Names: map[string]string{"de": "VPS S"}}}  // Names: not readProduct's
	pricing := api.AccountPricing{DiscountPercent: 10, Prices: map[string]int64{"vps-s": 500}}                            // Prices: not readAccountPricing's
	acc := api.Account{ID: "acc_a", Email: "a@example.com", Name: "A", Country: "DE", BalanceUsdCents: 700}
	// Keys out of field order: json.Unmarshal reads them, readAccount does not.
	accRaw := []byte(`{"balance_usd_cents":700,"id":"acc_a","email":"a@example.com","name":"A","country":"DE","email_verified":false,"created_at":"0001-01-01T00:00:00Z"}`)
	if _, ok := readAccount(accRaw); ok {
		t.Fatal("readAccount read keys out of order; the test needs a record it gives up on")
	}
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, p := range []struct {
			bucket, key []byte
			v           any
		}{
			{BucketServers, OwnedKey(srv.AccountID, srv.ID), srv},
			{BucketActions, []byte(act.ID), act},
			{BucketProducts, []byte(prod.Slug), prod},
			{BucketAccountPricing, []byte("acc_a"), pricing},
		} {
			if err := put(tx, p.bucket, p.key, p.v); err != nil {
				return err
			}
		}
		return tx.Bucket(BucketAccounts).Put([]byte(acc.ID), accRaw)
	})
	read(t, db, func(r ReadTx) {
		check := func(what string, got, want any, err error) {
			t.Helper()
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %+v, %v; want %+v", what, got, err, want)
			}
		}
		s, err := r.OwnedServer("acc_a", "srv_1")
		check("OwnedServer", s, srv, err)
		a, err := r.Action("act_1")
		check("Action", a, act, err)
		p, err := r.Product("vps-s")
		check("Product", p, prod, err)
		pr, err := r.AccountPricing("acc_a")
		check("AccountPricing", pr, pricing, err)
		ac, err := r.Account("acc_a")
		check("Account", ac, acc, err)
		ac, err = GetAccount(r.tx, "acc_a")
		check("GetAccount", ac, acc, err)

		for what, err := range map[string]error{
			"account acc_x: not found": second(r.Account("acc_x")),
			"server srv_x: not found":  second(r.OwnedServer("acc_a", "srv_x")),
			"action act_x: not found":  second(r.Action("act_x")),
		} {
			if !errors.Is(err, ErrNotFound) || err.Error() != what {
				t.Errorf("absent: %v; want %q", err, what)
			}
		}
		if _, err := GetAccount(r.tx, "acc_x"); err != ErrNotFound {
			t.Errorf("GetAccount(acc_x): %v; want ErrNotFound itself", err)
		}
		if _, err := r.Product("none"); err != ErrNotFound {
			t.Errorf("Product(none): %v; want ErrNotFound itself", err)
		}
		if pr, err := r.AccountPricing("acc_x"); err != nil || !reflect.DeepEqual(pr, api.AccountPricing{}) {
			t.Errorf("AccountPricing(acc_x) = %+v, %v; want retail (the zero value)", pr, err)
		}
	})
}

func second[T any](_ T, err error) error { return err }
