package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Reader runs reads of the replicated state in one read-only transaction, so
// that every read fn makes sees the same applied state; *fsm.FSM implements
// it. Handlers and leader jobs read through a Reader and the typed accessors
// of ReadTx, never through buckets.
type Reader interface {
	Read(fn func(r ReadTx) error) error
}

// ReadTx is one read-only transaction with a typed accessor per record (one
// file per domain: accounts.go, billing.go, ...). It is valid only inside the
// function it was handed to; values it returns are copies.
type ReadTx struct{ tx *bolt.Tx }

// Read wraps a bbolt transaction: the FSM's own (writers read through the same
// accessors) or a View's.
func Read(tx *bolt.Tx) ReadTx { return ReadTx{tx: tx} }

// get decodes bucket[key] into v, or returns ErrNotFound.
func (r ReadTx) get(bucket, key []byte, v any) error { return GetJSON(r.tx, bucket, key, v) }

// getNamed is get with a not-found error naming the object ("server srv_x: not found").
func (r ReadTx) getNamed(what, id string, bucket, key []byte, v any) error {
	return named(what, id, r.get(bucket, key, v))
}

// named names the object in a not-found error ("server srv_x: not found");
// other errors and nil are returned as they are.
func named(what, id string, err error) error {
	if err == ErrNotFound {
		return fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	return err
}

// getRead decodes bucket[key] with read, a record type's reader of
// plainjson's subset (readAccount, readServer...: no reflection), or with
// encoding/json as GetJSON does when read gives up (ErrNotFound when the
// key is absent).
func getRead[T any](tx *bolt.Tx, bucket, key []byte, read func([]byte) (T, bool)) (T, error) {
	return getIn(tx.Bucket(bucket), bucket, key, read)
}

// getIn is getRead of b, the bucket named name, already open: a reader of
// many keys of one bucket (Actions) looks the bucket up once.
func getIn[T any](b *bolt.Bucket, name, key []byte, read func([]byte) (T, bool)) (T, error) {
	raw := b.Get(key)
	if v, ok := read(raw); ok {
		return v, nil
	}
	var v T
	if raw == nil {
		return v, ErrNotFound
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s/%s: %w", name, key, err)
	}
	return v, nil
}

// has reports whether bucket holds key.
func (r ReadTx) has(bucket, key []byte) bool { return r.tx.Bucket(bucket).Get(key) != nil }

// value returns a copy of bucket[key], or nil.
func (r ReadTx) value(bucket, key []byte) []byte {
	v := r.tx.Bucket(bucket).Get(key)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// all decodes every value of a bucket in key order.
func all[T any](r ReadTx, bucket []byte) ([]T, error) {
	var out []T
	err := r.tx.Bucket(bucket).ForEach(appendDecoded(bucket, &out))
	return out, err
}

// appendDecoded is a visitor of bucket's entries that decodes each value as a
// T and appends it to *out; a value that does not decode stops the walk with
// an error naming its key.
func appendDecoded[T any](bucket []byte, out *[]T) func(k, v []byte) error {
	return func(k, v []byte) error {
		var item T
		if err := json.Unmarshal(v, &item); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
		}
		*out = append(*out, item)
		return nil
	}
}

// viaIndex loads bucket[index[key]]: ErrNotFound when the index has no key.
func viaIndex[T any](r ReadTx, index, bucket []byte, key string) (T, error) {
	var v T
	k := r.tx.Bucket(index).Get([]byte(key))
	if k == nil {
		return v, ErrNotFound
	}
	err := r.get(bucket, k, &v)
	return v, err
}

// ownedRecords is a bucket of one account-owned record type, keyed by
// OwnedKey(account, id), with the index bucket that maps a record's id to its
// account: the four reads every such domain has (servers, hosting accounts,
// registered domains).
type ownedRecords[T any] struct {
	what          string // names the record in not-found errors ("server srv_x: not found")
	bucket, index []byte
	// owners: ids made from semantics level 10 on are indexed in
	// BucketOwnerIDs, index holds those made before (OwnerOf).
	owners bool
}

// owned loads an account's record; another account's is not found.
func (o ownedRecords[T]) owned(r ReadTx, accountID, id string) (T, error) {
	var v T
	err := r.getNamed(o.what, id, o.bucket, OwnedKey(accountID, id), &v)
	return v, err
}

// byID loads a record by id alone, through the index.
func (o ownedRecords[T]) byID(r ReadTx, id string) (T, error) {
	var acc []byte
	if o.owners {
		acc = OwnerOf(r.tx, o.index, id)
	} else {
		acc = r.tx.Bucket(o.index).Get([]byte(id))
	}
	if acc == nil {
		var none T
		return none, fmt.Errorf("%s %s: %w", o.what, id, ErrNotFound)
	}
	return o.owned(r, string(acc), id)
}

// page pages an account's records, newest first, with the total count.
func (o ownedRecords[T]) page(r ReadTx, accountID string, offset, limit int) ([]T, int, error) {
	return ListOwned[T](r.tx, o.bucket, accountID, offset, limit)
}

// pageAt is page from at, with the next page's Below (ListOwnedAt).
func (o ownedRecords[T]) pageAt(r ReadTx, accountID string, at PageAt, limit int) ([]T, int, string, error) {
	return ListOwnedAt[T](r.tx, o.bucket, accountID, at, limit)
}

// all lists every account's records.
func (o ownedRecords[T]) all(r ReadTx) ([]T, error) { return all[T](r, o.bucket) }
