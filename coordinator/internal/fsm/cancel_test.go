package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

func cancelServer(h *whHarness, srv string) {
	h.t.Helper()
	id := "act_cancel_" + srv
	h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: id, Command: api.ActionServerTerminate, ResourceID: srv},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-" + srv, Deadline: h.at.Add(time.Hour)}})
	h.must(CmdActionFinish, ActionFinish{ID: id, Success: true})
}

func invoiceOf(t *testing.T, h *whHarness, id string) store.Invoice {
	t.Helper()
	var inv store.Invoice
	if err := h.fsms[0].View(func(tx *bolt.Tx) error {
		return store.GetJSON(tx, store.BucketInvoices, store.OwnedKey("acc_1", id), &inv)
	}); err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestCancellationRefund: the refund policy on deletion. A server deleted
// 10 days into its first month gets the unused whole days back pro rata
// (through the order's invoice); one deleted after its renewal invoice was
// issued but not paid gets its unused days back and the renewal invoice
// becomes void (paying it is a 409); one deleted in a renewed period is
// refunded through the renewal's invoice; a deletion after paid_until
// refunds nothing. Once each; replicas byte-identical.
func TestCancellationRefund(t *testing.T) {
	h := newServerHarness(t)
	h.putVPS2(3000)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 12000})
	for i := 1; i <= 3; i++ {
		h.must(CmdServerOrder, testOrder(i, "vps-2"))
	}
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: true}, {ID: "act_2", Success: true}, {ID: "act_3", Success: true}}})
	due := *renewalServer(t, h, "srv_3").PaidUntil
	period := int64((due.Sub(due.AddDate(0, -1, 0)) + 12*time.Hour) / (24 * time.Hour))
	bal := balance(t, h.fsms[0], "acc_1") // 3000 left

	// srv_1: deleted 10 days (and a bit) into the month.
	h.at = due.AddDate(0, -1, 10).Add(time.Hour)
	cancelServer(h, "srv_1")
	unused := period - 10 - 1 // whole days left of the period
	want := 3000 * unused / period
	if got := balance(t, h.fsms[0], "acc_1") - bal; got != want {
		t.Fatalf("refund of srv_1 %d, want %d (%d of %d days)", got, want, unused, period)
	}
	if s := renewalServer(t, h, "srv_1"); s.PaidUntil != nil {
		t.Fatalf("deleted server still paid until %v", s.PaidUntil)
	}
	bal += want

	// srv_2: its renewal invoice issued, deleted 3 days before it is due.
	pol := RenewalPolicy{InvoiceDays: 7, SuspendDays: 3}
	sweepAt(h, due.AddDate(0, 0, -7), pol, "srv_2", "srv_3")
	renewal2 := renewalServer(t, h, "srv_2").Renewal.InvoiceID
	h.at = due.AddDate(0, 0, -3).Add(-2 * time.Hour)
	cancelServer(h, "srv_2")
	if got := balance(t, h.fsms[0], "acc_1") - bal; got != 3000*3/period { // 3 whole days left
		t.Fatalf("refund of srv_2 %d, want %d", got, 3000*3/period)
	}
	if inv := invoiceOf(t, h, renewal2); inv.Status != api.InvoiceVoid {
		t.Fatalf("renewal invoice of the deleted server: %+v", inv)
	}
	if _, err := h.apply(CmdInvoicePay, InvoicePay{InvoiceID: renewal2, PaymentID: "pay_v", TxID: "wtx_v"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "void") {
		t.Fatalf("paying a void invoice: %v", err)
	}

	// srv_3: renewed on the due date, deleted 5 days into the new period:
	// refunded through the renewal invoice.
	sweepAt(h, due, pol, "srv_3")
	bal = balance(t, h.fsms[0], "acc_1")
	s3 := renewalServer(t, h, "srv_3")
	period2 := int64((s3.PaidUntil.Sub(due) + 12*time.Hour) / (24 * time.Hour))
	h.at = due.AddDate(0, 0, 5).Add(time.Minute)
	cancelServer(h, "srv_3")
	want3 := 3000 * (period2 - 5 - 1) / period2
	if got := balance(t, h.fsms[0], "acc_1") - bal; got != want3 {
		t.Fatalf("refund of srv_3 %d, want %d", got, want3)
	}
	if inv := invoiceOf(t, h, s3.Renewal.InvoiceID); len(inv.Payments) != 2 || inv.Payments[1].AmountUsdCents != -want3 {
		t.Fatalf("renewal invoice after the refund: %+v", inv)
	}
	// Refunded once: a repeated result changes nothing.
	h.repeatChangesNothing(orderDump, "a repeated terminate result changed the state", CmdActionFinish, ActionFinish{ID: "act_cancel_srv_3", Success: true})
	h.replicasSame(orderDump)
}

// TestOperatorSuspension: an operator suspends a running server (forced
// stop, server.suspended with the reason, power-on refused 409 suspended);
// paying its renewal does not lift it; an operator's unsuspend does
// (server.unsuspended); an operator cannot lift a suspension for
// non-payment; a hosting account is suspended and resumed on its node.
func TestOperatorSuspension(t *testing.T) {
	h := newServerHarness(t)
	h.helloHosting()
	h.putVPS2(1000)
	h.putWeb1()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 1500})
	h.must(CmdServerOrder, testOrder(1, "vps-2"))
	h.must(CmdHostingOrder, testHostingOrder(1, "web-1"))
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: true}, {ID: "act_h1", Success: true}}})
	srv := ServiceRef{AccountID: "acc_1", ServerID: "srv_1"}

	if _, err := h.apply(CmdServiceSuspend, ServiceSuspend{Ref: srv, Suspend: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a suspension without a reason: %v", err)
	}
	if _, err := h.apply(CmdServiceSuspend, ServiceSuspend{Ref: srv}); !errors.Is(err, ErrConflict) {
		t.Fatalf("unsuspending a server that is not suspended: %v", err)
	}
	out := h.must(CmdServiceSuspend, ServiceSuspend{Ref: srv, Suspend: true, Reason: "abuse report #42"}).(ServiceSuspended)
	if out.Suspension == nil || out.Suspension.By != store.SuspendOperator || out.ActionID == "" {
		t.Fatalf("suspend: %+v", out)
	}
	h.must(CmdActionFinish, ActionFinish{ID: out.ActionID, Success: true})
	if s := renewalServer(t, h, "srv_1"); s.Status != api.ServerStopped {
		t.Fatalf("suspended server %+v", s)
	}
	_, err := h.apply(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_start", Command: api.ActionServerStart, ResourceID: "srv_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-srv_1", Deadline: h.at.Add(time.Hour)}})
	var susp *SuspendedError
	if !errors.As(err, &susp) || !strings.Contains(err.Error(), "abuse report #42") {
		t.Fatalf("power-on of a suspended server: %v", err)
	}
	// A renewal paid on its due date does not lift an operator's suspension.
	due := *renewalServer(t, h, "srv_1").PaidUntil
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 1000})
	pol := RenewalPolicy{InvoiceDays: 7, SuspendDays: 3}
	sweepAt(h, due.AddDate(0, 0, -7), pol, "srv_1")
	if r := sweepAt(h, due, pol, "srv_1"); r.Paid != 1 || renewalServer(t, h, "srv_1").Suspension == nil {
		t.Fatalf("after the renewal was paid: %+v %+v", r, renewalServer(t, h, "srv_1").Suspension)
	}
	h.must(CmdServiceSuspend, ServiceSuspend{Ref: srv})
	if s := renewalServer(t, h, "srv_1"); s.Suspension != nil {
		t.Fatalf("after the operator's unsuspend: %+v", s.Suspension)
	}
	if countEvents(t, h, "server.suspended") != 1 || countEvents(t, h, "server.unsuspended") != 1 {
		t.Fatal("server.suspended and server.unsuspended once each")
	}
	// Unpaid: suspended for non-payment, which an operator cannot lift.
	due2 := *renewalServer(t, h, "srv_1").PaidUntil
	sweepAt(h, due2.AddDate(0, 0, -7), pol, "srv_1")
	if r := sweepAt(h, due2.AddDate(0, 0, 3), pol, "srv_1"); r.Suspended != 1 {
		t.Fatalf("non-payment: %+v", r)
	}
	if _, err := h.apply(CmdServiceSuspend, ServiceSuspend{Ref: srv}); !errors.As(err, &susp) || !strings.Contains(err.Error(), "non-payment") {
		t.Fatalf("an operator lifting a non-payment suspension: %v", err)
	}

	// A hosting account: hosting.suspend, then hosting.unsuspend.
	hst := ServiceRef{AccountID: "acc_1", HostingID: "hst_1"}
	out = h.must(CmdServiceSuspend, ServiceSuspend{Ref: hst, Suspend: true, Reason: "spam"}).(ServiceSuspended)
	h.must(CmdActionFinish, ActionFinish{ID: out.ActionID, Success: true})
	if a := hostingAt(t, h, "hst_1"); a.Status != api.HostingSuspended {
		t.Fatalf("suspended account %+v", a)
	}
	out = h.must(CmdServiceSuspend, ServiceSuspend{Ref: hst}).(ServiceSuspended)
	var act store.Action
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { act, err = r.Action(out.ActionID); return })
	if out.Suspension != nil || act.Command != api.ActionHostingUnsuspend {
		t.Fatalf("unsuspend: %+v, action %+v", out, act)
	}
	h.must(CmdActionFinish, ActionFinish{ID: out.ActionID, Success: true})
	if a := hostingAt(t, h, "hst_1"); a.Status != api.HostingActive || a.Resume {
		t.Fatalf("resumed account %+v", a)
	}
	if countEvents(t, h, "hosting.suspended") != 1 || countEvents(t, h, "hosting.unsuspended") != 1 {
		t.Fatal("hosting.suspended and hosting.unsuspended once each")
	}
	if !bytes.Equal(hostingOrderDump(h.fsms[0]), hostingOrderDump(h.fsms[1])) || !bytes.Equal(orderDump(h.fsms[0]), orderDump(h.fsms[1])) {
		t.Fatal("replicas differ")
	}
}
