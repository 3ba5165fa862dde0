package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func renewalServer(t *testing.T, h *whHarness, id string) store.Server {
	t.Helper()
	return readOne(t, h.fsms[0], func(r store.ReadTx) (store.Server, error) { return r.OwnedServer("acc_1", id) })
}

func countEvents(t *testing.T, h *whHarness, typ string) int {
	n := 0
	for _, e := range outboxTypes(t, h.fsms[0]) {
		if e == typ {
			n++
		}
	}
	return n
}

// twoVPS2Orders sets the vps-2 plan at 1200 cents a month, credits acc_1's
// wallet with walletCents and orders two vps-2 servers (srv_1 and srv_2, their
// provisioning actions act_1 and act_2 left open).
func twoVPS2Orders(h *whHarness, walletCents int64) {
	h.t.Helper()
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: walletCents})
	h.must(CmdServerOrder, testOrder(1, "vps-2"))
	h.must(CmdServerOrder, testOrder(2, "vps-2"))
}

// sweepAt applies a renewal sweep of the servers at the injected time at.
func sweepAt(h *whHarness, at time.Time, p RenewalPolicy, srv ...string) RenewalSweepResult {
	h.t.Helper()
	h.at = at.Add(-time.Second) // apply adds one second
	var refs []ServiceRef
	for _, s := range srv {
		refs = append(refs, ServiceRef{AccountID: "acc_1", ServerID: s})
	}
	return h.must(CmdRenewalSweep, RenewalSweep{Policy: p, Servers: refs}).(RenewalSweepResult)
}

// TestRenewalLifecycle: with the command's time injected, on two replicas:
// one renewal invoice per server and period (sweeps repeated or listing a
// server twice change nothing), payment from the wallet on the due date,
// suspension at due+S (stopped through a stop action, power-on refused 409
// suspended, server.suspended once), a wallet top-up that settles the
// invoice lifts it once, termination at due+T; the replicas stay
// byte-identical.
func TestRenewalLifecycle(t *testing.T) {
	h := newServerHarness(t)
	twoVPS2Orders(h, 2400)
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: true}, {ID: "act_2", Success: true}}})
	pol := RenewalPolicy{InvoiceDays: 7, SuspendDays: 3, TerminateDays: 10}
	// srv_2 was ordered a second after srv_1: each step is at srv_2's time.
	due := *renewalServer(t, h, "srv_2").PaidUntil
	due1 := *renewalServer(t, h, "srv_1").PaidUntil
	if balance(t, h.fsms[0], "acc_1") != 0 {
		t.Fatal("the orders should have used the wallet up")
	}

	if r := sweepAt(h, due.AddDate(0, 0, -8), pol, "srv_1", "srv_2"); r != (RenewalSweepResult{}) {
		t.Fatalf("sweep before the window: %+v", r)
	}
	if r := sweepAt(h, due.AddDate(0, 0, -7), pol, "srv_1", "srv_1", "srv_2"); r.Invoiced != 2 {
		t.Fatalf("sweep at the window (srv_1 listed twice): %+v, want 2 invoices", r)
	}
	s1 := renewalServer(t, h, "srv_1")
	if s1.Renewal == nil || !s1.Renewal.PeriodStart.Equal(due1) || !s1.Renewal.PeriodEnd.Equal(due1.AddDate(0, 1, 0)) {
		t.Fatalf("renewal %+v", s1.Renewal)
	}
	before := orderDump(h.fsms[0])
	for _, at := range []time.Time{due.AddDate(0, 0, -7), due.AddDate(0, 0, -1)} {
		if r := sweepAt(h, at, pol, "srv_1", "srv_2"); r != (RenewalSweepResult{}) {
			t.Fatalf("a repeated sweep did %+v", r)
		}
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) {
		t.Fatal("a repeated sweep changed the state")
	}
	if n := countEvents(t, h, "invoice.created"); n != 4 {
		t.Fatalf("%d invoice.created, want 4 (2 orders, 2 renewals)", n)
	}

	// Unpaid on the due date: nothing yet (S = 3 days); at due+3 suspended.
	if r := sweepAt(h, due, pol, "srv_1", "srv_2"); r != (RenewalSweepResult{}) {
		t.Fatalf("due date with an empty wallet: %+v", r)
	}
	if r := sweepAt(h, due.AddDate(0, 0, 3), pol, "srv_1", "srv_2"); r.Suspended != 2 || r.Stopped != 2 || r.Paid != 0 {
		t.Fatalf("due+3: %+v", r)
	}
	s1 = renewalServer(t, h, "srv_1")
	if s1.Suspension == nil || s1.Suspension.By != store.SuspendNonPayment || !strings.Contains(s1.Suspension.Reason, "unpaid") {
		t.Fatalf("suspension %+v", s1.Suspension)
	}
	var stop store.Action
	err := h.fsms[0].Read(func(r store.ReadTx) (err error) { stop, err = r.Action(s1.ActionID); return })
	if err != nil || stop.Command != api.ActionServerStop {
		t.Fatalf("stop action %+v %v", stop, err)
	}
	if r := sweepAt(h, due.AddDate(0, 0, 4), pol, "srv_1", "srv_2"); r != (RenewalSweepResult{}) {
		t.Fatalf("second sweep of suspended servers: %+v", r)
	}
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: s1.ActionID, Success: true}, {ID: renewalServer(t, h, "srv_2").ActionID, Success: true}}})
	if s := renewalServer(t, h, "srv_1"); s.Status != api.ServerStopped {
		t.Fatalf("suspended server %s", s.Status)
	}
	start := store.Action{Action: api.Action{ID: "act_start", Command: api.ActionServerStart, ResourceID: "srv_1"}, AccountID: "acc_1",
		NodeID: "hv-1", Target: "hp-srv_1", Mutating: true, Deadline: due.AddDate(1, 0, 0)}
	var susp *SuspendedError
	if _, err := h.apply(CmdActionCreate, ActionCreate{Action: start}); !errors.As(err, &susp) || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "unpaid") {
		t.Fatalf("power-on of a suspended server: %v", err)
	}
	if n := countEvents(t, h, "server.suspended"); n != 2 {
		t.Fatalf("%d server.suspended, want 2", n)
	}

	// A top-up covering one renewal settles srv_1 (suspended first? both at
	// the same time: key order) and lifts its suspension, once.
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 1200})
	s1, s2 := renewalServer(t, h, "srv_1"), renewalServer(t, h, "srv_2")
	if s1.Suspension != nil || !s1.PaidUntil.Equal(due1.AddDate(0, 1, 0)) || s2.Suspension == nil || !s2.PaidUntil.Equal(due) {
		t.Fatalf("after the top-up: srv_1 %v %+v, srv_2 %v %+v", s1.PaidUntil, s1.Suspension, s2.PaidUntil, s2.Suspension)
	}
	if balance(t, h.fsms[0], "acc_1") != 0 || countEvents(t, h, "invoice.paid") != 3 {
		t.Fatalf("balance %d, invoice.paid %d", balance(t, h.fsms[0], "acc_1"), countEvents(t, h, "invoice.paid"))
	}
	h.must(CmdActionCreate, ActionCreate{Action: start}) // unsuspended: it may start again
	h.must(CmdActionFinish, ActionFinish{ID: "act_start", Success: true})

	// srv_2 unpaid at due+10: terminated through a terminate action, once.
	if r := sweepAt(h, due.AddDate(0, 0, 10), pol, "srv_1", "srv_2"); r.Terminating != 1 || r.Invoiced != 0 {
		t.Fatalf("due+10: %+v", r)
	}
	term := renewalServer(t, h, "srv_2").ActionID
	if r := sweepAt(h, due.AddDate(0, 0, 11), pol, "srv_2"); r != (RenewalSweepResult{}) {
		t.Fatalf("a terminate in flight, second sweep: %+v", r)
	}
	h.must(CmdActionFinish, ActionFinish{ID: term, Success: true})
	if s := renewalServer(t, h, "srv_2"); s.Status != api.ServerTerminated || countEvents(t, h, "server.terminated") != 1 {
		t.Fatalf("srv_2 %s, %d server.terminated", s.Status, countEvents(t, h, "server.terminated"))
	}

	// The next period of srv_1: invoiced 7 days before, paid from the wallet
	// on the due date, once.
	due2 := due1.AddDate(0, 1, 0)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep3", AccountID: "acc_1", AmountUsdCents: 1500})
	if r := sweepAt(h, due2.AddDate(0, 0, -7), pol, "srv_1", "srv_2"); r.Invoiced != 1 || r.Paid != 0 {
		t.Fatalf("second period window: %+v", r)
	}
	if r := sweepAt(h, due2, pol, "srv_1"); r.Paid != 1 {
		t.Fatalf("second period due: %+v", r)
	}
	if r := sweepAt(h, due2, pol, "srv_1"); r != (RenewalSweepResult{}) {
		t.Fatalf("a second sweep at the due date: %+v", r)
	}
	if s := renewalServer(t, h, "srv_1"); !s.PaidUntil.Equal(due2.AddDate(0, 1, 0)) || balance(t, h.fsms[0], "acc_1") != 300 {
		t.Fatalf("paid until %v, balance %d", s.PaidUntil, balance(t, h.fsms[0], "acc_1"))
	}
	h.replicasSame(orderDump)
}

// TestRenewalPaidByInvoicePay: paying the renewal invoice (POST
// /v1/invoices/:id/pay or an operator's payment) before the sweep extends
// paid_until and lifts a suspension for non-payment; a sweep then pays
// nothing twice. A bad policy or an oversized batch is refused.
func TestRenewalPaidByInvoicePay(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdProductPut, ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 1024, DiskGB: 20}}})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 500})
	h.must(CmdServerOrder, testOrder(1, "vps-1"))
	due := *renewalServer(t, h, "srv_1").PaidUntil
	pol := RenewalPolicy{InvoiceDays: 3}
	sweepAt(h, due, pol, "srv_1") // invoiced and, unpaid, suspended at once (S = 0)
	s := renewalServer(t, h, "srv_1")
	if s.Suspension == nil || s.Renewal == nil {
		t.Fatalf("server %+v", s)
	}
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_small", AccountID: "acc_1", AmountUsdCents: 100}) // too little: still suspended
	if renewalServer(t, h, "srv_1").Suspension == nil {
		t.Fatal("a top-up short of the invoice lifted the suspension")
	}
	if _, err := h.apply(CmdInvoicePay, InvoicePay{InvoiceID: s.Renewal.InvoiceID, PaymentID: "pay_x", TxID: "wtx_x"}); !errors.Is(err, ErrInsufficientFunds) {
		t.Fatalf("pay with 100 of 500: %v", err)
	}
	// An operator's credit without the settling amount, then the invoice paid.
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_more", AccountID: "acc_1", AmountUsdCents: 300})
	if renewalServer(t, h, "srv_1").Suspension == nil {
		t.Fatal("400 of 500 lifted the suspension")
	}
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_last", AccountID: "acc_1", AmountUsdCents: 100})
	s = renewalServer(t, h, "srv_1")
	if s.Suspension != nil || !s.PaidUntil.Equal(due.AddDate(0, 1, 0)) || balance(t, h.fsms[0], "acc_1") != 0 {
		t.Fatalf("after settling: %+v %v", s.Suspension, s.PaidUntil)
	}
	if _, err := h.apply(CmdInvoicePay, InvoicePay{InvoiceID: s.Renewal.InvoiceID, PaymentID: "pay_y", TxID: "wtx_y"}); err != nil {
		t.Fatal(err)
	}
	if s2 := renewalServer(t, h, "srv_1"); !s2.PaidUntil.Equal(*s.PaidUntil) {
		t.Fatal("a second payment of the same invoice moved paid_until")
	}
	if r := sweepAt(h, due.AddDate(0, 0, 1), pol, "srv_1"); r != (RenewalSweepResult{}) {
		t.Fatalf("sweep after payment: %+v", r)
	}
	if countEvents(t, h, "server.suspended") != 1 || countEvents(t, h, "invoice.paid") != 2 {
		t.Fatalf("events %v", outboxTypes(t, h.fsms[0]))
	}
	before := orderDump(h.fsms[0])
	for _, bad := range []RenewalSweep{
		{Policy: RenewalPolicy{InvoiceDays: -1}},
		{Policy: RenewalPolicy{SuspendDays: 10, TerminateDays: 5}},
		{Servers: make([]ServiceRef, MaxRenewalBatch+1)},
	} {
		if _, err := h.apply(CmdRenewalSweep, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("sweep %+v: %v", bad.Policy, err)
		}
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) || !bytes.Equal(before, orderDump(h.fsms[1])) {
		t.Fatal("refused sweeps changed the state, or the replicas differ")
	}
}
