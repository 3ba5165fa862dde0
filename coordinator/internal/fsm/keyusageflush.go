package fsm

import (
	"fmt"
	"sort"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// LevelUsageFlush is the semantics level (level.go) from which the leader
// writes key usage as CmdKeyUsageFlush, which a flush proposed twice
// changes once; below it, as CmdKeyUsage, which a replica of the release
// before applies.
const LevelUsageFlush = 3

// maxUsageFlushBy bounds KeyUsageFlush.By (a coordinator's node id).
const maxUsageFlushBy = 256

// KeyUsageFlush is a leader's key usage flush with its id: the coordinator
// that made it (its node id), the Raft term it led in then and its
// sequence among that coordinator's flushes. By and Seq are required.
type KeyUsageFlush struct {
	By   string          `json:"by"`
	Term uint64          `json:"term"`
	Seq  uint64          `json:"seq"`
	Keys []KeyUsageBatch `json:"keys"`
}

// ID is the flush's id among its coordinator's.
func (p *KeyUsageFlush) ID() store.UsageFlushID {
	return store.UsageFlushID{Term: p.Term, Seq: p.Seq}
}

// applyKeyUsageFlush writes each key's batch as CmdKeyUsage does, to the
// keys that do not hold this flush, or a later one of its coordinator,
// already, and records the flush on them. The value is the number of keys
// written.
func applyKeyUsageFlush(c *applyCtx, p KeyUsageFlush) (any, error) {
	if p.By == "" || len(p.By) > maxUsageFlushBy || p.Seq == 0 {
		return nil, fmt.Errorf("%w: a key usage flush needs its coordinator (by, 1 to %d bytes) and a sequence above 0", ErrInvalid, maxUsageFlushBy)
	}
	id := p.ID()
	written := 0
	for _, kb := range p.Keys {
		var k store.Key
		if err := store.GetJSON(c.tx, store.BucketKeys, []byte(kb.KeyID), &k); err != nil {
			continue // key removed since; its usage is moot
		}
		if last, ok := k.UsageFlushes[p.By]; ok && !last.Before(id) {
			continue // written already
		}
		if k.UsageFlushes == nil {
			k.UsageFlushes = map[string]store.UsageFlushID{}
		}
		k.UsageFlushes[p.By] = id
		pruneUsageFlushes(k.UsageFlushes)
		if err := addKeyUsage(c, &k, kb); err != nil {
			return nil, err
		}
		written++
	}
	return written, nil
}

// pruneUsageFlushes drops the entries whose flushes are the oldest (by
// term, then sequence, then coordinator) past store.MaxUsageFlushes.
func pruneUsageFlushes(m map[string]store.UsageFlushID) {
	if len(m) <= store.MaxUsageFlushes {
		return
	}
	by := make([]string, 0, len(m))
	for b := range m {
		by = append(by, b)
	}
	sort.Slice(by, func(i, j int) bool {
		a, b := m[by[i]], m[by[j]]
		if a != b {
			return a.Before(b)
		}
		return by[i] < by[j]
	})
	for _, b := range by[:len(m)-store.MaxUsageFlushes] {
		delete(m, b)
	}
}

// KeyUsageFlushWritten reports whether this replica has written flush p:
// a key of it holds p's id, or a later one of p's coordinator. (A flush is
// written whole, to every key of it that exists; a coordinator proposes no
// later flush before an earlier one is written, and a key removed since
// holds nothing.) False, once no copy of p can commit any more, means p
// never will be written.
func (f *FSM) KeyUsageFlushWritten(p *KeyUsageFlush) bool {
	id := p.ID()
	written := false
	_ = f.View(func(tx *bolt.Tx) error {
		for _, kb := range p.Keys {
			var k store.Key
			if store.GetJSON(tx, store.BucketKeys, []byte(kb.KeyID), &k) != nil {
				continue
			}
			if last, ok := k.UsageFlushes[p.By]; ok && !last.Before(id) {
				written = true
				return nil
			}
		}
		return nil
	})
	return written
}

// AppliedTerm is the Raft term of the last log entry this replica applied
// (0 before the first since it opened; after a restore at run time, the
// snapshot's, which covers that entry). Once it is above the term in which
// an entry was last proposed, that entry's fate is settled and applied
// here: an entry committed in a later term has every entry committed
// before it ahead of it in the log, and no entry of an earlier term can
// come after it.
func (f *FSM) AppliedTerm() uint64 { return f.appliedTerm.Load() }
