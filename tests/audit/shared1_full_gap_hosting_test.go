package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestFailedHostingOrderFreesItsClaims: a customer's hosting order whose
// hosting.create fails on the node (the scripted node fails it for a fail-
// domain) is refunded once, and what the account held comes back without a
// delete from anyone: its username and its domain can be ordered again at
// once (a 201, not a 409 naming them), as the customer's natural retry. The
// failed account ends deleted, still listed, its failed action keeping the
// reason and the refund. The retry fails the same way and is cleaned up the
// same way; an order of the same username with another domain then becomes
// active. Every order is refunded once, nothing more.
func TestFailedHostingOrderFreesItsClaims(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, 3*hostingPrice)
	cl := r.apis[0].Client(r.keyA)
	failing := map[string]any{"plan_slug": "web-a", "domain": "fail-gap.example.com", "username": "failgap"}
	order := func(body map[string]any) api.HostingOrder {
		t.Helper()
		var o api.HostingOrder
		rep := r.write(r.follower(), r.keyA, "POST", "/v1/hosting", body)
		if rep.Status != 201 {
			t.Fatalf("hosting order %v: %s", body, rep)
		}
		rep.Decode(t, &o)
		return o
	}
	// failedAndFreed waits for o's hosting.create to fail (refunded, with
	// the reason) and for the account to be cleaned up.
	failedAndFreed := func(o api.HostingOrder) {
		t.Helper()
		a := framework.WaitAction(t, cl, o.Action.ID, 30*time.Second)
		if a.Status != api.ActionFailed || a.Error == nil || !strings.Contains(a.Error.Message, "600 cents were refunded") {
			t.Fatalf("the failed hosting.create: %+v", a)
		}
		var h api.HostingAccount
		framework.WaitFor(t, "the failed hosting account cleaned up", 30*time.Second, 100*time.Millisecond, func() bool {
			h = api.HostingAccount{}
			r.get(t, 0, r.keyA, "/v1/hosting/"+o.Hosting.ID, &h)
			return h.Status == api.HostingDeleted
		})
		if h.PaidUntil != nil || h.ActionID != "" {
			t.Fatalf("the cleaned-up account %+v", h)
		}
	}

	first := order(failing)
	failedAndFreed(first)
	// The customer's retry of the same order is taken: the username and
	// the domain are free again.
	retry := order(failing)
	if retry.Hosting.ID == first.Hosting.ID {
		t.Fatalf("the retry answered the first account %s", first.Hosting.ID)
	}
	failedAndFreed(retry)
	good := order(map[string]any{"plan_slug": "web-a", "domain": "gap-ok.example.com", "username": "failgap"})
	framework.WaitFor(t, "the third order active", 30*time.Second, 100*time.Millisecond, func() bool {
		h, err := cl.HostingAccount(r.ctx, good.Hosting.ID)
		return err == nil && h.Status == api.HostingActive
	})

	// Two refunds, one per failed order; the good one paid.
	ch := r.charged(r.keyA)
	if ch.balance != 2*hostingPrice || ch.hosting != 3 {
		t.Fatalf("after two failed orders and one good: %+v, want balance %d and three accounts listed", ch, 2*hostingPrice)
	}
	var txs struct {
		Data []api.WalletTransaction `json:"data"`
	}
	r.call(0, r.keyA, "GET", "/v1/billing/wallet/transactions?limit=200", nil, nil).Decode(t, &txs)
	refunds := map[string]int{}
	for _, tx := range txs.Data {
		if tx.Type == api.TxRefund {
			refunds[tx.InvoiceID]++
		}
	}
	if len(refunds) != 2 || refunds[first.Invoice.ID] != 1 || refunds[retry.Invoice.ID] != 1 {
		t.Fatalf("refunds per invoice %v, want one for each failed order", refunds)
	}
}
