package fsm

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// LevelOwnerIDs is the semantics level (level.go) from which a new
// server's and a new invoice's id → account index entries are written to
// one bucket, store.BucketOwnerIDs, keyed so that an order's two sort next
// to each other (store.OwnerKey), instead of one each to server_ids and
// invoice_ids: an order's commit writes one tree fewer (two pages fewer
// when both trees have branch pages; TestOwnerIDsAtLevel10). Below it they
// are written as before, so a log written before level 10 applies to the
// same state on every release. Every read of either index reads both
// (store.OwnerOf): the entries written below level 10 stay where they are.
const LevelOwnerIDs = 10

// putOwner indexes id, of account accountID, in legacy (store.BucketServerIDs,
// store.BucketInvoiceIDs) below LevelOwnerIDs, in store.BucketOwnerIDs from it.
func putOwner(c *applyCtx, legacy []byte, id, accountID string) error {
	if c.level() >= LevelOwnerIDs {
		return store.PutOwner(c.tx, id, accountID)
	}
	return c.tx.Bucket(legacy).Put([]byte(id), []byte(accountID))
}
