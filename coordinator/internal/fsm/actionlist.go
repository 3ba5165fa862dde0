package fsm

import (
	"bytes"
	"slices"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// levelActionIndex is the semantics level from which the FSM keeps the
// account index of actions (store.BucketAccountActions, read by GET
// /v1/actions): every action written from then on is indexed, and the
// apply that raises the cluster to the level indexes the actions already
// recorded (backfillActionIndex), so at the level the index holds every
// action. Below it the index is not written and the list answers 503
// cluster_upgrading.
const levelActionIndex = 2

// indexAction records a in its account's index when the cluster is at
// levelActionIndex. An action's index entry never changes after it is
// written (resource and command are fixed at creation), so a progress or a
// finish only checks that it is there (one lookup) and writes nothing.
func indexAction(c *applyCtx, a *store.Action) error {
	if c.level() < levelActionIndex || store.ActionIndexed(c.tx, a) {
		return nil
	}
	return store.PutActionIndex(c.tx, a)
}

// backfillActionIndex indexes every recorded action, in the apply that
// raises the level to levelActionIndex: the same state on every replica
// gives the same index. One pass over the actions bucket, in id order; an
// entry already there (a restored backup raised again) is rewritten with
// the same value. A record that does not decode (none should) is left out
// rather than holding the whole cluster's level back; GET /v1/actions/{id}
// cannot show it either. It returns the number indexed.
//
// The entries are written after the pass, in key order. Written in the
// pass's order (action ids, so the accounts' keys interleaved), each put
// landed in the middle of one in-memory bbolt leaf that grows until the
// commit splits it, shifting every entry after it: the apply of 100,000
// actions took 8-13 s, most of it that copying; in key order each put
// appends, and it takes 0.5 s (BenchmarkLevelTwoBackfill). The index holds
// the same keys and values either way, as does a replica that backfilled
// in the pass's order (a release before this one): keys are distinct but
// for records that share an id, which keep their pass order (a stable
// sort), so the last of them wins as before. Should an entry be too large
// for bbolt (unreachable with valid ids), the entries before it in the
// pass's order are written and its put fails, as then.
func backfillActionIndex(tx *bolt.Tx) (int, error) {
	type entry struct{ k, v []byte }
	var entries []entry
	n, err := eachRecordedAction(tx, func(a *store.Action) error {
		if k, v, ok := store.ActionIndexEntry(a); ok {
			entries = append(entries, entry{k, v})
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	fits := len(entries)
	for i, e := range entries {
		if len(e.k) > bolt.MaxKeySize || len(e.v) > bolt.MaxValueSize {
			fits = i
			break
		}
	}
	sorted := entries[:fits]
	slices.SortStableFunc(sorted, func(a, b entry) int { return bytes.Compare(a.k, b.k) })
	b := tx.Bucket(store.BucketAccountActions)
	for _, e := range entries {
		if err := b.Put(e.k, e.v); err != nil {
			return n, err
		}
	}
	return n, nil
}

// eachRecordedAction is the backfill's pass: fn is called with every record
// of the actions bucket that decodes, in id order (one that does not is
// skipped), until it returns an error. It returns the number of records
// passed to fn.
func eachRecordedAction(tx *bolt.Tx, fn func(a *store.Action) error) (int, error) {
	r := store.Read(tx)
	n := 0
	err := tx.Bucket(store.BucketActions).ForEach(func(k, _ []byte) error {
		a, err := r.Action(string(k))
		if err != nil {
			return nil
		}
		n++
		return fn(&a)
	})
	return n, err
}
