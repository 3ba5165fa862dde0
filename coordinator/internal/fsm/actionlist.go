package fsm

import (
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
	if c.r.ClusterLevel() < levelActionIndex || store.ActionIndexed(c.tx, a) {
		return nil
	}
	return store.PutActionIndex(c.tx, a)
}

// backfillActionIndex indexes every recorded action, in the apply that
// raises the level to levelActionIndex: the same state on every replica
// gives the same index. One pass over the actions bucket, in id order
// (writing another bucket while it iterates); an entry already there (a
// restored backup raised again) is rewritten with the same value. A record
// that does not decode (none should) is left out rather than holding the
// whole cluster's level back; GET /v1/actions/{id} cannot show it either.
// It returns the number indexed.
func backfillActionIndex(tx *bolt.Tx) (int, error) {
	r := store.Read(tx)
	n := 0
	err := tx.Bucket(store.BucketActions).ForEach(func(k, _ []byte) error {
		a, err := r.Action(string(k))
		if err != nil {
			return nil
		}
		n++
		return store.PutActionIndex(tx, &a)
	})
	return n, err
}
