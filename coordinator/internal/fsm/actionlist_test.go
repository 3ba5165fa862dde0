package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// listActions is one page of an account's action list on f: the ids,
// newest first, and the next page's cursor.
func listActions(t *testing.T, f *FSM, accountID string, q store.ActionQuery) ([]string, string, error) {
	t.Helper()
	var page []store.Action
	var next string
	err := f.Read(func(r store.ReadTx) (err error) {
		page, next, err = r.AccountActions(accountID, q)
		return err
	})
	var out []string
	for _, a := range page {
		out = append(out, a.ID)
	}
	return out, next, err
}

// TestActionIndexBackfilledAtLevelRaise: below level 2 no action is indexed
// and the list refuses to answer; the apply that raises the level indexes
// every action already recorded, alike on both replicas; from then on a new
// action is indexed when it is created, a progress or finish writes no
// index entry; the list pages newest first without a gap or a repeat, its
// filters select, another account's actions are not in it; a backup
// restored elsewhere keeps the index.
func TestActionIndexBackfilledAtLevelRaise(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)
	mkServer := func(acc, srv, act string) {
		h.must(CmdServerCreate, ServerCreate{
			Server: store.Server{Server: api.Server{ID: srv, Label: "web", OSTemplate: "debian-12", OS: "debian"}, AccountID: acc, NodeID: "hv-1", VMName: "hp-" + srv},
			Action: store.Action{Action: api.Action{ID: act, Command: api.ActionServerProvision, ResourceID: srv}, NodeID: "hv-1", Target: "hp-" + srv, Deadline: deadline}})
		h.must(CmdActionFinish, ActionFinish{ID: act, Success: true})
	}
	power := func(acc, srv, act, cmd string, ok bool) {
		h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: act, Command: cmd, ResourceID: srv}, AccountID: acc,
			NodeID: "hv-1", Target: "hp-" + srv, Deadline: deadline, Mutating: true}})
		h.must(CmdActionProgress, ActionProgress{ID: act, Percent: 50})
		if ok {
			h.must(CmdActionFinish, ActionFinish{ID: act, Success: true})
		} else {
			h.must(CmdActionFinish, ActionFinish{ID: act, ErrorCode: "node_error", ErrorMessage: "no"})
		}
	}
	// Level 1: ids sort by their letters here (act_01…, act_02…).
	mkServer("acc_1", "srv_1", "act_01")
	power("acc_1", "srv_1", "act_02", api.ActionServerStop, true)
	mkServer("acc_2", "srv_9", "act_03")
	mkServer("acc_1", "srv_2", "act_04")
	power("acc_1", "srv_1", "act_05", api.ActionServerStart, false)

	indexDump := func(f *FSM) []byte { return bucketDump(f, store.BucketAccountActions) }
	if d := indexDump(h.fsms[0]); len(d) != 0 {
		t.Fatalf("level 1 wrote the index: %q", d)
	}
	var le *store.ActionLevelError
	if _, _, err := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10}); !errors.As(err, &le) || le.Have != 1 {
		t.Fatalf("list at level 1: %v, want an ActionLevelError", err)
	}

	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.replicasSame(indexDump)
	all, next, err := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10})
	if want := []string{"act_05", "act_04", "act_02", "act_01"}; err != nil || !reflect.DeepEqual(all, want) || next != "" {
		t.Fatalf("acc_1 after the raise: %v next %q err %v, want %v", all, next, err, want)
	}
	if got, _, _ := listActions(t, h.fsms[1], "acc_2", store.ActionQuery{Limit: 10}); !reflect.DeepEqual(got, []string{"act_03"}) {
		t.Fatalf("acc_2 after the raise on replica 2: %v", got)
	}

	// A new action is indexed at its creation; its progress and finish
	// leave the index's content as it was. (Whether they write the same
	// entry again, a cost rather than a fault, this comparison cannot tell.)
	h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_06", Command: api.ActionServerReboot, ResourceID: "srv_2"}, AccountID: "acc_1",
		NodeID: "hv-1", Target: "hp-srv_2", Deadline: deadline, Mutating: true}})
	before := indexDump(h.fsms[0])
	if !bytes.Contains(before, []byte("acc_1/act_06server srv_2 server.reboot")) {
		t.Fatalf("new action not indexed: %q", before)
	}
	h.must(CmdActionProgress, ActionProgress{ID: "act_06", Percent: 50})
	h.must(CmdActionFinish, ActionFinish{ID: "act_06", Success: true})
	if !bytes.Equal(before, indexDump(h.fsms[0])) {
		t.Fatal("a progress or finish changed the index")
	}
	h.replicasSame(indexDump)

	// Pages of two: every action once, newest first.
	var seen []string
	cursor := ""
	for i := 0; ; i++ {
		page, next, err := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Before: cursor, Limit: 2})
		if err != nil || i > 5 {
			t.Fatalf("page %d: %v", i, err)
		}
		seen = append(seen, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if want := []string{"act_06", "act_05", "act_04", "act_02", "act_01"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("paged: %v, want %v", seen, want)
	}

	// Filters.
	onSrv1 := func(_, rid, _ string) bool { return rid == "srv_1" }
	if got, _, _ := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10, Match: onSrv1}); !reflect.DeepEqual(got, []string{"act_05", "act_02", "act_01"}) {
		t.Fatalf("resource srv_1: %v", got)
	}
	if got, _, _ := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10, Status: api.ActionFailed}); !reflect.DeepEqual(got, []string{"act_05"}) {
		t.Fatalf("status error: %v", got)
	}
	// A bounded scan ends a page early with a cursor to go on from.
	got, next, _ := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10, MaxScan: 2, Status: api.ActionFailed})
	if !reflect.DeepEqual(got, []string{"act_05"}) || next != "act_05" {
		t.Fatalf("scan of 2: %v next %q", got, next)
	}
	// Another account's server as a filter: nothing of it.
	onSrv9 := func(_, rid, _ string) bool { return rid == "srv_9" }
	if got, _, _ := listActions(t, h.fsms[0], "acc_1", store.ActionQuery{Limit: 10, Match: onSrv9}); len(got) != 0 {
		t.Fatalf("acc_1 listing srv_9's actions: %v", got)
	}

	// A backup restored into another replica keeps the index.
	r := restored(t, filepath.Join(t.TempDir(), "restored.db"), backup(t, h.fsms[0]))
	if got, _, err := listActions(t, r, "acc_1", store.ActionQuery{Limit: 10}); err != nil || len(got) != 5 {
		t.Fatalf("restored: %v %v", got, err)
	}
}

// backfillInPassOrder is backfillActionIndex as releases before key-order
// writes had it: each action's entry put as the pass meets it.
func backfillInPassOrder(tx *bolt.Tx) (int, error) {
	return eachRecordedAction(tx, func(a *store.Action) error { return store.PutActionIndex(tx, a) })
}

// TestActionIndexBackfillSameAsInPassOrder: the level raise's backfill
// leaves the index byte for byte as the backfill of the releases before
// (entries put in the pass's order) leaves it, from the same state, so
// replicas of either release agree: 3,000 actions of 40 accounts
// interleaved, an action of no account, a record that does not decode,
// entries already indexed (one with another value), two records of one id
// (the later in id order wins); and, when an entry is too large for bbolt,
// the same partial index and the same refusal.
func TestActionIndexBackfillSameAsInPassOrder(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	action := func(key, id, acc, srv, cmd string) (k, v []byte) {
		a := store.Action{Action: api.Action{ID: id, Command: cmd, Status: api.ActionSuccess, Progress: 100, ResourceType: "server",
			ResourceID: srv, CreatedAt: at}, AccountID: acc, NodeID: "hv-1", Target: "hp-" + srv, Deadline: at.Add(time.Hour)}
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(key), raw
	}
	seed := func(tx *bolt.Tx, tooLarge bool) error {
		acts, idx := tx.Bucket(store.BucketActions), tx.Bucket(store.BucketAccountActions)
		put := func(k, v []byte) error { return acts.Put(k, v) }
		for i := 0; i < 3000; i++ {
			id := fmt.Sprintf("act_%05d", i)
			if err := put(action(id, id, fmt.Sprintf("acc_%02d", (i*7)%40), fmt.Sprintf("srv_%03d", i%300), api.ActionServerReboot)); err != nil {
				return err
			}
			if tooLarge && i == 1500 {
				big := "acc_" + strings.Repeat("x", bolt.MaxKeySize)
				if err := put(action("act_01500x", "act_01500x", big, "srv_1", api.ActionServerStop)); err != nil {
					return err
				}
			}
		}
		for _, kv := range [][2][]byte{
			{[]byte("act_00010a"), nil}, // replaced below by a record of no account
			{[]byte("act_00020a"), []byte(`{"id": 7`)},
		} {
			if kv[1] == nil {
				_, kv[1] = action("", "act_00010a", "", "srv_1", api.ActionServerStart)
			}
			if err := acts.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		// Two records holding the id act_00030: the one under act_00030z comes later.
		if err := put(action("act_00030z", "act_00030", "acc_10", "srv_9", api.ActionServerStop)); err != nil {
			return err
		}
		if err := idx.Put([]byte("acc_35/act_00005"), []byte("server srv_005 stale")); err != nil {
			return err
		}
		return idx.Put([]byte("acc_14/act_00002"), []byte("server srv_002 server.reboot"))
	}
	for _, tooLarge := range []bool{false, true} {
		now := open(t, filepath.Join(t.TempDir(), "now.db"))
		before := open(t, filepath.Join(t.TempDir(), "before.db"))
		for _, f := range []*FSM{now, before} {
			if err := f.db.Update(func(tx *bolt.Tx) error { return seed(tx, tooLarge) }); err != nil {
				t.Fatal(err)
			}
		}
		res := now.Apply(logAt(t, 1, CmdClusterLevel, at, ClusterLevel{Level: 2})).(*Result)
		var wantErr error
		if err := before.db.Update(func(tx *bolt.Tx) error { _, wantErr = backfillInPassOrder(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if (res.Err == nil) != (wantErr == nil) || (wantErr != nil && !errors.Is(res.Err, wantErr)) {
			t.Fatalf("too large %v: the raise answered %v, the backfill in pass order %v", tooLarge, res.Err, wantErr)
		}
		got, want := bucketDump(now, store.BucketAccountActions), bucketDump(before, store.BucketAccountActions)
		if !bytes.Equal(got, want) {
			t.Fatalf("too large %v: the index differs from the backfill in pass order (%d bytes, want %d)", tooLarge, len(got), len(want))
		}
		// What the comparison stands on: the cases are in the index as described.
		for _, c := range []struct {
			key, val string
			in       bool
		}{
			{"acc_35/act_00005", "server srv_005 server.reboot", true},
			{"acc_10/act_00030", "server srv_9 server.stop", true},
			{"acc_10/act_02990", "server srv_290 server.reboot", !tooLarge},
			{"/act_00010a", "", false},
		} {
			v, has := "", false
			_ = now.View(func(tx *bolt.Tx) error {
				raw := tx.Bucket(store.BucketAccountActions).Get([]byte(c.key))
				v, has = string(raw), raw != nil
				return nil
			})
			if has != c.in || (c.in && v != c.val) {
				t.Fatalf("too large %v: index %s = %q (there %v), want %q there %v", tooLarge, c.key, v, has, c.val, c.in)
			}
		}
		if n := bytes.Count(got, []byte("server.reboot")); !tooLarge && n != 3000-1 {
			t.Fatalf("%d reboot entries indexed, want 2999 (act_00030's taken by the later record)", n)
		}
		now.Close()
		before.Close()
	}
}
