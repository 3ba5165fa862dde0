package orders

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// waitAction polls an action until it finishes and requires success.
func (r *rig) waitAction(id string) {
	r.t.Helper()
	framework.WaitActionSuccess(r.t, r.api(0), id, 30*time.Second)
}

// refundDue is the README's refund policy for a service bought at start
// (its order invoice's due date) and paid until paidUntil, deleted now: the
// unused whole days of the month paid for, pro rata to price. The month is
// start to paidUntil (bought on January 31st: paid until March 3rd, 31
// days).
func refundDue(price int64, start, paidUntil time.Time) int64 {
	const day = 24 * time.Hour
	period := int64((paidUntil.Sub(start) + day/2) / day)
	unused := int64(time.Until(paidUntil) / day)
	return price * unused / period
}

// wantRefund runs the customer's deletion del of a service bought at price
// at start and paid until paidUntil (del answers the deletion's action),
// waits for the action, and requires refundDue's amount back in the wallet.
func (r *rig) wantRefund(what string, price int64, start, paidUntil time.Time, del func() (actionID string, err error)) {
	r.t.Helper()
	before := r.balance()
	want := refundDue(price, start, paidUntil)
	id, err := del()
	if err != nil {
		r.t.Fatal(err)
	}
	r.waitAction(id)
	if got := r.balance() - before; got != want || want <= 0 {
		r.t.Fatalf("refund on %s %d, want %d", what, got, want)
	}
}

// TestCancelAndSuspend, as a customer and an operator see it: an
// operator's suspension stops the server and the customer's start is a 409
// suspended with the reason, until the operator lifts it; the customer's
// DELETE of a bought server and of a bought hosting account refunds the
// unused whole days of the month to the wallet (the README's policy), once;
// an operator-suspended hosting account refuses the customer's unsuspend.
func TestCancelAndSuspend(t *testing.T) {
	r := newRig(t)
	adm := r.c.AnyAlive(nil).Admin()
	r.hostingProduct()
	r.credit(price + hostingPrice)
	// The customer's writes carry an Idempotency-Key each and an order is
	// sent again after a 503 node_reconnecting (resent), as README asks of
	// customers across a leader change.
	o, err := resent(r, "order", func(key string) (api.ServerOrder, error) { return r.api(0).OrderServer(r.ctx, order(1), key) })
	if err != nil {
		t.Fatal(err)
	}
	r.waitAction(o.Action.ID)

	// Operator suspension.
	if _, err := adm.Suspend(r.ctx, "servers", o.Server.ID, ""); err == nil {
		t.Fatal("a suspension without a reason was accepted")
	} else if st, msg := status(err); st != http.StatusBadRequest || !strings.Contains(msg, `"reason"`) {
		t.Fatalf("no reason: %d %s", st, msg)
	}
	s, err := adm.Suspend(r.ctx, "servers", o.Server.ID, "abuse report 42")
	if err != nil || !s.Suspended || s.By != "operator" || s.ActionID == "" {
		t.Fatalf("suspend: %+v %v", s, err)
	}
	r.waitAction(s.ActionID)
	_, err = r.api(1).PowerServer(r.ctx, o.Server.ID, "start", nil, newKey("start"))
	if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, "abuse report 42") {
		t.Fatalf("start while suspended: %d %s", st, msg)
	}
	if s, err := adm.Unsuspend(r.ctx, "servers", o.Server.ID); err != nil || s.Suspended {
		t.Fatalf("unsuspend: %+v %v", s, err)
	}
	if _, err := adm.Unsuspend(r.ctx, "servers", o.Server.ID); err == nil {
		t.Fatal("a second unsuspend was accepted")
	}
	acc, err := r.api(1).PowerServer(r.ctx, o.Server.ID, "start", nil, newKey("start"))
	if err != nil {
		t.Fatal(err)
	}
	r.waitAction(acc.Action.ID)

	// The customer deletes it: the unused days come back.
	r.wantRefund("deletion", price, o.Invoice.DueAt, *o.Server.PaidUntil, func() (string, error) {
		del, err := r.api(2).TerminateServer(r.ctx, o.Server.ID, newKey("terminate"))
		return del.Action.ID, err
	})

	// A hosting account: operator suspension, then the customer deletes it.
	h, err := resent(r, "hosting-order", func(key string) (api.HostingOrder, error) {
		return r.api(0).OrderHosting(r.ctx, hostingOrder("shop"), key)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.waitAction(h.Action.ID)
	hs, err := adm.Suspend(r.ctx, "hosting", h.Hosting.ID, "unpaid domain")
	if err != nil {
		t.Fatal(err)
	}
	r.waitAction(hs.ActionID)
	r.waitHosting(h.Hosting.ID, "suspended", func(h api.HostingAccount) bool { return h.Status == api.HostingSuspended })
	_, err = r.api(1).UnsuspendHosting(r.ctx, h.Hosting.ID, newKey("unsuspend"))
	if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, "unpaid domain") {
		t.Fatalf("the customer's unsuspend: %d %s", st, msg)
	}
	r.wantRefund("hosting deletion", hostingPrice, h.Invoice.DueAt, *h.Hosting.PaidUntil, func() (string, error) {
		hd, err := r.api(2).DeleteHosting(r.ctx, h.Hosting.ID, newKey("delete"))
		return hd.Action.ID, err
	})
	refunds := perInvoice(firstPage(r, r.api(0).WalletTransactions), api.TxRefund)
	if len(refunds) != 2 || refunds[o.Invoice.ID] != 1 || refunds[h.Invoice.ID] != 1 {
		t.Fatalf("refunds %v (want one per deleted service)", refunds)
	}
}
