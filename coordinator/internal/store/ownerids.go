package store

import (
	"strings"

	bolt "go.etcd.io/bbolt"
)

// OwnerKey is id's key in BucketOwnerIDs: a time-ordered id
// ("srv_01kt6e…", prefix, underscore, its time first) is keyed by what
// follows the prefix, then an underscore and the prefix ("01kt6e…_srv"),
// so that the ids one command makes in the same millisecond (ids.New makes
// them in increasing order across prefixes: an order's server, action and
// invoice) sort next to each other. Any other id (no underscore, an empty
// part, or a NUL first after the prefix) is keyed by a NUL and the id.
// The key is unique to the id: the first kind never starts with a NUL,
// and its last underscore is the one after the time (a prefix is what
// precedes an id's first underscore), so the id is read back from it.
func OwnerKey(id string) []byte { return appendOwnerKey(make([]byte, 0, len(id)+1), id) }

// appendOwnerKey appends OwnerKey(id) to dst.
func appendOwnerKey(dst []byte, id string) []byte {
	prefix, rest, ok := strings.Cut(id, "_")
	if !ok || prefix == "" || rest == "" || rest[0] == 0 {
		return append(append(dst, 0), id...)
	}
	dst = append(dst, rest...)
	dst = append(dst, '_')
	return append(dst, prefix...)
}

// PutOwner indexes id (a server's or an invoice's) as accountID's in
// BucketOwnerIDs (semantics level 10 on; the FSM writes).
func PutOwner(tx *bolt.Tx, id, accountID string) error {
	return tx.Bucket(BucketOwnerIDs).Put(OwnerKey(id), []byte(accountID))
}

// OwnerOf is the account that owns id, a server's or an invoice's: from
// BucketOwnerIDs (made from semantics level 10 on), else from legacy, the
// type's index of the ids made before (BucketServerIDs, BucketInvoiceIDs);
// nil when neither holds it. Both are read at every level: the ids made
// below level 10 stay where they were written. BucketOwnerIDs holds both
// types, so an invoice's id asked with BucketServerIDs as legacy finds its
// owner too: a caller reads the typed record next (servers, invoices),
// which the other type's id does not name.
func OwnerOf(tx *bolt.Tx, legacy []byte, id string) []byte {
	// The key is only looked up (bbolt keeps no reference to it): built in
	// a buffer on the stack, not allocated (an order's apply looks up its
	// new server's id on every coordinator).
	var buf [64]byte
	if acc := tx.Bucket(BucketOwnerIDs).Get(appendOwnerKey(buf[:0], id)); acc != nil {
		return acc
	}
	return tx.Bucket(legacy).Get([]byte(id))
}
