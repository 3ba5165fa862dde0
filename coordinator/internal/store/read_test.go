package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// testDB is a real bbolt database with every bucket, filled by fill.
func testDB(t *testing.T, fill func(tx *bolt.Tx) error) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := CreateBuckets(tx); err != nil {
			return err
		}
		return fill(tx)
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

func read(t *testing.T, db *bolt.DB, fn func(r ReadTx)) {
	t.Helper()
	if err := db.View(func(tx *bolt.Tx) error { fn(Read(tx)); return nil }); err != nil {
		t.Fatal(err)
	}
}

func put(tx *bolt.Tx, bucket, key []byte, v any) error {
	if v == nil {
		return tx.Bucket(bucket).Put(key, []byte{})
	}
	return PutJSON(tx, bucket, key, v)
}

func TestAllBucketsAreCreatedAndDistinct(t *testing.T) {
	db := testDB(t, func(*bolt.Tx) error { return nil })
	seen := map[string]bool{}
	_ = db.View(func(tx *bolt.Tx) error {
		for _, b := range AllBuckets {
			if seen[string(b)] {
				t.Errorf("bucket %s declared twice", b)
			}
			seen[string(b)] = true
			if tx.Bucket(b) == nil {
				t.Errorf("bucket %s not created", b)
			}
		}
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if !seen[string(name)] {
				t.Errorf("bucket %s created but not in AllBuckets", name)
			}
			return nil
		})
	})
	for _, group := range [][][]byte{WebhookBuckets, NodeBuckets, ServerBuckets, IPPoolBuckets, OAuthBuckets, HostingBuckets, CatalogueBuckets, RegDomainBuckets} {
		for _, b := range group {
			if !seen[string(b)] {
				t.Errorf("bucket %s of a group is not in AllBuckets", b)
			}
		}
	}
	if len(AllBuckets) != 38+len(OAuthBuckets)+len(HostingBuckets)+len(CatalogueBuckets)+len(RegDomainBuckets) {
		t.Errorf("AllBuckets has %d buckets, want %d (update this test when a bucket is added)", len(AllBuckets), 38+len(OAuthBuckets)+len(HostingBuckets)+len(CatalogueBuckets)+len(RegDomainBuckets))
	}
}

func TestServersAreOwnedPagedAndIndexed(t *testing.T) {
	srv := func(acc, id, node string) Server {
		return Server{Server: api.Server{ID: id, Status: api.ServerRunning}, AccountID: acc, NodeID: node}
	}
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, s := range []Server{srv("acc_a", "srv_1", "hv-1"), srv("acc_a", "srv_2", "hv-2"), srv("acc_a", "srv_3", "hv-1"), srv("acc_b", "srv_4", "hv-1")} {
			if err := put(tx, BucketServers, OwnedKey(s.AccountID, s.ID), s); err != nil {
				return err
			}
			if err := tx.Bucket(BucketServerIDs).Put([]byte(s.ID), []byte(s.AccountID)); err != nil {
				return err
			}
			if err := put(tx, BucketNodeServers, NodeServerKey(s.NodeID, s.ID), nil); err != nil {
				return err
			}
		}
		a := Action{Action: api.Action{ID: "act_1", ResourceID: "srv_1"}, NodeID: "hv-1"}
		if err := put(tx, BucketActions, []byte(a.ID), a); err != nil {
			return err
		}
		return tx.Bucket(BucketOpenActions).Put([]byte(a.ID), []byte(a.NodeID))
	})
	read(t, db, func(r ReadTx) {
		if _, err := r.OwnedServer("acc_b", "srv_1"); !errors.Is(err, ErrNotFound) || err.Error() != "server srv_1: not found" {
			t.Errorf("another account's server: err %v, want \"server srv_1: not found\"", err)
		}
		if s, err := r.Server("srv_4"); err != nil || s.AccountID != "acc_b" {
			t.Errorf("Server(srv_4) = %+v, %v", s, err)
		}
		page, total, err := r.Servers("acc_a", 1, 1)
		if err != nil || total != 3 || len(page) != 1 || page[0].ID != "srv_2" {
			t.Errorf("Servers(acc_a, offset 1, limit 1) = %v, total %d, %v; want [srv_2] of 3 (newest first)", page, total, err)
		}
		on, _ := r.NodeServers("hv-1")
		if len(on) != 3 || on[0].ID != "srv_1" || on[1].ID != "srv_3" || on[2].ID != "srv_4" {
			t.Errorf("NodeServers(hv-1) = %v", on)
		}
		if on, _ := r.NodeServers("hv-"); len(on) != 0 {
			t.Errorf("NodeServers(hv-) matched another node's servers: %v", on)
		}
		all, err := r.AllServers()
		if err != nil || len(all) != 4 {
			t.Errorf("AllServers = %d servers, %v", len(all), err)
		}
		open, err := r.OpenActions()
		if err != nil || len(open) != 1 || open[0].ID != "act_1" || r.OpenActionCount() != 1 {
			t.Errorf("OpenActions = %v, %v; count %d", open, err, r.OpenActionCount())
		}
		// The dispatcher's scan: an action it already exchanges is named, not read.
		open, skipped, bad, err := r.OpenActionsExcept(func(id string) bool { return id == "act_1" })
		if err != nil || len(open) != 0 || len(skipped) != 1 || skipped[0] != "act_1" || len(bad) != 0 {
			t.Errorf("OpenActionsExcept(act_1) = %v, skipped %v, unreadable %v, %v", open, skipped, bad, err)
		}
		open, skipped, bad, _ = r.OpenActionsExcept(func(string) bool { return false })
		if len(open) != 1 || open[0].ID != "act_1" || len(skipped) != 0 || len(bad) != 0 {
			t.Errorf("OpenActionsExcept(none) = %v, skipped %v, unreadable %v", open, skipped, bad)
		}
		if _, err := r.Action("act_2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Action(act_2): %v", err)
		}
	})
}

// TestOpenActionsUnreadable: an open action whose record does not decode,
// and one the open index names without a record, are listed as unreadable
// with an error naming each, not dropped without a word (the dispatcher
// logs them; before, the scan skipped them silently).
func TestOpenActionsUnreadable(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		a := Action{Action: api.Action{ID: "act_ok", ResourceID: "srv_1"}, NodeID: "hv-1"}
		if err := put(tx, BucketActions, []byte(a.ID), a); err != nil {
			return err
		}
		if err := tx.Bucket(BucketActions).Put([]byte("act_bad"), []byte("{not json")); err != nil {
			return err
		}
		for _, id := range []string{"act_ok", "act_bad", "act_gone"} {
			if err := tx.Bucket(BucketOpenActions).Put([]byte(id), []byte("hv-1")); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(r ReadTx) {
		open, skipped, bad, err := r.OpenActionsExcept(nil)
		if err != nil || len(open) != 1 || open[0].ID != "act_ok" || len(skipped) != 0 {
			t.Fatalf("OpenActionsExcept = %v, skipped %v, %v; want [act_ok]", open, skipped, err)
		}
		if len(bad) != 2 || bad["act_bad"] == nil || !errors.Is(bad["act_gone"], ErrNotFound) {
			t.Fatalf("unreadable = %v, want act_bad (does not decode) and act_gone (not found)", bad)
		}
		if msg := bad["act_bad"].Error(); !strings.Contains(msg, "act_bad") {
			t.Errorf("act_bad's error %q does not name it", msg)
		}
	})
}

func TestAccountsAndKeys(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, id := range []string{"acc_a", "acc_b"} {
			if err := put(tx, BucketAccounts, []byte(id), api.Account{ID: id}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(BucketEmails).Put([]byte("a@example.com"), []byte("acc_a")); err != nil {
			return err
		}
		for _, k := range []Key{{KeyInfo: api.KeyInfo{ID: "key_1", AccountID: "acc_a"}, Hash: "h1"}, {KeyInfo: api.KeyInfo{ID: "key_2", AccountID: "acc_b"}, Hash: "h2"}} {
			if err := put(tx, BucketKeys, []byte(k.ID), k); err != nil {
				return err
			}
			if err := tx.Bucket(BucketKeyHashes).Put([]byte(k.Hash), []byte(k.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(r ReadTx) {
		if k, err := r.KeyByHash("h2"); err != nil || k.ID != "key_2" {
			t.Errorf("KeyByHash(h2) = %+v, %v", k, err)
		}
		if _, err := r.KeyByHash("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("KeyByHash(nope): %v", err)
		}
		if keys, err := r.AccountKeys("acc_a"); err != nil || len(keys) != 1 || keys[0].ID != "key_1" {
			t.Errorf("AccountKeys(acc_a) = %v, %v", keys, err)
		}
		if id := r.AccountIDByEmail("a@example.com"); id != "acc_a" {
			t.Errorf("AccountIDByEmail = %q", id)
		}
		if _, err := r.Account("acc_c"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Account(acc_c): %v", err)
		}
		if !r.AnyAccount() || !r.AccountExists("acc_b") || r.KeyExists("key_3") {
			t.Error("AnyAccount/AccountExists/KeyExists disagree with the data")
		}
	})
	empty := testDB(t, func(*bolt.Tx) error { return nil })
	read(t, empty, func(r ReadTx) {
		if r.AnyAccount() {
			t.Error("AnyAccount on an empty database")
		}
	})
}

func TestDeliveryLogIsOwnedAndCarriesTheDeliveryStatus(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		if err := put(tx, BucketWebhooks, OwnedKey("acc_a", "wh_1"), Webhook{ID: "wh_1", AccountID: "acc_a"}); err != nil {
			return err
		}
		if err := tx.Bucket(BucketWebhookIDs).Put([]byte("wh_1"), []byte("acc_a")); err != nil {
			return err
		}
		for i, dlv := range []string{"dlv_1", "dlv_2"} {
			if err := put(tx, BucketWebhookAttempts, WebhookAttemptKey("wh_1", uint64(i+1)), api.WebhookAttempt{ID: "att", DeliveryID: dlv}); err != nil {
				return err
			}
		}
		d := Delivery{WebhookDelivery: api.WebhookDelivery{ID: "dlv_1", WebhookID: "wh_1", Status: api.DeliveryPending}}
		if err := put(tx, BucketWebhookDeliveries, WebhookKey("wh_1", "dlv_1"), d); err != nil {
			return err
		}
		return put(tx, BucketWebhookPending, WebhookKey("wh_1", "dlv_1"), nil)
	})
	read(t, db, func(r ReadTx) {
		if _, _, err := r.DeliveryLog("acc_b", "wh_1", 0, 10); !errors.Is(err, ErrNotFound) {
			t.Errorf("another account's delivery log: %v, want ErrNotFound", err)
		}
		log, total, err := r.DeliveryLog("acc_a", "wh_1", 0, 10)
		if err != nil || total != 2 || len(log) != 2 {
			t.Fatalf("DeliveryLog = %v, %d, %v", log, total, err)
		}
		// Newest first; the pruned delivery has no status.
		if log[0].DeliveryID != "dlv_2" || log[0].DeliveryStatus != "" || log[1].DeliveryStatus != api.DeliveryPending {
			t.Errorf("DeliveryLog = %+v", log)
		}
		var pending []string
		_ = r.ForEachPendingDelivery(func(d Delivery) error { pending = append(pending, d.ID); return nil })
		if len(pending) != 1 || pending[0] != "dlv_1" {
			t.Errorf("pending deliveries %v", pending)
		}
		if w, err := r.WebhookByID("wh_1"); err != nil || w.AccountID != "acc_a" {
			t.Errorf("WebhookByID = %+v, %v", w, err)
		}
		if r.WebhookCursor() != nil || r.WebhookMeta(WebhookSubsVersionKey) != 0 {
			t.Error("dispatcher state of a fresh database is not empty")
		}
	})
}

func TestScanOutboxResumesAfterTheCursor(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		for i := uint64(1); i <= 5; i++ {
			if err := put(tx, BucketOutbox, OutboxKey(i, 0), Event{ID: "evt", Type: "server.created"}); err != nil {
				return err
			}
		}
		return tx.Bucket(BucketOutbox).Put(OutboxKey(6, 0), []byte("{broken"))
	})
	read(t, db, func(r ReadTx) {
		var seen []uint64
		var bad int
		visit := func(ev Event, err error) {
			if err != nil {
				bad++
			}
			seen = append(seen, uint64(ev.Seq[7]))
		}
		if more := r.ScanOutbox(nil, 2, visit); !more || len(seen) != 2 || seen[1] != 2 {
			t.Fatalf("first batch %v, more %v", seen, more)
		}
		if more := r.ScanOutbox(OutboxKey(2, 0), 10, visit); more || len(seen) != 6 || seen[2] != 3 || bad != 1 {
			t.Fatalf("second batch %v (bad %d), more %v", seen, bad, more)
		}
		// A cursor whose entry was pruned resumes at the next one.
		seen = nil
		r.ScanOutbox(append(OutboxKey(4, 0), 1), 10, visit)
		if len(seen) != 2 || seen[0] != 5 {
			t.Errorf("after a pruned cursor: %v", seen)
		}
	})
}

// An entry of an account the reader does not want is visited with its key and
// account only; a wanted one is decoded whole; a broken one still reports its
// error.
func TestScanOutboxForDecodesOnlyWantedAccounts(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db := testDB(t, func(tx *bolt.Tx) error {
		for i, acct := range []string{"acc_a", "acc_b", "acc_a"} {
			ev := Event{ID: fmt.Sprint("evt_", i), Type: "ticket.created", AccountID: acct, CreatedAt: at, Data: json.RawMessage(`{"n":1}`)}
			if err := put(tx, BucketOutbox, OutboxKey(uint64(i+1), 0), ev); err != nil {
				return err
			}
		}
		return tx.Bucket(BucketOutbox).Put(OutboxKey(4, 0), []byte("{broken"))
	})
	read(t, db, func(r ReadTx) {
		var got []Event
		var errs int
		more := r.ScanOutboxFor(nil, 10, func(acct string) bool { return acct == "acc_b" }, func(ev Event, err error) {
			if err != nil {
				errs++
			}
			got = append(got, ev)
		})
		if more || len(got) != 4 || errs != 1 {
			t.Fatalf("visited %d entries (%d errors), more %v", len(got), errs, more)
		}
		for i, ev := range got[:3] {
			if ev.Seq[7] != byte(i+1) {
				t.Errorf("entry %d: seq %v", i, ev.Seq)
			}
		}
		if a := got[0]; a.AccountID != "acc_a" || a.ID != "" || a.Data != nil || !a.CreatedAt.IsZero() {
			t.Errorf("unwanted entry decoded beyond its account: %+v", a)
		}
		if b := got[1]; b.AccountID != "acc_b" || b.ID != "evt_1" || b.Type != "ticket.created" || !b.CreatedAt.Equal(at) || string(b.Data) != `{"n":1}` {
			t.Errorf("wanted entry: %+v", b)
		}
	})
}

// SkipOutbox walks the same entries ScanOutbox visits, in batches of max,
// and reports the last key and whether more remain as ScanOutbox does.
func TestSkipOutboxWalksAsScanOutbox(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		for i := 1; i <= 5; i++ {
			if err := tx.Bucket(BucketOutbox).Put(OutboxKey(uint64(i), 0), []byte("{broken")); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(r ReadTx) {
		for _, c := range []struct {
			after []byte
			max   int
		}{{nil, 2}, {nil, 5}, {nil, 9}, {OutboxKey(2, 0), 2}, {OutboxKey(2, 0), 3}, {OutboxKey(2, 1), 1}, {OutboxKey(5, 0), 4}, {OutboxKey(9, 0), 1}} {
			var want []byte
			wantMore := r.ScanOutbox(c.after, c.max, func(ev Event, _ error) { want = ev.Seq })
			last, more := r.SkipOutbox(c.after, c.max)
			if !bytes.Equal(last, want) || more != wantMore {
				t.Errorf("after %v, max %d: SkipOutbox %v, %v; ScanOutbox %v, %v", c.after, c.max, last, more, want, wantMore)
			}
		}
	})
}

func TestNodesAndCluster(t *testing.T) {
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, id := range []string{"hv-1", "hv-2"} {
			if err := put(tx, BucketAgentNodes, []byte(id), AgentNode{AgentNode: api.AgentNode{ID: id}}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(BucketAgentNodes).Put([]byte("hv-3"), []byte("{broken")); err != nil {
			return err
		}
		if err := tx.Bucket(BucketSessionAddrs).Put([]byte("c1"), []byte("10.0.0.1:8422")); err != nil {
			return err
		}
		return put(tx, BucketCluster, []byte("c1"), ClusterNode{ID: "c1", APIAddr: "10.0.0.1:8080"})
	})
	read(t, db, func(r ReadTx) {
		if _, err := r.AgentNode("hv-9"); !errors.Is(err, ErrNotFound) || err.Error() != "node hv-9: not found" {
			t.Errorf("AgentNode(hv-9): %v", err)
		}
		var ids []string
		_ = r.ForEachAgentNode(func(n AgentNode) { ids = append(ids, n.ID) })
		if len(ids) != 2 {
			t.Errorf("ForEachAgentNode visited %v, want the two decodable nodes", ids)
		}
		if _, err := r.AgentNodes(); err == nil {
			t.Error("AgentNodes hid an undecodable record")
		}
		if _, err := r.NodeCA(); !errors.Is(err, ErrNotFound) || r.NodeCAExists() {
			t.Errorf("NodeCA before it is made: %v", err)
		}
		if a := r.SessionAddr("c1"); a != "10.0.0.1:8422" {
			t.Errorf("SessionAddr = %q", a)
		}
		if m := r.ClusterAPIAddrs(); len(m) != 1 || m["c1"] != "10.0.0.1:8080" {
			t.Errorf("ClusterAPIAddrs = %v", m)
		}
	})
}

// FuzzActionIndexValue: an index value parses back into the three fields
// it was made of, and any bytes either parse into three space-free fields
// that make the same value again or are refused.
func FuzzActionIndexValue(f *testing.F) {
	f.Add([]byte("server srv_1 server.reboot"))
	f.Add([]byte("hosting  hosting.create"))
	f.Add([]byte("a b c d"))
	f.Fuzz(func(t *testing.T, v []byte) {
		rt, rid, cmd, ok := ParseActionIndexValue(v)
		if !ok {
			return
		}
		a := Action{}
		a.ResourceType, a.ResourceID, a.Command = rt, rid, cmd
		if got := ActionIndexValue(&a); string(got) != string(v) {
			t.Fatalf("%q parsed as %q %q %q, which make %q", v, rt, rid, cmd, got)
		}
	})
}
