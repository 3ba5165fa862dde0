package fsm

import (
	"math"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// LevelIdemBodies is the semantics level (level.go) from which an
// Idempotency-Key record keeps its answer's body apart: the record under
// the key (store.BucketIdempotency, where the client's key sorts, so a leaf
// of its own for every command) holds the request's hash, the status, the
// expiry and BodyRef, about 150 bytes, and the body goes to
// store.BucketIdemBodies under the Raft index of its entry and its place in
// it, where the bodies of one group commit append to one leaf. An order's
// record was about 1.6 KB, a ticket's 0.7 KB: the leaf every command
// rewrites holds ten times as many records and is a page, not two. A
// replay answers the same bytes (ResolveIdem reads the body back); the
// expiry sweep and an IdemAnswer remove the body with the record or
// its answer replaced. Records written below the level keep their body in
// them and replay as before, at every level.
const LevelIdemBodies = 11

// idemBodyApart moves rec's body into store.BucketIdemBodies, keyed by the
// n-th command of the entry c applies, from LevelIdemBodies on; a ticket
// reply's record (no body) and every record below the level stay as they
// are, as does the body of a command past the 65,536th of one entry, and
// one whose key holds another record's body (an index reached again after
// a cluster restore: store.PutIdemBody), which every replica, holding the
// same state, sees alike.
func idemBodyApart(c *applyCtx, n int, rec *store.IdemRecord) error {
	if rec.Body == nil || rec.Ticket != nil || n > math.MaxUint16 || c.r.ClusterLevel() < LevelIdemBodies {
		return nil
	}
	ref, err := store.PutIdemBody(c.tx, c.index, uint16(n), rec.Body)
	if err != nil || ref == "" {
		return err
	}
	rec.Body, rec.BodyRef = nil, ref
	return nil
}
