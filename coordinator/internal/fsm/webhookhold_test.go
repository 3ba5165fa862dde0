package fsm

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestWebhookPauseHoldsAtLevel2: at semantics level 1 a pause fails the
// pending deliveries (the releases before levels); at level 2 it holds them:
// still pending with no next attempt, a retry recorded late keeps them so, a
// held record creates an unrecorded event's delivery pending, a 410 holds its
// own delivery and the others, and the resume schedules them all at its
// time. Replicas stay byte-identical.
func TestWebhookPauseHoldsAtLevel2(t *testing.T) {
	h := newWHHarness(t, 2)
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_a", Email: "a@example.com"})
	ev := store.Event{ID: "evt_1", Type: "ticket.created", AccountID: "acc_a", CreatedAt: h.at, Data: []byte(`{"ticketId":"tkt_1"}`)}
	retrying := func(wh, dlv string, n int) WebhookAttemptRecord {
		next := h.at.Add(time.Minute)
		e := ev
		e.ID = "evt_" + dlv
		r := WebhookAttemptRecord{ID: fmt.Sprintf("att_%s_%d", dlv, n), WebhookID: wh, DeliveryID: dlv, Chain: 1, Number: n, At: h.at, StatusCode: 500, Outcome: api.AttemptRetrying, NextAttemptAt: &next}
		if n == 1 {
			r.Event = &e
		}
		return r
	}
	off, on := false, true

	// Level 1: the pause fails the retrying delivery.
	h.must(CmdWebhookCreate, whCreate("wh_1", "acc_a", 0))
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{retrying("wh_1", "dlv_1", 1)}})
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_1", AccountID: "acc_a", Active: &off})
	if d := h.delivery("wh_1", "dlv_1"); d.Status != api.DeliveryFailed || h.count(store.BucketWebhookPending, "wh_1/") != 0 || h.webhook("wh_1").PausedSince != 0 {
		t.Fatalf("level 1 pause: delivery %+v", d.WebhookDelivery)
	}

	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.must(CmdWebhookCreate, whCreate("wh_2", "acc_a", 0))
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{retrying("wh_2", "dlv_2", 1), retrying("wh_2", "dlv_3", 1)}})
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &off})
	w := h.webhook("wh_2")
	if w.Active || w.PausedSince != h.idx || !w.Holding() || w.DisabledReason != "paused" {
		t.Fatalf("level 2 pause: %+v", w)
	}
	// The attempt in flight at the pause is recorded after it: held too.
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{retrying("wh_2", "dlv_3", 2)}})
	// An event committed before the pause, handed out after it: held.
	e4 := ev
	e4.ID = "evt_4"
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{{ID: "att_h", WebhookID: "wh_2", DeliveryID: "dlv_4", Chain: 1, At: h.at, Outcome: OutcomeHeld, Event: &e4}}})
	for _, id := range []string{"dlv_2", "dlv_3", "dlv_4"} {
		if d := h.delivery("wh_2", id); d.Status != api.DeliveryPending || d.NextAttemptAt != nil {
			t.Fatalf("held %s: %+v", id, d.WebhookDelivery)
		}
	}
	if n := h.count(store.BucketWebhookPending, "wh_2/"); n != 3 {
		t.Fatalf("%d pending while paused, want 3", n)
	}
	if n := h.count(store.BucketWebhookAttempts, "wh_2/"); n != 3 {
		t.Fatalf("%d log entries, want 3 (a held record is not an attempt)", n)
	}
	pausedAt, createdAt := h.webhook("wh_2").PausedSince, h.webhook("wh_2").ActiveSince
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &on})
	for _, id := range []string{"dlv_2", "dlv_3", "dlv_4"} {
		if d := h.delivery("wh_2", id); d.Status != api.DeliveryPending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(h.at) {
			t.Fatalf("resumed %s: %+v", id, d.WebhookDelivery)
		}
	}
	// The dispatcher's cursor is not past the pause (no cursor at all
	// here): events before the pause are still taken, the pause's are not.
	w = h.webhook("wh_2")
	if !w.Active || w.PausedSince != 0 || w.ActiveSince != createdAt || len(w.Gaps) != 1 || w.Gaps[0] != (store.IndexRange{From: pausedAt, To: h.idx}) {
		t.Fatalf("resumed %+v", w)
	}
	for idx, want := range map[uint64]bool{createdAt: false, pausedAt - 1: true, pausedAt: false, h.idx: false, h.idx + 1: true} {
		if w.Takes(idx) != want {
			t.Errorf("after the resume, an event at %d taken: %v", idx, !want)
		}
	}
	// Paused and resumed again before the dispatcher read that far: both
	// pauses' events stay undelivered (only the last one was kept), those
	// between them and before the first are delivered.
	firstTo := h.idx
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_between", Email: "between@example.com"}) // an index between the pauses
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &off})
	p2 := h.idx
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &on})
	r2 := h.idx
	w = h.webhook("wh_2")
	if len(w.Gaps) != 2 || w.Gaps[0] != (store.IndexRange{From: pausedAt, To: firstTo}) || w.Gaps[1] != (store.IndexRange{From: p2, To: r2}) {
		t.Fatalf("resumed twice behind the dispatcher: %+v", w)
	}
	for idx, want := range map[uint64]bool{pausedAt - 1: true, pausedAt: false, firstTo: false, firstTo + 1: true, p2 - 1: true, p2: false, r2: false, r2 + 1: true} {
		if w.Takes(idx) != want {
			t.Errorf("after two resumes, an event at %d taken: %v", idx, !want)
		}
	}
	// The dispatcher read past the first pause only: a third pause keeps
	// the second's gap and drops the first's.
	h.must(CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(firstTo+1, 0)})
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &off})
	p3 := h.idx
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &on})
	if w := h.webhook("wh_2"); len(w.Gaps) != 2 || w.Gaps[0] != (store.IndexRange{From: p2, To: r2}) || w.Gaps[1] != (store.IndexRange{From: p3, To: h.idx}) {
		t.Fatalf("third resume, the cursor past the first pause: %+v", w)
	}
	// Paused and resumed again once the cursor is past the pause: the
	// resume is the new start.
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &off})
	h.must(CmdWebhookAttempts, WebhookAttempts{Cursor: store.OutboxKey(h.idx+1, 0)})
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_2", AccountID: "acc_a", Active: &on})
	if w := h.webhook("wh_2"); !w.Active || w.ActiveSince != h.idx || len(w.Gaps) != 0 || w.Takes(h.idx-1) {
		t.Fatalf("resumed with the cursor past the pause: %+v", w)
	}
	// An expired outcome fails the delivery, once: the same verdict from
	// another leader's dispatcher is not logged again.
	if d := h.delivery("wh_2", "dlv_4"); !d.ChainStart.Equal(e4.CreatedAt) {
		t.Fatalf("held before its first attempt: window from %s, want the event's time %s", d.ChainStart, e4.CreatedAt)
	}
	logged := h.count(store.BucketWebhookAttempts, "wh_2/")
	for _, id := range []string{"att_x", "att_x2"} {
		h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{{ID: id, WebhookID: "wh_2", DeliveryID: "dlv_4", Chain: 1, Number: 1, At: h.at, Outcome: api.AttemptExpired, Error: "not sent"}}})
	}
	if d := h.delivery("wh_2", "dlv_4"); d.Status != api.DeliveryFailed || h.count(store.BucketWebhookPending, "wh_2/") != 2 || h.count(store.BucketWebhookAttempts, "wh_2/") != logged+1 {
		t.Fatalf("expired twice: %+v, %d log entries, want %d", d.WebhookDelivery, h.count(store.BucketWebhookAttempts, "wh_2/"), logged+1)
	}
	// A redeliver's window starts at the redeliver (level 2), and its first
	// attempt keeps it.
	h.must(CmdWebhookRedeliver, WebhookRedeliver{WebhookID: "wh_2", AccountID: "acc_a", DeliveryID: "dlv_4"})
	redelivered := h.at // the command's time
	if d := h.delivery("wh_2", "dlv_4"); d.Chain != 2 || !d.ChainStart.Equal(redelivered) {
		t.Fatalf("redelivered: chain %d, window from %s, want 2 and %s", d.Chain, d.ChainStart, redelivered)
	}
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{{ID: "att_r", WebhookID: "wh_2", DeliveryID: "dlv_4", Chain: 2, Number: 1, At: h.at.Add(time.Hour), StatusCode: 204, Outcome: api.AttemptSucceeded}}})
	if d := h.delivery("wh_2", "dlv_4"); d.Status != api.DeliverySucceeded || !d.ChainStart.Equal(redelivered) {
		t.Fatalf("redelivered and sent: %+v, window from %s, want %s", d.WebhookDelivery, d.ChainStart, redelivered)
	}

	// A 410 at level 2 disables and holds its delivery and the others.
	h.must(CmdWebhookAttempts, WebhookAttempts{Attempts: []WebhookAttemptRecord{
		{ID: "att_g", WebhookID: "wh_2", DeliveryID: "dlv_2", Chain: 1, Number: 2, At: h.at, StatusCode: 410, Outcome: api.AttemptDisabled, Reason: "disabled after the receiver answered 410 Gone"},
	}})
	if w := h.webhook("wh_2"); w.Active || !w.Holding() || w.DisabledReason == "" {
		t.Fatalf("after a 410: %+v", w)
	}
	for _, id := range []string{"dlv_2", "dlv_3"} {
		if d := h.delivery("wh_2", id); d.Status != api.DeliveryPending || d.NextAttemptAt != nil {
			t.Fatalf("held after a 410 %s: %+v", id, d.WebhookDelivery)
		}
	}

	dump := func(f *FSM) []byte {
		var buf bytes.Buffer
		_ = f.View(func(tx *bolt.Tx) error {
			for _, b := range append(store.WebhookBuckets, store.BucketWebhooks) {
				_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
					fmt.Fprintf(&buf, "%s %x %x\n", b, k, v)
					return nil
				})
			}
			return nil
		})
		return buf.Bytes()
	}
	h.replicasSame(dump)
}
