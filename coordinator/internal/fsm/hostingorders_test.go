package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

func hostingOrderDump(f *FSM) []byte {
	return bucketDump(f, append(append([][]byte{}, store.HostingBuckets...), store.BucketActions, store.BucketOutbox, store.BucketAccounts,
		store.BucketWalletTx, store.BucketInvoices, store.BucketInvoiceIDs, store.BucketOwnerIDs, store.BucketCounters)...)
}

var testQuota = api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 96, MaxExecutionSeconds: 20, UploadMiB: 16, DiskMiB: 2048}

func testHostingOrder(n int, slug string) HostingOrder {
	id, user := fmt.Sprintf("hst_%d", n), fmt.Sprintf("user%d", n)
	return HostingOrder{
		OrderCharge: OrderCharge{PlanSlug: slug, InvoiceID: fmt.Sprintf("inv_h%d", n), PaymentID: fmt.Sprintf("pay_h%d", n), TxID: fmt.Sprintf("wtx_h%d", n)},
		Create: HostingCreate{
			Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user, Domain: user + ".example", PHPVersion: "8.2"},
				AccountID: "acc_1", NodeID: "hv-1"},
			Action: store.Action{Action: api.Action{ID: fmt.Sprintf("act_h%d", n), Command: api.ActionHostingCreate, ResourceID: id},
				NodeID: "hv-1", Target: user, Deadline: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), NeedsSecret: true},
		},
	}
}

// webHarness: node hv-1 (kvm, hosting), the hosting product web-1 at 500
// cents a month and acc_1's wallet credited walletCents.
func webHarness(t *testing.T, walletCents int64) *whHarness {
	h := newServerHarness(t)
	h.helloHosting()
	h.putWeb1()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: walletCents})
	return h
}

// activeHosting is webHarness with acc_1's hosting account hst_1 (user1)
// ordered and created; due is the end of its first month.
func activeHosting(t *testing.T, walletCents int64) (h *whHarness, due time.Time) {
	h = webHarness(t, walletCents)
	h.must(CmdHostingOrder, testHostingOrder(1, "web-1"))
	h.must(CmdActionFinish, ActionFinish{ID: "act_h1", Success: true})
	return h, *hostingAt(t, h, "hst_1").PaidUntil
}

func hostingAt(t *testing.T, h *whHarness, id string) store.HostingAccount {
	t.Helper()
	return readOne(t, h.fsms[0], func(r store.ReadTx) (store.HostingAccount, error) { return r.OwnedHostingAccount("acc_1", id) })
}

// TestHostingOrder: a hosting order debits the account's price of a hosting
// product, issues the paid invoice and creates the account with the
// product's quotas and its first month paid, in one command; refusals (a vps
// plan, a short wallet, a taken username) change nothing; a hosting.create
// that fails refunds the order once; the replicas stay byte-identical.
func TestHostingOrder(t *testing.T) {
	h := newServerHarness(t)
	h.helloHosting()
	if _, err := h.apply(CmdProductPut, ProductPut{Slug: "web-1", Create: true, Product: api.ProductRequest{Category: api.ProductHosting,
		NameEn: "Web 1", RetailMonthlyUsdCents: 500}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "specs.hosting") {
		t.Fatalf("a hosting product without quotas: %v", err)
	}
	h.putWeb1()
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 700})

	before := hostingOrderDump(h.fsms[0])
	if _, err := h.apply(CmdHostingOrder, testHostingOrder(1, "vps-2")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"plan_slug"`) {
		t.Fatalf("a vps plan: %v", err)
	}
	if !bytes.Equal(before, hostingOrderDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}
	v := h.must(CmdHostingOrder, testHostingOrder(1, "web-1")).(api.HostingOrder)
	if v.Invoice.TotalUsdCents != 500 || v.Invoice.Status != api.InvoicePaid || v.Hosting.Limits != testQuota || v.Hosting.Plan != "web-1" ||
		v.Hosting.PaidUntil == nil || !v.Hosting.PaidUntil.Equal(h.at.AddDate(0, 1, 0)) || v.Action.Command != api.ActionHostingCreate {
		t.Fatalf("order %+v", v)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 200 {
		t.Fatalf("balance %d, want 200", b)
	}
	mid := hostingOrderDump(h.fsms[0])
	_, err := h.apply(CmdHostingOrder, testHostingOrder(2, "web-1"))
	var short *ShortfallError
	if !errors.As(err, &short) || short.ShortfallUsdCents() != 300 {
		t.Fatalf("order with 200 cents for 500: %v", err)
	}
	if !bytes.Equal(mid, hostingOrderDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 800})
	mid = hostingOrderDump(h.fsms[0])
	dup := testHostingOrder(2, "web-1")
	dup.Create.Hosting.Username, dup.Create.Action.Target = "user1", "user1"
	var fc *FieldConflictError
	if _, err := h.apply(CmdHostingOrder, dup); !errors.As(err, &fc) || fc.Field != "username" {
		t.Fatalf("a taken username: %v", err)
	}
	if !bytes.Equal(mid, hostingOrderDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}
	h.must(CmdHostingOrder, testHostingOrder(2, "web-1"))
	if b := balance(t, h.fsms[0], "acc_1"); b != 500 {
		t.Fatalf("balance %d, want 500", b)
	}

	// hst_2's create fails on the node: refunded once, in that command.
	fail := ActionFinish{ID: "act_h2", ErrorCode: "php_missing", ErrorMessage: "PHP 8.2 is not installed"}
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_h1", Success: true}, fail}})
	h.repeatChangesNothing(hostingOrderDump, "a repeated failure changed the state", CmdActionFinish, fail)
	if b := balance(t, h.fsms[0], "acc_1"); b != 1000 {
		t.Fatalf("balance %d after the refund, want 1000", b)
	}
	if a := hostingAt(t, h, "hst_2"); a.Status != api.HostingError || a.PaidUntil != nil {
		t.Fatalf("failed account %+v", a)
	}
	if a := hostingAt(t, h, "hst_1"); a.Status != api.HostingActive {
		t.Fatalf("account %+v", a)
	}
	_ = h.fsms[0].Read(func(r store.ReadTx) error {
		a, err := r.Action("act_h2")
		if err != nil || !strings.Contains(a.Error.Message, "500 cents were refunded") {
			t.Fatalf("action %+v %v", a, err)
		}
		return nil
	})
	h.replicasSame(hostingOrderDump)
}

// TestHostingRenewal: the renewal sweep renews a bought hosting account like
// a server: one invoice per period, paid from the wallet on the due date,
// suspension at due+S (hosting.suspended once, a hosting.suspend action;
// the customer's unsuspend refused 409 suspended), a top-up lifts it once
// (hosting.unsuspended, a hosting.unsuspend action), termination at due+T
// deletes it; the candidates list only what a sweep changes.
func TestHostingRenewal(t *testing.T) {
	h, due := activeHosting(t, 1000)
	pol := RenewalPolicy{InvoiceDays: 7, SuspendDays: 3, TerminateDays: 10}
	ref := []ServiceRef{{AccountID: "acc_1", HostingID: "hst_1"}}
	sweep := func(at time.Time) RenewalSweepResult {
		t.Helper()
		h.at = at.Add(-time.Second)
		return h.must(CmdRenewalSweep, RenewalSweep{Policy: pol, Servers: ref}).(RenewalSweepResult)
	}
	cands := func(at time.Time) int {
		t.Helper()
		var refs []ServiceRef
		if err := h.fsms[0].View(func(tx *bolt.Tx) (err error) { refs, err = RenewalCandidates(tx, pol, at); return }); err != nil {
			t.Fatal(err)
		}
		return len(refs)
	}
	if cands(due.AddDate(0, 0, -8)) != 0 || cands(due.AddDate(0, 0, -7)) != 1 {
		t.Fatal("candidates around the renewal window")
	}
	if r := sweep(due.AddDate(0, 0, -7)); r.Invoiced != 1 {
		t.Fatalf("window: %+v", r)
	}
	// Paid from the wallet (500 left) on the due date.
	if r := sweep(due); r.Paid != 1 || balance(t, h.fsms[0], "acc_1") != 0 {
		t.Fatalf("due: %+v, balance %d", r, balance(t, h.fsms[0], "acc_1"))
	}
	due2 := *hostingAt(t, h, "hst_1").PaidUntil
	if !due2.Equal(due.AddDate(0, 1, 0)) {
		t.Fatalf("paid until %v", due2)
	}
	sweep(due2.AddDate(0, 0, -7))
	if r := sweep(due2); r != (RenewalSweepResult{}) {
		t.Fatalf("an empty wallet before the suspension day: %+v", r)
	}
	r := sweep(due2.AddDate(0, 0, 3))
	a := hostingAt(t, h, "hst_1")
	if r.Suspended != 1 || r.Stopped != 1 || a.Suspension == nil || a.ActionID == "" {
		t.Fatalf("suspension day: %+v, account %+v", r, a)
	}
	if cands(due2.AddDate(0, 0, 4)) != 0 {
		t.Fatal("a suspended account whose suspend runs is a candidate")
	}
	h.must(CmdActionFinish, ActionFinish{ID: a.ActionID, Success: true})
	if a = hostingAt(t, h, "hst_1"); a.Status != api.HostingSuspended {
		t.Fatalf("after the suspend action: %+v", a)
	}
	_, err := h.apply(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_cust", Command: api.ActionHostingUnsuspend,
		ResourceID: "hst_1"}, AccountID: "acc_1", NodeID: "hv-1", Target: "user1", Deadline: h.at.Add(time.Hour)}})
	var susp *SuspendedError
	if !errors.As(err, &susp) || !strings.Contains(err.Error(), "is unpaid") {
		t.Fatalf("the customer's unsuspend: %v", err)
	}
	// A top-up pays the renewal and lifts the suspension, once.
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep3", AccountID: "acc_1", AmountUsdCents: 500})
	a = hostingAt(t, h, "hst_1")
	if a.Suspension != nil || a.Resume || a.ActionID == "" || !a.PaidUntil.Equal(due2.AddDate(0, 1, 0)) {
		t.Fatalf("after the top-up: %+v", a)
	}
	var act store.Action
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { act, err = r.Action(a.ActionID); return })
	if act.Command != api.ActionHostingUnsuspend {
		t.Fatalf("action %+v", act)
	}
	h.must(CmdActionFinish, ActionFinish{ID: a.ActionID, Success: true})
	if a = hostingAt(t, h, "hst_1"); a.Status != api.HostingActive {
		t.Fatalf("after the unsuspend action: %+v", a)
	}
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep4", AccountID: "acc_1", AmountUsdCents: 1})
	for typ, want := range map[string]int{"hosting.suspended": 1, "hosting.unsuspended": 1, "invoice.created": 3, "invoice.paid": 3} {
		if n := countEvents(t, h, typ); n != want {
			t.Errorf("%s: %d events, want %d", typ, n, want)
		}
	}
	// Unpaid again, terminated at due+T: hosting.delete.
	due3 := *a.PaidUntil
	sweep(due3.AddDate(0, 0, -7))
	sweep(due3.AddDate(0, 0, 3))
	a = hostingAt(t, h, "hst_1")
	h.must(CmdActionFinish, ActionFinish{ID: a.ActionID, Success: true}) // the suspend
	if r := sweep(due3.AddDate(0, 0, 10)); r.Terminating != 1 {
		t.Fatalf("termination day: %+v", r)
	}
	a = hostingAt(t, h, "hst_1")
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { act, err = r.Action(a.ActionID); return })
	if act.Command != api.ActionHostingDelete {
		t.Fatalf("termination action %+v", act)
	}
	h.must(CmdActionFinish, ActionFinish{ID: a.ActionID, Success: true})
	if a = hostingAt(t, h, "hst_1"); a.Status != api.HostingDeleted || cands(due3.AddDate(0, 0, 40)) != 0 {
		t.Fatalf("after termination: %+v", a)
	}
	h.replicasSame(hostingOrderDump)
}

// TestHostingResumeNotLeftPending: a top-up lifts a non-payment
// suspension while the customer's own action runs on the account (so the
// node's hosting.unsuspend waits, Resume); the customer then unsuspends the
// account themselves. Later they suspend it again on purpose: no sweep may
// undo that with the hosting.unsuspend still pending from the payment.
func TestHostingResumeNotLeftPending(t *testing.T) {
	h, due := activeHosting(t, 500)
	pol := RenewalPolicy{InvoiceDays: 7, SuspendDays: 3}
	ref := []ServiceRef{{AccountID: "acc_1", HostingID: "hst_1"}}
	sweep := func(at time.Time) RenewalSweepResult {
		t.Helper()
		h.at = at
		return h.must(CmdRenewalSweep, RenewalSweep{Policy: pol, Servers: ref}).(RenewalSweepResult)
	}
	customer := func(id, command string) {
		t.Helper()
		p := HostingAction{Action: store.Action{Action: api.Action{ID: id, Command: command, ResourceID: "hst_1"},
			AccountID: "acc_1", NodeID: "hv-1", Target: "user1", Deadline: h.at.Add(time.Hour)}}
		if command == api.ActionHostingSetPHP {
			p.PHPVersion = "8.3"
		}
		h.must(CmdHostingAction, p)
		h.must(CmdActionFinish, ActionFinish{ID: id, Success: true})
	}
	sweep(due.AddDate(0, 0, -7))
	if r := sweep(due.AddDate(0, 0, 3)); r.Suspended != 1 {
		t.Fatalf("suspension day: %+v", r)
	}
	h.must(CmdActionFinish, ActionFinish{ID: hostingAt(t, h, "hst_1").ActionID, Success: true}) // the suspend
	// The customer's PHP change runs while the top-up lifts the suspension.
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_php", Command: api.ActionHostingSetPHP, ResourceID: "hst_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "user1", Deadline: h.at.Add(time.Hour)}, PHPVersion: "8.3"})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 500})
	h.must(CmdActionFinish, ActionFinish{ID: "act_php", Success: true})
	// Before any sweep, the customer unsuspends it, later suspends it.
	customer("act_un", api.ActionHostingUnsuspend)
	customer("act_su", api.ActionHostingSuspend)
	sweep(due.AddDate(0, 0, 4))
	if a := hostingAt(t, h, "hst_1"); a.Status != api.HostingSuspended || a.ActionID != "" || a.Resume {
		t.Fatalf("the customer's own suspension after a sweep: %+v (a hosting.unsuspend was opened: %v)", a, a.ActionID != "")
	}
	h.replicasSame(hostingOrderDump)
}
