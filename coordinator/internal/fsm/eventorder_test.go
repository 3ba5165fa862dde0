package fsm

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// outboxEvent is one outbox entry as a customer's receiver sees the event
// (its id and created_at) with its outbox key (the order the dispatcher
// sends it in: commit order).
type outboxEvent struct {
	key []byte
	id  string
	at  time.Time
}

// outboxOf is f's outbox in key order.
func outboxOf(t *testing.T, f *FSM) []outboxEvent {
	t.Helper()
	var out []outboxEvent
	if err := f.Read(func(r store.ReadTx) error {
		r.ScanOutbox(nil, 1000, func(ev store.Event, err error) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, outboxEvent{key: ev.Seq, id: ev.ID, at: ev.CreatedAt})
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// creditAt is a wallet credit (one wallet.deposit.received event) of
// acc_1 in entry idx, stamped at (the time its request started).
func creditAt(t *testing.T, idx uint64, at time.Time) *raft.Log {
	return logAt(t, idx, CmdWalletCredit, at, WalletCredit{TxID: fmt.Sprintf("wtx_%d", idx), AccountID: "acc_1", AmountUsdCents: 1})
}

// creditBatchAt is one log entry (a group commit) of two credits, the
// first stamped at a, the second at b.
func creditBatchAt(t *testing.T, idx uint64, a, b time.Time) *raft.Log {
	var encoded [][]byte
	for i, at := range []time.Time{a, b} {
		env, err := NewEnvelope(CmdWalletCredit, at, WalletCredit{TxID: fmt.Sprintf("wtx_%d_%d", idx, i), AccountID: "acc_1", AmountUsdCents: 1})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.Encode()
		encoded = append(encoded, raw)
	}
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: EncodeBatch(a, encoded)}
}

// racedLog is a log whose commands' times go backwards, as those of
// requests that raced do (each is stamped when its request starts, and
// they commit in another order), at semantics level lvl: entries 4 on
// emit one event each, entry 7 two (a group commit).
func racedLog(t *testing.T, lvl uint16) []*raft.Log {
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	return []*raft.Log{
		logAt(t, 1, CmdAccountCreate, s(0), AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logAt(t, 2, CmdClusterLevel, s(0), ClusterLevel{Level: lvl}),
		creditAt(t, 3, s(10)),
		creditAt(t, 4, s(5)), // started before entry 3's request, committed after it
		creditAt(t, 5, s(7)),
		creditAt(t, 6, s(10)),
		creditBatchAt(t, 7, s(20), s(3)),
		creditAt(t, 8, s(21)),
	}
}

// TestEventIDsInCommitOrder: at level 12, event ids (and created_at) of
// commands whose times go backwards sort in the order the events were
// committed (their outbox order, the dispatcher's), on every replica alike,
// and a replica restored from a snapshot goes on clamping; at level 11 the
// ids are what they were (the command's time and Raft index), out of commit
// order.
func TestEventIDsInCommitOrder(t *testing.T) {
	dir := t.TempDir()
	a := applied(t, filepath.Join(dir, "a.db"), racedLog(t, LevelEventOrder)...)
	b := applied(t, filepath.Join(dir, "b.db"), racedLog(t, LevelEventOrder)...)
	evs := outboxOf(t, a)
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7", len(evs))
	}
	var ids12 []string
	for i, ev := range evs {
		ids12 = append(ids12, ev.id)
		if i > 0 && ev.id <= evs[i-1].id {
			t.Errorf("event %d (outbox %x) has id %s, not after event %d's %s: ids out of commit order", i, ev.key, ev.id, i-1, evs[i-1].id)
		}
		if i > 0 && ev.at.Before(evs[i-1].at) {
			t.Errorf("event %d's created_at %s is before event %d's %s", i, ev.at, i-1, evs[i-1].at)
		}
	}
	if !slices.IsSorted(ids12) {
		t.Fatalf("ids at level 12 not in commit order: %v", ids12)
	}
	// Each event keeps its command's own time when that is the latest.
	if want := t0.Add(21 * time.Second); !evs[6].at.Equal(want) {
		t.Errorf("the last event's created_at is %s, want its command's %s", evs[6].at, want)
	}
	if want := t0.Add(10 * time.Second); !evs[1].at.Equal(want) {
		t.Errorf("entry 4's event (stamped 5 s) has created_at %s, want the last event's %s", evs[1].at, want)
	}
	dump := func(f *FSM) []byte { return bucketDump(f, store.BucketOutbox, store.BucketMeta) }
	if !bytes.Equal(dump(a), dump(b)) {
		t.Fatal("two replicas of one log differ in their outbox or meta")
	}

	// A replica that installs a's snapshot (at index 8, as Raft's
	// InstallSnapshot) clamps as a does.
	c := open(t, filepath.Join(dir, "c.db"))
	defer c.Close()
	snapshotAt(t, backup(t, a), 8)(c)
	next := creditAt(t, 9, t0.Add(2*time.Second))
	a.Apply(next)
	c.Apply(next)
	ea, ec := outboxOf(t, a), outboxOf(t, c)
	if len(ea) != 8 || len(ec) != 8 || ea[7].id != ec[7].id {
		t.Fatalf("after the restore: %d and %d events, last ids %v / %v", len(ea), len(ec), ea[len(ea)-1].id, ec[len(ec)-1].id)
	}
	if ea[7].id <= ea[6].id {
		t.Fatalf("the event after the restore has id %s, before the last one's %s", ea[7].id, ea[6].id)
	}

	// Level 11: as before, the command's time and Raft index.
	old := applied(t, filepath.Join(dir, "old.db"), racedLog(t, LevelEventOrder-1)...)
	oldEvs := outboxOf(t, old)
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	want := []string{
		ids.Derived("evt", s(10), 3, 0), ids.Derived("evt", s(5), 4, 0), ids.Derived("evt", s(7), 5, 0),
		ids.Derived("evt", s(10), 6, 0), ids.Derived("evt", s(20), 7, 0), ids.Derived("evt", s(3), 7, 1),
		ids.Derived("evt", s(21), 8, 0),
	}
	var got []string
	for _, ev := range oldEvs {
		got = append(got, ev.id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("level 11 ids changed:\n got %v\nwant %v", got, want)
	}
	if slices.IsSorted(got) {
		t.Fatal("level 11's ids sorted: the log does not show the race")
	}
	if oldEvs[1].at != s(5) {
		t.Fatalf("level 11 created_at changed: %s", oldEvs[1].at)
	}
	var at int64
	_ = old.View(func(tx *bolt.Tx) error { at = store.EventAt(tx); return nil })
	if at != 0 {
		t.Fatalf("level 11 recorded the last event's time (%d)", at)
	}
}

// TestEventIDsAfterTheLevelRaise: an event of level 11 committed just
// before the raise to 12 whose request started after the raise's command
// was stamped (a later time than the raise's) still sorts before the first
// events of level 12, also when it is not the last committed (level 11's
// ids race): the raise seeds the last event's time with the latest time of
// the outbox's events.
func TestEventIDsAfterTheLevelRaise(t *testing.T) {
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	f := applied(t, filepath.Join(t.TempDir(), "f.db"),
		logAt(t, 1, CmdAccountCreate, s(0), AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logAt(t, 2, CmdClusterLevel, s(0), ClusterLevel{Level: LevelEventOrder - 1}),
		creditAt(t, 3, s(30)),
		logAt(t, 4, CmdClusterLevel, s(20), ClusterLevel{Level: LevelEventOrder}),
		creditAt(t, 5, s(21)),
	)
	evs := outboxOf(t, f)
	if len(evs) != 2 || evs[1].id <= evs[0].id {
		t.Fatalf("events %+v: the first event of level 12 does not sort after the last of level 11", evs)
	}

	// review56: the last event committed at level 11 need not be the
	// latest: entry 3 (stamped 30 s) commits before entry 4 (10 s).
	g := applied(t, filepath.Join(t.TempDir(), "g.db"),
		logAt(t, 1, CmdAccountCreate, s(0), AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logAt(t, 2, CmdClusterLevel, s(0), ClusterLevel{Level: LevelEventOrder - 1}),
		creditAt(t, 3, s(30)),
		creditAt(t, 4, s(10)),
		logAt(t, 5, CmdClusterLevel, s(20), ClusterLevel{Level: LevelEventOrder}),
		creditAt(t, 6, s(21)),
	)
	evs = outboxOf(t, g)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for _, old := range evs[:2] {
		if evs[2].id <= old.id {
			t.Errorf("the first level-12 event %s (created_at %s) sorts before the level-11 event %s (created_at %s)", evs[2].id, evs[2].at, old.id, old.at)
		}
	}
}

// TestWrongClockDoesNotHoldLaterEvents (review56): one command stamped by a
// coordinator whose wall clock was a year ahead (past hlc.MaxAhead: a wrong
// clock, not another coordinator's skew, which the coordinators' clocks
// leave out too) does not hold every later event's created_at (and id) a
// year in the future: the later ones take their own times again, and sort
// among themselves in commit order.
func TestWrongClockDoesNotHoldLaterEvents(t *testing.T) {
	f := applied(t, filepath.Join(t.TempDir(), "f.db"),
		logAt(t, 1, CmdAccountCreate, t0, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logAt(t, 2, CmdClusterLevel, t0, ClusterLevel{Level: LevelEventOrder}),
		creditAt(t, 3, t0.Add(365*24*time.Hour)), // a coordinator's wall clock a year ahead
		creditAt(t, 4, t0.Add(2*time.Second)),    // its clock set right
		creditAt(t, 5, t0.Add(time.Second)),      // a request that raced entry 4's
	)
	evs := outboxOf(t, f)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, ev := range evs[1:] {
		if ev.at.Sub(t0) > 24*time.Hour {
			t.Errorf("event %d has created_at %s: held a year ahead by one wrong clock's event", i+1, ev.at)
		}
	}
	if want := t0.Add(2 * time.Second); !evs[2].at.Equal(want) || evs[2].id <= evs[1].id {
		t.Fatalf("after the wrong clock: %+v, want the last event at %s, after the one before", evs[1:], want)
	}
}
