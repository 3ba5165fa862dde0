package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestWebhookAttemptLoggedOnceAtLevel9: the dispatcher proposes a batch of
// attempts again when its apply answered an error although the entry
// committed, so the same WebhookAttempts applies twice. Below level 9 the
// second apply logs every attempt again, as the releases before do (a
// replayed log comes out the same on every version). From level 9 the
// customer's delivery log (GET /v1/webhooks/{id}/deliveries) holds one row
// per attempt id: a batch applied again, or late after a newer attempt, or
// an id twice in one batch, adds no row, no count, and moves neither the
// delivery nor the subscription (a 410's disable after the customer
// resumed); the index of ids is pruned with the log and goes with the
// subscription. Replicas stay byte-identical.
func TestWebhookAttemptLoggedOnceAtLevel9(t *testing.T) {
	h := newWHHarness(t, 2)
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_a", Email: "a@example.com"})
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelWebhookAttemptOnce - 1})
	event := func(id string) *store.Event {
		return &store.Event{ID: id, Type: "ticket.created", AccountID: "acc_a", CreatedAt: h.at, Data: []byte(`{"ticketId":"tkt_1"}`)}
	}
	retrying := func(wh, dlv, id string, n int) WebhookAttemptRecord {
		next := h.at.Add(time.Minute)
		r := WebhookAttemptRecord{ID: id, WebhookID: wh, DeliveryID: dlv, Chain: 1, Number: n, At: h.at, StatusCode: 500, Error: "receiver answered 500", Outcome: api.AttemptRetrying, NextAttemptAt: &next}
		if n == 1 {
			r.Event = event("evt_" + dlv)
		}
		return r
	}
	logOf := func(wh string) []api.WebhookAttempt {
		t.Helper()
		var items []api.WebhookAttempt
		if err := h.fsms[0].Read(func(r store.ReadTx) (err error) { items, _, err = r.DeliveryLog("acc_a", wh, 0, 100); return }); err != nil {
			t.Fatal(err)
		}
		return items
	}
	ids := func(items []api.WebhookAttempt) []string {
		var out []string
		for _, a := range items {
			out = append(out, a.ID)
		}
		slices.Sort(out)
		return out
	}
	meta := func(key string) uint64 {
		var v uint64
		_ = h.fsms[0].View(func(tx *bolt.Tx) error { v = metaGet(tx, key); return nil })
		return v
	}
	// indexed is the attempt ids the index holds for wh, sorted.
	indexed := func(wh string) []string {
		var out []string
		_ = h.fsms[0].View(func(tx *bolt.Tx) error {
			prefix := []byte(wh + "/")
			c := tx.Bucket(store.BucketWebhookAttemptIDs).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				out = append(out, string(k[len(prefix):]))
			}
			return nil
		})
		return out
	}

	// Level 8: the batch applied again is logged again, as before.
	h.must(CmdWebhookCreate, whCreate("wh_old", "acc_a", 0))
	old := WebhookAttempts{Attempts: []WebhookAttemptRecord{retrying("wh_old", "dlv_old", "att_old", 1)}}
	h.must(CmdWebhookAttempts, old)
	if n := h.must(CmdWebhookAttempts, old).(int); n != 1 {
		t.Fatalf("level 8: the batch applied again recorded %d, want 1 (the releases before log it again)", n)
	}
	if got := ids(logOf("wh_old")); !slices.Equal(got, []string{"att_old", "att_old"}) || len(indexed("wh_old")) != 0 {
		t.Fatalf("level 8: log %v, index %v; want the attempt twice and no index", got, indexed("wh_old"))
	}

	h.must(CmdClusterLevel, ClusterLevel{Level: LevelWebhookAttemptOnce})
	h.must(CmdWebhookCreate, whCreate("wh_1", "acc_a", 0))
	first := WebhookAttempts{Keep: 3, Attempts: []WebhookAttemptRecord{retrying("wh_1", "dlv_1", "att_1", 1)}}
	if n := h.must(CmdWebhookAttempts, first).(int); n != 1 {
		t.Fatalf("first apply recorded %d, want 1", n)
	}
	if n := h.must(CmdWebhookAttempts, first).(int); n != 0 {
		t.Fatalf("the batch applied again recorded %d, want 0", n)
	}
	log := logOf("wh_1")
	if len(log) != 1 || log[0].ID != "att_1" || log[0].Attempt != 1 || log[0].DeliveryStatus != api.DeliveryPending {
		t.Fatalf("delivery log after the batch applied twice: %+v, want att_1 once, pending", log)
	}
	if d := h.delivery("wh_1", "dlv_1"); d.Attempts != 1 || d.Status != api.DeliveryPending || d.NextAttemptAt == nil {
		t.Fatalf("delivery after the batch applied twice: %+v", d.WebhookDelivery)
	}
	if s, n := meta("seq_att/wh_1"), meta("n_att/wh_1"); s != 1 || n != 1 {
		t.Fatalf("log counters seq %d, count %d after one attempt; want 1, 1", s, n)
	}

	// The second attempt succeeds; the first's batch, applied again late,
	// moves nothing back.
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: []WebhookAttemptRecord{
		{ID: "att_2", WebhookID: "wh_1", DeliveryID: "dlv_1", Chain: 1, Number: 2, At: h.at, StatusCode: 204, Outcome: api.AttemptSucceeded},
	}})
	h.must(CmdWebhookAttempts, first)
	if got := ids(logOf("wh_1")); !slices.Equal(got, []string{"att_1", "att_2"}) {
		t.Fatalf("log %v, want att_1 and att_2 once each", got)
	}
	if d := h.delivery("wh_1", "dlv_1"); d.Attempts != 2 || d.Status != api.DeliverySucceeded {
		t.Fatalf("delivery after a late repeat of its first attempt: %+v", d.WebhookDelivery)
	}

	// One id twice in a batch: one row.
	r3 := retrying("wh_1", "dlv_3", "att_3", 1)
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: []WebhookAttemptRecord{r3, r3}})
	if got := ids(logOf("wh_1")); !slices.Equal(got, []string{"att_1", "att_2", "att_3"}) {
		t.Fatalf("log %v after an id twice in one batch", got)
	}

	// A 410's batch applied again after the customer resumed the
	// subscription does not disable it again.
	h.must(CmdWebhookCreate, whCreate("wh_g", "acc_a", 0))
	gone := WebhookAttempts{Attempts: []WebhookAttemptRecord{{ID: "att_g", WebhookID: "wh_g", DeliveryID: "dlv_g", Chain: 1, Number: 1, At: h.at,
		StatusCode: 410, Outcome: api.AttemptDisabled, Reason: "disabled after the receiver answered 410 Gone", Event: event("evt_g")}}}
	h.must(CmdWebhookAttempts, gone)
	on := true
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_g", AccountID: "acc_a", Active: &on})
	h.must(CmdWebhookAttempts, gone)
	if wg := h.webhook("wh_g"); !wg.Active || len(logOf("wh_g")) != 1 {
		t.Fatalf("a 410 applied again after the resume: active %v, %d log rows; want active, 1", wg.Active, len(logOf("wh_g")))
	}

	// The log keeps Keep (3) rows, and the index exactly their ids: a
	// pruned attempt's id goes with its row. A batch of more than Keep
	// attempts prunes only what was logged before it, so that the batch
	// applied again finds each of its attempts; the next command prunes
	// the rest.
	var batch []WebhookAttemptRecord
	for i := 4; i < 9; i++ {
		batch = append(batch, retrying("wh_1", fmt.Sprintf("dlv_%d", i), fmt.Sprintf("att_%d", i), 1))
	}
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: batch})
	want := []string{"att_4", "att_5", "att_6", "att_7", "att_8"}
	if got := ids(logOf("wh_1")); !slices.Equal(got, want) || !slices.Equal(indexed("wh_1"), want) {
		t.Fatalf("after a batch of 5 with Keep 3: log %v, index %v; want %v in both", got, indexed("wh_1"), want)
	}
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: batch})
	got := ids(logOf("wh_1"))
	if !slices.Equal(got, []string{"att_6", "att_7", "att_8"}) || !slices.Equal(indexed("wh_1"), got) {
		t.Fatalf("after pruning: log %v, index %v; want att_6..8 in both", got, indexed("wh_1"))
	}
	if n := meta("n_att/wh_1"); n != 3 {
		t.Fatalf("log count %d, want 3", n)
	}

	// Delete takes the index with the log.
	h.must(CmdWebhookDelete, WebhookDelete{ID: "wh_1", AccountID: "acc_a"})
	if n := h.count(store.BucketWebhookAttemptIDs, "wh_1/"); n != 0 {
		t.Fatalf("%d index entries of a deleted subscription", n)
	}
	dump := func(f *FSM) []byte { return bucketDump(f, append(store.WebhookBuckets, store.BucketWebhooks)...) }
	h.replicasSame(dump)
}
