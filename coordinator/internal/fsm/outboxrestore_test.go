package fsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// outboxDump is f's outbox, key → value, and its keys in order.
func outboxDump(t *testing.T, f *FSM) (map[string]string, [][]byte) {
	t.Helper()
	m := map[string]string{}
	var keys [][]byte
	if err := f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketOutbox).ForEach(func(k, v []byte) error {
			m[string(k)] = string(v)
			keys = append(keys, append([]byte{}, k...))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return m, keys
}

// snapshotAt stores b in a snapshot store of its own as the Raft snapshot
// at index, term 2 (as a `cluster restore` or an InstallSnapshot puts it
// there) and returns a function restoring it into an FSM, as Raft does
// (through IndexedSnapshots).
func snapshotAt(t *testing.T, b []byte, index uint64) func(f *FSM) {
	t.Helper()
	return snapshotAtTerm(t, b, index, 2)
}

// snapshotAtTerm is snapshotAt at the Raft term given.
func snapshotAtTerm(t *testing.T, b []byte, index, term uint64) func(f *FSM) {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStore(t.TempDir(), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return func(f *FSM) {
		t.Helper()
		_, rc, err := IndexedSnapshots(snaps).Open(sink.ID())
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(raftWrapper{rc}); err != nil {
			t.Fatal(err)
		}
	}
}

func deposit(t *testing.T, idx uint64, n int) *raft.Log {
	return logAt(t, idx, CmdWalletCredit, t0.Add(time.Duration(idx)*time.Second), WalletCredit{TxID: fmt.Sprintf("wtx_%d_%d", idx, n), AccountID: "acc_1", AmountUsdCents: 1})
}

// TestRestoreFromLongerLogKeepsEvents: a backup of a state applied to index
// 60, with events at indexes 3 to 60 and the dispatcher's cursor at 50, is
// installed at Raft index 10 (a `cluster restore` into a cluster with a
// shorter log), on two replicas. The commands after it, at indexes 11 on,
// must not overwrite the backup's events (those at 51 to 60 were never
// delivered), and their events must sort past the backup's and its cursor
// and be taken by its subscription, or the dispatcher never sends them;
// both replicas alike, and a replica that installs a later snapshot of
// theirs goes on alike too.
func TestRestoreFromLongerLogKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	logs := []*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWebhookCreate, whCreate("wh_1", "acc_1", 0)),
	}
	for i := uint64(3); i <= 60; i++ {
		logs = append(logs, deposit(t, i, 0))
	}
	a := applied(t, filepath.Join(dir, "a.db"), logs...)
	a.Apply(logOf(t, 61, CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(50, 0)}))
	aOutbox, aKeys := outboxDump(t, a)
	if len(aOutbox) != 58 {
		t.Fatalf("A's outbox holds %d events, want 58", len(aOutbox))
	}
	last := aKeys[len(aKeys)-1]

	install := snapshotAt(t, backup(t, a), 10)
	b1, b2 := open(t, filepath.Join(dir, "b1.db")), open(t, filepath.Join(dir, "b2.db"))
	defer b1.Close()
	defer b2.Close()
	for _, b := range []*FSM{b1, b2} {
		install(b)
		for i := uint64(11); i <= 15; i++ {
			if r := b.Apply(deposit(t, i, 1)).(*Result); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	got, keys := outboxDump(t, b1)
	for k, v := range aOutbox {
		if got[k] != v {
			t.Fatalf("the backup's event at %s was overwritten or lost after the restore", cursorOf([]byte(k)))
		}
	}
	if len(got) != len(aOutbox)+5 {
		t.Fatalf("after 5 deposits the outbox holds %d events, want %d", len(got), len(aOutbox)+5)
	}
	var w store.Webhook
	if err := b1.Read(func(r store.ReadTx) (err error) { w, err = r.Webhook("acc_1", "wh_1"); return }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys[len(aKeys):] {
		if bytes.Compare(k, last) <= 0 {
			t.Fatalf("a new event's key %s sorts at or before the backup's last event %s", cursorOf(k), cursorOf(last))
		}
		if !w.Takes(binary.BigEndian.Uint64(k)) {
			t.Fatalf("the new event at %s is not taken by the backup's subscription (active since %d)", cursorOf(k), w.ActiveSince)
		}
	}
	got2, _ := outboxDump(t, b2)
	if fmt.Sprint(got) != fmt.Sprint(got2) {
		t.Fatal("the two replicas' outboxes differ after the restore")
	}

	// A snapshot of b1 at its own index (InstallSnapshot on a replica
	// behind, or b2 restarting) and a reopen keep the event indexes going.
	b3 := open(t, filepath.Join(dir, "b3.db"))
	snapshotAt(t, backup(t, b1), 15)(b3)
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	b2 = open(t, filepath.Join(dir, "b2.db"))
	defer b3.Close()
	for _, b := range []*FSM{b1, b2, b3} {
		if r := b.Apply(deposit(t, 16, 2)).(*Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	want, _ := outboxDump(t, b1)
	for i, b := range []*FSM{b2, b3} {
		if got, _ := outboxDump(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("replica %d's outbox differs from b1's after a snapshot or a reopen", i+2)
		}
	}
}

// TestRestoreOwnSnapshotKeepsEventIndexes: a snapshot of this cluster's own
// (a lagging follower's InstallSnapshot) changes no event index: the
// commands after it write the keys they wrote before any of this.
func TestRestoreOwnSnapshotKeepsEventIndexes(t *testing.T) {
	dir := t.TempDir()
	logs := []*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		deposit(t, 2, 0),
	}
	a := applied(t, filepath.Join(dir, "a.db"), logs...)
	b := open(t, filepath.Join(dir, "b.db"))
	defer b.Close()
	snapshotAt(t, backup(t, a), 2)(b)
	for _, f := range []*FSM{a, b} {
		f.Apply(deposit(t, 3, 1))
	}
	for _, f := range []*FSM{a, b} {
		if _, keys := outboxDump(t, f); len(keys) != 2 || !bytes.Equal(keys[1], store.OutboxKey(3, 0)) {
			t.Fatalf("after its own snapshot, index 3's event is keyed %v, want %s", keys, cursorOf(store.OutboxKey(3, 0)))
		}
	}
}

func cursorOf(k []byte) string {
	if len(k) != 10 {
		return fmt.Sprintf("%x", k)
	}
	return fmt.Sprintf("%d/%d", binary.BigEndian.Uint64(k), binary.BigEndian.Uint16(k[8:]))
}
