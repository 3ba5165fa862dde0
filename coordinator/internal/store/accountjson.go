package store

import (
	"strconv"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// Every order reads its account, debits it and writes the debit's wallet
// transaction, on every replica: EncodeAccount, readAccount and
// EncodeWalletTx do that without reflection, and give up (ok false: use
// encoding/json) outside plainjson's subset. TestAccountCodecMatchesEncodingJSON,
// FuzzAccountCodec and FuzzEncodeWalletTx hold them to encoding/json's bytes
// and values.

// accountKeys are api.Account's JSON keys in field order.
var accountKeys = []string{"id", "email", "name", "country", "email_verified", "created_at", "balance_usd_cents"}

// EncodeAccount writes acc as json.Marshal writes it, or gives up (ok
// false) when its creation time is not UTC within years 0-9999.
func EncodeAccount(acc *api.Account) ([]byte, bool) {
	b := make([]byte, 0, 160+len(acc.ID)+len(acc.Email)+len(acc.Name)+len(acc.Country))
	b = plainjson.AppendStringField(b, `{"id":`, acc.ID)
	b = plainjson.AppendStringField(b, `,"email":`, acc.Email)
	b = plainjson.AppendStringField(b, `,"name":`, acc.Name)
	b = plainjson.AppendStringField(b, `,"country":`, acc.Country)
	b = append(b, `,"email_verified":`...)
	b = strconv.AppendBool(b, acc.EmailVerified)
	b = append(b, `,"created_at":`...)
	b, ok := plainjson.AppendTime(b, acc.CreatedAt)
	if !ok {
		return nil, false
	}
	b = append(b, `,"balance_usd_cents":`...)
	b = strconv.AppendInt(b, acc.BalanceUsdCents, 10)
	return append(b, '}'), true
}

// readAccount reads an account record as json.Marshal writes it (keys in
// field order) in plainjson's subset, giving what json.Unmarshal gives;
// anything else fails it (ok false).
func readAccount(b []byte) (acc api.Account, ok bool) {
	rd := plainjson.NewReader(b)
	ok = rd.Fields(accountKeys, &acc.ID, &acc.Email, &acc.Name, &acc.Country, &acc.EmailVerified, &acc.CreatedAt, &acc.BalanceUsdCents)
	return acc, ok && rd.End()
}

// GetAccount loads account id as GetJSON would (ErrNotFound when absent).
func GetAccount(tx *bolt.Tx, id string) (api.Account, error) {
	return getRead(tx, BucketAccounts, []byte(id), readAccount)
}

// PutAccount stores acc as PutJSON would.
func PutAccount(tx *bolt.Tx, acc *api.Account) error {
	if raw, ok := EncodeAccount(acc); ok {
		return tx.Bucket(BucketAccounts).Put([]byte(acc.ID), raw)
	}
	return PutJSON(tx, BucketAccounts, []byte(acc.ID), *acc)
}

// EncodeWalletTx writes w as json.Marshal writes it, or gives up (ok
// false) when its time is not UTC within years 0-9999.
func EncodeWalletTx(w *api.WalletTransaction) ([]byte, bool) {
	b := make([]byte, 0, 192+len(w.ID)+len(w.Type)+len(w.Description)+len(w.Gateway)+len(w.InvoiceID))
	b = plainjson.AppendStringField(b, `{"id":`, w.ID)
	b = plainjson.AppendStringField(b, `,"type":`, w.Type)
	b = append(b, `,"amount_usd_cents":`...)
	b = strconv.AppendInt(b, w.AmountUsdCents, 10)
	b = append(b, `,"balance_after_usd_cents":`...)
	b = strconv.AppendInt(b, w.BalanceAfterUsdCents, 10)
	b = plainjson.AppendStringField(b, `,"description":`, w.Description)
	b = appendOmitEmpty(b, `,"gateway":`, w.Gateway)
	b = appendOmitEmpty(b, `,"invoice_id":`, w.InvoiceID)
	b = append(b, `,"created_at":`...)
	b, ok := plainjson.AppendTime(b, w.CreatedAt)
	return closeObject(b, ok)
}

// PutWalletTx stores the wallet transaction w of accountID as PutJSON would.
func PutWalletTx(tx *bolt.Tx, accountID string, w *api.WalletTransaction) error {
	key := OwnedKey(accountID, w.ID)
	if raw, ok := EncodeWalletTx(w); ok {
		return tx.Bucket(BucketWalletTx).Put(key, raw)
	}
	return PutJSON(tx, BucketWalletTx, key, *w)
}
