// Package store defines the FSM's bbolt schema (every bucket in one place) and typed
// accessors over a bbolt transaction. Only the FSM writes; HTTP handlers read.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is bumped when a bucket's layout changes incompatibly.
const SchemaVersion = 1

// Buckets. Keys of account-owned objects are "<accountID>/<objectID>" so that a
// lookup with the caller's account id finds nothing of another account.
var (
	BucketMeta        = []byte("meta")        // applied_index, schema_version
	BucketAccounts    = []byte("accounts")    // accountID → api.Account
	BucketEmails      = []byte("emails")      // lower(email) → accountID
	BucketKeys        = []byte("keys")        // keyID → Key
	BucketKeyHashes   = []byte("key_hashes")  // sha256 hex → keyID
	BucketKeyUsage    = []byte("key_usage")   // keyID/<8-byte seq> → api.KeyUsage
	BucketWalletTx    = []byte("wallet_tx")   // accountID/txID → api.WalletTransaction
	BucketInvoices    = []byte("invoices")    // accountID/invoiceID → Invoice
	BucketInvoiceIDs  = []byte("invoice_ids") // invoiceID → accountID
	BucketTickets     = []byte("tickets")     // accountID/ticketID → api.Ticket (with thread)
	BucketTicketIDs   = []byte("ticket_ids")  // ticketID → accountID
	BucketTicketList  = []byte("ticket_list") // accountID/ticketID → ticket without thread (list view, served raw)
	BucketCounters    = []byte("counters")    // name → uint64
	BucketIdempotency = []byte("idempotency") // keyID/<idempotency key> → IdemRecord
	BucketOutbox      = []byte("outbox")      // <8-byte raft index><2-byte seq> → Event
	BucketCluster     = []byte("cluster")     // nodeID → ClusterNode
)

// AllBuckets lists every bucket; CreateBuckets makes them.
var AllBuckets = [][]byte{
	BucketMeta, BucketAccounts, BucketEmails, BucketKeys, BucketKeyHashes, BucketKeyUsage,
	BucketWalletTx, BucketInvoices, BucketInvoiceIDs, BucketTickets, BucketTicketIDs, BucketTicketList, BucketCounters,
	BucketIdempotency, BucketOutbox, BucketCluster,
}

var (
	keyAppliedIndex  = []byte("applied_index")
	keySchemaVersion = []byte("schema_version")
)

// ErrNotFound is returned by getters when the object is absent.
var ErrNotFound = errors.New("not found")

// CreateBuckets makes every bucket and records the schema version.
func CreateBuckets(tx *bolt.Tx) error {
	for _, b := range append(append(append(append([][]byte{}, AllBuckets...), WebhookBuckets...), NodeBuckets...), ServerBuckets...) {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return tx.Bucket(BucketMeta).Put(keySchemaVersion, u64(SchemaVersion))
}

// AppliedIndex returns the Raft index of the last command applied to this database.
func AppliedIndex(tx *bolt.Tx) uint64 {
	b := tx.Bucket(BucketMeta)
	if b == nil {
		return 0
	}
	v := b.Get(keyAppliedIndex)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// SetAppliedIndex records the applied index in the same transaction as the change.
func SetAppliedIndex(tx *bolt.Tx, idx uint64) error {
	return tx.Bucket(BucketMeta).Put(keyAppliedIndex, u64(idx))
}

// Key is a stored API key: the public info plus the hash of the secret.
type Key struct {
	api.KeyInfo
	Hash string `json:"hash"`
}

// Invoice is a stored invoice with its owner.
type Invoice struct {
	api.Invoice
	AccountID string `json:"account_id"`
}

// IdemRecord is a stored Idempotency-Key response.
type IdemRecord struct {
	ReqHash   string    `json:"req_hash"`
	Status    int       `json:"status"`
	Body      []byte    `json:"body"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Event is an outbox entry: a webhook event written with the change it describes.
type Event struct {
	Seq       []byte          `json:"-"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	AccountID string          `json:"account_id"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// ClusterNode records a coordinator's API address so followers can forward to it.
type ClusterNode struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}

// OwnedKey is the "<account>/<object>" key of an account-owned object.
func OwnedKey(accountID, id string) []byte { return []byte(accountID + "/" + id) }

// OwnedPrefix is the key prefix of every object of one account in a bucket.
func OwnedPrefix(accountID string) []byte { return []byte(accountID + "/") }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// GetJSON decodes bucket[key] into v, or returns ErrNotFound.
func GetJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutJSON encodes v into bucket[key].
func PutJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.Bucket(bucket).Put(key, raw)
}

// NextCounter increments and returns a named counter.
func NextCounter(tx *bolt.Tx, name string) (uint64, error) {
	b := tx.Bucket(BucketCounters)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	return n, b.Put([]byte(name), u64(n))
}

// ListOwned decodes the objects of one account in key (= creation) order, newest
// first, returning one page and the total count.
func ListOwned[T any](tx *bolt.Tx, bucket []byte, accountID string, offset, limit int) ([]T, int, error) {
	out := []T{}
	total, err := walkOwned(tx, bucket, accountID, offset, limit, func(k, v []byte) error {
		var item T
		if err := json.Unmarshal(v, &item); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
		}
		out = append(out, item)
		return nil
	})
	return out, total, err
}

// ListOwnedRaw is ListOwned without decoding: it returns copies of the stored
// JSON values, for buckets that store exactly what the API returns.
func ListOwnedRaw(tx *bolt.Tx, bucket []byte, accountID string, offset, limit int) ([][]byte, int) {
	out := [][]byte{}
	total, _ := walkOwned(tx, bucket, accountID, offset, limit, func(_, v []byte) error {
		out = append(out, append([]byte(nil), v...))
		return nil
	})
	return out, total
}

// walkOwned visits one page of an account's objects, newest first, and counts
// them all.
func walkOwned(tx *bolt.Tx, bucket []byte, accountID string, offset, limit int, visit func(k, v []byte) error) (int, error) {
	prefix := OwnedPrefix(accountID)
	c := tx.Bucket(bucket).Cursor()
	// Seek past the prefix to walk it backwards.
	end := append(append([]byte{}, prefix...), 0xff)
	var k, v []byte
	if k, _ = c.Seek(end); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	total, taken := 0, 0
	for ; k != nil && hasPrefix(k, prefix); k, v = c.Prev() {
		if total >= offset && taken < limit {
			if err := visit(k, v); err != nil {
				return 0, err
			}
			taken++
		}
		total++
	}
	return total, nil
}

func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}

// OutboxKey orders outbox entries by Raft index then sequence within the command.
func OutboxKey(index uint64, seq uint16) []byte {
	b := make([]byte, 10)
	binary.BigEndian.PutUint64(b, index)
	binary.BigEndian.PutUint16(b[8:], seq)
	return b
}
