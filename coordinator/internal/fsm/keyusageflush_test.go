package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// usageFlushOf is coordinator by's flush (term, seq) of n uses of key_a at
// s seconds, one logged.
func usageFlushOf(by string, term, seq uint64, s int, n int64) KeyUsageFlush {
	return KeyUsageFlush{By: by, Term: term, Seq: seq, Keys: []KeyUsageBatch{{
		KeyID: "key_a", LastUsedAt: afterT0(s), LastUsedIP: "192.0.2.1", Count: n,
		Entries: []KeyUsageEntry{{At: afterT0(s), Method: "GET", Path: fmt.Sprintf("/%s/%d/%d", by, term, seq), Status: 200}},
	}}}
}

// keyALog is the number of entries of key_a's usage log.
func keyALog(t *testing.T, f *FSM) int {
	t.Helper()
	return len(readOne(t, f, func(r store.ReadTx) ([]api.KeyUsage, error) { return r.KeyUsage("key_a", 1000) }))
}

// TestKeyUsageFlushWrittenOnce: a flush applied a second time, or after a
// later flush of the same coordinator, changes nothing; another
// coordinator's flushes are its own, whatever their terms: its later term
// does not hide an earlier-term flush of the first that was not written.
func TestKeyUsageFlushWrittenOnce(t *testing.T) {
	f, apply := keyFSM(t)
	apply(CmdClusterLevel, ClusterLevel{Level: LevelUsageFlush})
	steps := []struct {
		p      KeyUsageFlush
		count  int64
		logged int
	}{
		{usageFlushOf("n1", 5, 1, 1, 2), 2, 1},
		{usageFlushOf("n1", 5, 1, 1, 2), 2, 1}, // the same flush again
		{usageFlushOf("n2", 6, 1, 2, 3), 5, 2}, // another leader, a later term
		{usageFlushOf("n1", 5, 2, 3, 1), 6, 3}, // n1's next flush, of an earlier term
		{usageFlushOf("n1", 5, 2, 3, 1), 6, 3}, // again
		{usageFlushOf("n1", 5, 1, 1, 2), 6, 3}, // an earlier one of n1 again
		{usageFlushOf("n1", 7, 1, 4, 1), 7, 4}, // n1 leads again
	}
	for i, s := range steps {
		apply(CmdKeyUsageFlush, s.p)
		if k := keyA(t, f); k.UseCount != s.count || keyALog(t, f) != s.logged {
			t.Fatalf("step %d (%s %d/%d): use_count %d, %d log entries; want %d, %d", i, s.p.By, s.p.Term, s.p.Seq, k.UseCount, keyALog(t, f), s.count, s.logged)
		}
	}
	if k := keyA(t, f); k.LastUsedAt == nil || !k.LastUsedAt.Equal(afterT0(4)) || k.LastUsedIP != "192.0.2.1" {
		t.Fatalf("last use %v from %q, want +4 s from 192.0.2.1", k.LastUsedAt, k.LastUsedIP)
	}
	if !f.KeyUsageFlushWritten(&steps[0].p) || f.KeyUsageFlushWritten(&KeyUsageFlush{By: "n1", Term: 7, Seq: 2, Keys: steps[0].p.Keys}) || f.KeyUsageFlushWritten(&KeyUsageFlush{By: "n3", Term: 1, Seq: 1, Keys: steps[0].p.Keys}) {
		t.Fatal("KeyUsageFlushWritten: want true for a written flush only")
	}
}

// TestKeyUsageFlushRefused: a flush without its coordinator or sequence is
// invalid and changes nothing; a key that does not exist is skipped.
func TestKeyUsageFlushRefused(t *testing.T) {
	f, apply := keyFSM(t)
	apply(CmdClusterLevel, ClusterLevel{Level: LevelUsageFlush})
	for i, p := range []KeyUsageFlush{usageFlushOf("", 1, 1, 1, 1), usageFlushOf("n1", 1, 0, 1, 1), usageFlushOf(string(bytes.Repeat([]byte("n"), 257)), 1, 1, 1, 1)} {
		r := f.ApplyBatch([]*raft.Log{logAt(t, uint64(100+i), CmdKeyUsageFlush, t0, p)})[0].(*Result)
		if !errors.Is(r.Err, ErrInvalid) {
			t.Fatalf("flush %d: %v, want invalid", i, r.Err)
		}
	}
	p := usageFlushOf("n1", 1, 1, 1, 1)
	p.Keys = append([]KeyUsageBatch{{KeyID: "key_gone", LastUsedAt: afterT0(1), Count: 4}}, p.Keys...)
	r := f.ApplyBatch([]*raft.Log{logAt(t, 110, CmdKeyUsageFlush, t0, p)})[0].(*Result)
	if r.Err != nil || r.Value != 1 {
		t.Fatalf("flush with a removed key: %v %v, want 1 key written", r.Value, r.Err)
	}
	if k := keyA(t, f); k.UseCount != 1 {
		t.Fatalf("use_count %d, want 1", k.UseCount)
	}
}

// TestKeyUsageFlushLevelGated: below LevelUsageFlush the flush is refused,
// changing nothing, by a replica of this release, and skipped as unknown by
// one of the release before (which has no handler for it): the two keep the
// same state. From the level the flush is written.
func TestKeyUsageFlushLevelGated(t *testing.T) {
	cur, applyCur := keyFSM(t)
	old, applyOld := keyFSM(t)
	old.LimitLevel(LevelUsageFlush - 1)
	applyCur(CmdClusterLevel, ClusterLevel{Level: LevelUsageFlush - 1})
	applyOld(CmdClusterLevel, ClusterLevel{Level: LevelUsageFlush - 1})
	entry := func(f *FSM) *Result {
		return f.ApplyBatch([]*raft.Log{logAt(t, 10, CmdKeyUsageFlush, t0, usageFlushOf("n1", 1, 1, 1, 2))})[0].(*Result)
	}
	var le *LevelError
	if r := entry(cur); !errors.As(r.Err, &le) || le.Need != LevelUsageFlush {
		t.Fatalf("below the level, this release: %v, want a LevelError", r.Err)
	}
	h := handlers[CmdKeyUsageFlush]
	delete(handlers, CmdKeyUsageFlush) // the release before
	r := entry(old)
	handlers[CmdKeyUsageFlush] = h
	if !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("the release before: %v, want an unknown command", r.Err)
	}
	if a, b := dumpKeys(t, cur), dumpKeys(t, old); a != b || keyA(t, cur).UseCount != 0 {
		t.Fatalf("below the level the replicas' keys differ or changed:\n%s\n%s", a, b)
	}
	if r := cur.ApplyBatch([]*raft.Log{logAt(t, 11, CmdClusterLevel, t0, ClusterLevel{Level: LevelUsageFlush}), logAt(t, 12, CmdKeyUsageFlush, t0, usageFlushOf("n1", 1, 1, 1, 2))})[1].(*Result); r.Err != nil {
		t.Fatal(r.Err)
	}
	if k := keyA(t, cur); k.UseCount != 2 {
		t.Fatalf("at the level: use_count %d, want 2", k.UseCount)
	}
}

// dumpKeys is the keys, key_usage and counters buckets as f holds them.
func dumpKeys(t *testing.T, f *FSM) string {
	t.Helper()
	var b bytes.Buffer
	_ = f.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{store.BucketKeys, store.BucketKeyUsage, store.BucketCounters} {
			_ = tx.Bucket(name).ForEach(func(k, v []byte) error {
				fmt.Fprintf(&b, "%s %s %s\n", name, k, v)
				return nil
			})
		}
		return nil
	})
	return b.String()
}

// TestKeyUsageFlushesBounded: a key keeps the last flush of at most
// store.MaxUsageFlushes coordinators, dropping the oldest.
func TestKeyUsageFlushesBounded(t *testing.T) {
	f, apply := keyFSM(t)
	apply(CmdClusterLevel, ClusterLevel{Level: LevelUsageFlush})
	for i := range store.MaxUsageFlushes + 3 {
		apply(CmdKeyUsageFlush, usageFlushOf(fmt.Sprintf("c%02d", i), uint64(i+1), 1, i, 1))
	}
	var k store.Key
	_ = f.View(func(tx *bolt.Tx) error { return store.GetJSON(tx, store.BucketKeys, []byte("key_a"), &k) })
	if len(k.UsageFlushes) != store.MaxUsageFlushes {
		t.Fatalf("%d coordinators' flushes kept, want %d", len(k.UsageFlushes), store.MaxUsageFlushes)
	}
	for i := range 3 {
		if _, ok := k.UsageFlushes[fmt.Sprintf("c%02d", i)]; ok {
			t.Fatalf("the oldest coordinator c%02d's flush is kept: %v", i, k.UsageFlushes)
		}
	}
	if k.UseCount != int64(store.MaxUsageFlushes+3) {
		t.Fatalf("use_count %d", k.UseCount)
	}
}
