package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

type whHarness struct {
	t    *testing.T
	fsms []*FSM
	idx  uint64
	at   time.Time
}

// newWHHarness applies every command to n FSMs so determinism can be checked.
func newWHHarness(t *testing.T, n int) *whHarness {
	h := &whHarness{t: t, at: time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)}
	for i := 0; i < n; i++ {
		f, err := Open(filepath.Join(t.TempDir(), fmt.Sprintf("fsm%d.db", i)), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		h.fsms = append(h.fsms, f)
	}
	return h
}

func (h *whHarness) apply(typ CommandType, p any) (any, error) {
	h.t.Helper()
	h.at = h.at.Add(time.Second)
	h.idx++
	l := logAt(h.t, h.idx, typ, h.at, p)
	var first *Result
	for _, f := range h.fsms {
		r := f.Apply(l).(*Result)
		if first == nil {
			first = r
		}
	}
	return first.Value, first.Err
}

// delivery is the first replica's record of wh's delivery dlv (the zero
// record when there is none).
func (h *whHarness) delivery(wh, dlv string) store.Delivery {
	var d store.Delivery
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		return store.GetJSON(tx, store.BucketWebhookDeliveries, store.WebhookKey(wh, dlv), &d)
	})
	return d
}

// webhook is the first replica's subscription id (the zero one when there is
// none).
func (h *whHarness) webhook(id string) store.Webhook {
	var w store.Webhook
	_ = h.fsms[0].View(func(tx *bolt.Tx) error { w, _ = store.Read(tx).WebhookByID(id); return nil })
	return w
}

// replicasSame fails the test unless dump reads the same bytes from the
// first two replicas.
func (h *whHarness) replicasSame(dump func(*FSM) []byte) {
	h.t.Helper()
	if !bytes.Equal(dump(h.fsms[0]), dump(h.fsms[1])) {
		h.t.Fatal("replicas differ")
	}
}

// putVPS2 puts the product vps-2 (2 vCPU, 4096 MB, 60 GB) at monthly cents.
func (h *whHarness) putVPS2(monthly int64) {
	h.t.Helper()
	h.must(CmdProductPut, ProductPut{Slug: "vps-2", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 2",
		RetailMonthlyUsdCents: monthly, Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60}}})
}

// helloHosting: node hv-1 says hello with the kvm and hosting roles
// (protocol 1.3).
func (h *whHarness) helloHosting() {
	h.t.Helper()
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm", "hosting"}, ProtocolVersion: 103})
}

// putWeb1 puts the hosting product web-1 (testQuota) at 500 cents a month.
func (h *whHarness) putWeb1() {
	h.t.Helper()
	h.must(CmdProductPut, ProductPut{Slug: "web-1", Create: true, Product: api.ProductRequest{Category: api.ProductHosting,
		NameEn: "Web 1", RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{Hosting: &testQuota}}})
}

// putDomainTest puts the product domain-test: .test at 1000 cents a year.
func (h *whHarness) putDomainTest() {
	h.t.Helper()
	h.must(CmdProductPut, ProductPut{Slug: "domain-test", Create: true, Product: api.ProductRequest{Category: api.ProductDomain,
		NameEn: ".test", Tld: "test", RetailYearlyUsdCents: 1000}})
}

// repeatChangesNothing applies typ p (a repeat of an applied command) and
// fails the test with msg when that changed what dump reads from the first
// replica.
func (h *whHarness) repeatChangesNothing(dump func(*FSM) []byte, msg string, typ CommandType, p any) {
	h.t.Helper()
	before := dump(h.fsms[0])
	h.must(typ, p)
	if !bytes.Equal(before, dump(h.fsms[0])) {
		h.t.Fatal(msg)
	}
}

func (h *whHarness) must(typ CommandType, p any) any {
	h.t.Helper()
	v, err := h.apply(typ, p)
	if err != nil {
		h.t.Fatalf("command %d: %v", typ, err)
	}
	return v
}

func (h *whHarness) count(bucket []byte, prefix string) int {
	n := 0
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n
}

func whCreate(id, acc string, max int) WebhookCreate {
	return WebhookCreate{ID: id, AccountID: acc, URL: "https://hooks.example.com/" + id, Events: []string{"*"}, SealedSecret: "v1.sealed", SecretHint: "abcd", MaxPerAccount: max}
}

func TestWebhookCommands(t *testing.T) {
	h := newWHHarness(t, 2)
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_a", Email: "a@example.com"})
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_b", Email: "b@example.com"})

	// A failing create leaves nothing behind.
	if _, err := h.apply(CmdWebhookCreate, whCreate("wh_x", "acc_missing", 2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("create for a missing account: %v", err)
	}
	if n := h.count(store.BucketWebhookIDs, ""); n != 0 {
		t.Fatalf("%d ids after a failed create", n)
	}
	w := h.must(CmdWebhookCreate, whCreate("wh_1", "acc_a", 2)).(api.Webhook)
	if w.Secret != store.MaskSecret("abcd") || !w.IsActive {
		t.Fatalf("created %+v", w)
	}
	h.must(CmdWebhookCreate, whCreate("wh_2", "acc_a", 2))
	if _, err := h.apply(CmdWebhookCreate, whCreate("wh_3", "acc_a", 2)); !errors.Is(err, ErrConflict) {
		t.Fatalf("create past the cap: %v", err)
	}
	h.must(CmdWebhookCreate, whCreate("wh_3", "acc_b", 2))

	// Another account's subscription is not found.
	for _, c := range []struct {
		t CommandType
		p any
	}{
		{CmdWebhookUpdate, WebhookUpdate{ID: "wh_1", AccountID: "acc_b", Description: new(string)}},
		{CmdWebhookDelete, WebhookDelete{ID: "wh_1", AccountID: "acc_b"}},
		{CmdWebhookRotateSecret, WebhookRotateSecret{ID: "wh_1", AccountID: "acc_b", SealedSecret: "v1.x"}},
		{CmdWebhookRedeliver, WebhookRedeliver{WebhookID: "wh_1", AccountID: "acc_b", DeliveryID: "dlv_1"}},
	} {
		if _, err := h.apply(c.t, c.p); !errors.Is(err, ErrNotFound) {
			t.Errorf("command %d across accounts: %v", c.t, err)
		}
	}

	// Attempts: the first creates the delivery; a retry keeps it pending.
	ev := store.Event{ID: "evt_1", Type: "ticket.created", AccountID: "acc_a", CreatedAt: h.at, Data: []byte(`{"ticketId":"tkt_1"}`)}
	next := h.at.Add(time.Minute)
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Cursor: store.OutboxKey(5, 0), Attempts: []WebhookAttemptRecord{
		{ID: "att_1", WebhookID: "wh_1", DeliveryID: "dlv_1", Chain: 1, Number: 1, At: h.at, StatusCode: 500, Outcome: api.AttemptRetrying, NextAttemptAt: &next, Event: &ev},
		{ID: "att_x", WebhookID: "wh_gone", DeliveryID: "dlv_9", Chain: 1, Number: 1, At: h.at, Outcome: api.AttemptSucceeded, Event: &ev},
	}})
	if h.count(store.BucketWebhookPending, "wh_1/") != 1 {
		t.Fatal("retrying delivery not pending")
	}
	// Pausing fails pending deliveries; the retry that arrives late cannot revive it.
	off := false
	if v := h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_1", AccountID: "acc_a", Active: &off}).(api.Webhook); v.IsActive || v.DisabledReason != "paused" {
		t.Fatalf("paused %+v", v)
	}
	if h.count(store.BucketWebhookPending, "") != 0 {
		t.Fatal("pending left after pause")
	}
	if _, err := h.apply(CmdWebhookRedeliver, WebhookRedeliver{WebhookID: "wh_1", AccountID: "acc_a", DeliveryID: "dlv_1"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("redeliver on a paused subscription: %v", err)
	}
	on := true
	h.must(CmdWebhookUpdate, WebhookUpdate{ID: "wh_1", AccountID: "acc_a", Active: &on})
	d := h.must(CmdWebhookRedeliver, WebhookRedeliver{WebhookID: "wh_1", AccountID: "acc_a", DeliveryID: "dlv_1"}).(api.WebhookDelivery)
	if d.Chain != 2 || d.Status != api.DeliveryPending || d.Attempts != 0 {
		t.Fatalf("redelivered %+v", d)
	}
	// An attempt of the old chain is logged but does not change the new chain.
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: []WebhookAttemptRecord{
		{ID: "att_2", WebhookID: "wh_1", DeliveryID: "dlv_1", Chain: 1, Number: 2, At: h.at, Outcome: api.AttemptSucceeded},
	}})
	if got := h.delivery("wh_1", "dlv_1"); got.Status != api.DeliveryPending || got.Chain != 2 {
		t.Fatalf("stale attempt changed the delivery: %+v", got.WebhookDelivery)
	}
	// The log keeps the newest Keep entries; terminal deliveries are pruned too.
	var batch []WebhookAttemptRecord
	for i := 0; i < 6; i++ {
		e := ev
		e.ID = fmt.Sprintf("evt_%d", 10+i)
		batch = append(batch, WebhookAttemptRecord{ID: fmt.Sprintf("att_%d", 10+i), WebhookID: "wh_1", DeliveryID: fmt.Sprintf("dlv_%d", 10+i), Chain: 1, Number: 1, At: h.at, StatusCode: 200, Outcome: api.AttemptSucceeded, Event: &e})
	}
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: batch})
	if n := h.count(store.BucketWebhookAttempts, "wh_1/"); n != 3 {
		t.Fatalf("log has %d entries, want 3", n)
	}
	if n := h.count(store.BucketWebhookDeliveries, "wh_1/"); n != 3 {
		t.Fatalf("%d deliveries kept, want 3", n)
	}
	var kept bool
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		kept = tx.Bucket(store.BucketWebhookDeliveries).Get(store.WebhookKey("wh_1", "dlv_1")) != nil
		return nil
	})
	if !kept {
		t.Fatal("the pending delivery was pruned")
	}
	// A 410 disables the subscription.
	h.must(CmdWebhookAttempts, WebhookAttempts{Keep: 3, Attempts: []WebhookAttemptRecord{
		{ID: "att_g", WebhookID: "wh_2", DeliveryID: "dlv_g", Chain: 1, Number: 1, At: h.at, StatusCode: 410, Outcome: api.AttemptDisabled, Event: &ev},
	}})
	if w2 := h.webhook("wh_2"); w2.Active || w2.DisabledReason == "" {
		t.Fatalf("410 did not disable: %+v", w2)
	}
	// Delete removes the subscription and everything under it.
	h.must(CmdWebhookDelete, WebhookDelete{ID: "wh_1", AccountID: "acc_a"})
	for _, b := range [][]byte{store.BucketWebhookDeliveries, store.BucketWebhookAttempts, store.BucketWebhookPending} {
		if n := h.count(b, "wh_1/"); n != 0 {
			t.Fatalf("%s keeps %d entries of a deleted subscription", b, n)
		}
	}
	// Every replica holds the same bytes.
	dump := func(f *FSM) string {
		var buf bytes.Buffer
		_ = f.View(func(tx *bolt.Tx) error {
			for _, b := range store.WebhookBuckets {
				_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
					fmt.Fprintf(&buf, "%s %x %x\n", b, k, v)
					return nil
				})
			}
			return nil
		})
		return buf.String()
	}
	if dump(h.fsms[0]) != dump(h.fsms[1]) {
		t.Fatal("replicas diverged")
	}
}
