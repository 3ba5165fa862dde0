package orders

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

const hostingPrice = 450 // web-t at 600 retail, 25 % reseller discount

var webQuota = api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 96, MaxExecutionSeconds: 20, UploadMiB: 16, DiskMiB: 2048}

func hostingOrder(user string) api.HostingOrderRequest {
	return api.HostingOrderRequest{PlanSlug: "web-t", Domain: user + ".example.com", Username: user}
}

// hostingProduct creates the web-t hosting product (600 retail, webQuota).
func (r *rig) hostingProduct() {
	r.t.Helper()
	if _, err := r.c.AnyAlive(nil).Admin().CreateProduct(r.ctx, "web-t", api.ProductRequest{Category: api.ProductHosting, NameEn: "Web T",
		RetailMonthlyUsdCents: 600, Specs: api.ProductSpecs{Hosting: &webQuota}}); err != nil {
		r.t.Fatal(err)
	}
}

// waitHosting polls the account until ok says it is done.
func (r *rig) waitHosting(id, what string, ok func(api.HostingAccount) bool) api.HostingAccount {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := r.api(2).HostingAccount(r.ctx, id)
		if err == nil && ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("hosting account %s not %s: %+v %v", id, what, h, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHostingOrders: a customer buys hosting from the catalogue and the
// wallet through any coordinator: bad input is a 400 naming the field with
// nothing charged, the quote prices it, one order debits the reseller price
// once (an Idempotency-Key retry answers the same account without the
// passwords), a taken username is a 409 naming it with nothing charged, a
// short wallet is a 402 naming the shortfall, and an account whose
// hosting.create fails on the node is refunded (balance restored, the
// action says so, the invoice credited) and cleaned up (deleted).
func TestHostingOrders(t *testing.T) {
	r := newRig(t)
	adm := r.c.AnyAlive(nil).Admin()
	r.hostingProduct()
	// A hosting product without its quotas is refused naming the field.
	_, err := adm.CreateProduct(r.ctx, "web-x", api.ProductRequest{Category: api.ProductHosting, NameEn: "Web X", RetailMonthlyUsdCents: 600})
	if st, msg := status(err); st != http.StatusBadRequest || !strings.Contains(msg, `"specs.hosting"`) {
		t.Fatalf("a hosting product without quotas: %d %s", st, msg)
	}
	r.credit(hostingPrice + 100)
	wantRefusedNaming(t, func(req api.HostingOrderRequest) error { _, err := r.api(0).OrderHosting(r.ctx, req, ""); return err }, []badInput[api.HostingOrderRequest]{
		{api.HostingOrderRequest{Domain: "a.example.com", Username: "alice"}, "plan_slug"},
		{api.HostingOrderRequest{PlanSlug: "vps-t", Domain: "a.example.com", Username: "alice"}, "plan_slug"},
		{api.HostingOrderRequest{PlanSlug: "web-9", Domain: "a.example.com", Username: "alice"}, "plan_slug"},
		{api.HostingOrderRequest{PlanSlug: "web-t", Domain: "not a domain", Username: "alice"}, "domain"},
		{api.HostingOrderRequest{PlanSlug: "web-t", Domain: "a.example.com", Username: "root"}, "username"},
		{api.HostingOrderRequest{PlanSlug: "web-t", Domain: "a.example.com", Username: "alice", PHPVersion: "eight"}, "php_version"},
		{api.HostingOrderRequest{PlanSlug: "web-t", Domain: "a.example.com", Username: "alice", PHPVersion: "7.4"}, "php_version"},
	})
	hosting := func() []api.HostingAccount { t.Helper(); return firstPage(r, r.api(1).Hosting) }
	if b, n := r.balance(), len(hosting()); b != hostingPrice+100 || n != 0 {
		t.Fatalf("after refused orders: balance %d, %d accounts", b, n)
	}
	if q, err := r.api(1).QuoteHosting(r.ctx, hostingOrder("shop")); err != nil || q.YourMonthlyUsdCents != hostingPrice || q.RetailMonthlyUsdCents != 600 || q.ShortfallUsdCents != 0 {
		t.Fatalf("quote %+v %v", q, err)
	}

	// One order, its Idempotency-Key retried on another coordinator.
	o, err := r.api(0).OrderHosting(r.ctx, hostingOrder("shop"), "hosting-once")
	if err != nil {
		t.Fatal(err)
	}
	if o.SFTPPassword == "" || o.DBPassword == "" || o.Invoice.TotalUsdCents != hostingPrice || o.Invoice.Status != api.InvoicePaid ||
		o.Hosting.Limits != webQuota || o.Hosting.PaidUntil == nil || o.Hosting.Connection.SFTPUser != "shop" {
		t.Fatalf("order %+v", o)
	}
	again, err := r.api(1).OrderHosting(r.ctx, hostingOrder("shop"), "hosting-once")
	if err != nil || again.Hosting.ID != o.Hosting.ID || again.SFTPPassword != "" || again.DBPassword != "" {
		t.Fatalf("retry: %+v %v (want the same account, no passwords)", again, err)
	}
	if b := r.balance(); b != 100 {
		t.Fatalf("balance %d after one order, want 100", b)
	}
	h := r.waitHosting(o.Hosting.ID, "active", func(h api.HostingAccount) bool { return h.Status == api.HostingActive })
	if h.PaidUntil == nil || !h.PaidUntil.Equal(*o.Hosting.PaidUntil) || h.Plan != "web-t" {
		t.Fatalf("account %+v", h)
	}

	// A taken username changes nothing; neither does a short wallet.
	r.credit(hostingPrice)
	dup := hostingOrder("shop")
	dup.Domain = "other.example.com"
	_, err = r.api(2).OrderHosting(r.ctx, dup, "")
	if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, `"username"`) {
		t.Fatalf("a taken username: %d %s", st, msg)
	}
	if b := r.balance(); b != hostingPrice+100 {
		t.Fatalf("balance %d after a refused order", b)
	}

	// hosting.create fails on the node: charged, then refunded.
	f, err := r.api(1).OrderHosting(r.ctx, api.HostingOrderRequest{PlanSlug: "web-t", Domain: "fail-1.example.com", Username: "failer"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if b := r.balance(); b != 100 && b != hostingPrice+100 {
		t.Fatalf("balance %d right after the order", b)
	}
	// Its cleanup (a hosting.delete the failure opens) then ends it deleted.
	fh := r.waitHosting(f.Hosting.ID, "failed and cleaned up", func(h api.HostingAccount) bool { return h.Status == api.HostingDeleted })
	if fh.PaidUntil != nil {
		t.Fatalf("failed account still paid: %+v", fh)
	}
	if b := r.balance(); b != hostingPrice+100 {
		t.Fatalf("balance %d after the refund, want %d", b, hostingPrice+100)
	}
	act, err := r.api(0).Action(r.ctx, f.Action.ID)
	if err != nil || act.Status != api.ActionFailed || act.Error == nil || !strings.Contains(act.Error.Message, "450 cents were refunded") {
		t.Fatalf("failed action %+v %v", act, err)
	}
	inv, err := r.api(2).Invoice(r.ctx, f.Invoice.ID)
	if err != nil || len(inv.Payments) != 2 || inv.Payments[1].AmountUsdCents != -hostingPrice {
		t.Fatalf("refunded invoice %+v %v", inv, err)
	}
	txs := firstPage(r, r.api(0).WalletTransactions)
	refunds := 0
	for _, tx := range txs {
		if tx.Type == api.TxRefund {
			refunds++
			if tx.AmountUsdCents != hostingPrice || tx.InvoiceID != f.Invoice.ID {
				t.Errorf("refund %+v", tx)
			}
		}
	}
	if refunds != 1 {
		t.Fatalf("%d refunds in %+v", refunds, txs)
	}

	// Two accounts left to pay for, one order's worth in the wallet.
	if _, err := r.api(0).OrderHosting(r.ctx, hostingOrder("blog"), ""); err != nil {
		t.Fatal(err)
	}
	_, err = r.api(0).OrderHosting(r.ctx, hostingOrder("wiki"), "")
	if st, msg := status(err); st != http.StatusPaymentRequired || !strings.Contains(msg, "shortfall is 350 cents") {
		t.Fatalf("a short wallet: %d %s", st, msg)
	}
	if b, n := r.balance(), len(hosting()); b != 100 || n != 3 {
		t.Fatalf("balance %d, %d accounts (shop, failer, blog)", b, n)
	}

	// A provisioning that takes a while (a second on this node) shows
	// running, started when the node took it, before its end; one that
	// ends at once may go from pending straight to its end.
	r.credit(hostingPrice)
	sl, err := r.api(2).OrderHosting(r.ctx, api.HostingOrderRequest{PlanSlug: "web-t", Domain: "slow-1.example.com", Username: "slow"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		a, err := r.api(0).Action(r.ctx, sl.Action.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != a.Status {
			seen = append(seen, a.Status)
		}
		if a.Status == api.ActionSuccess {
			if !slices.Contains(seen, api.ActionRunning) || a.StartedAt == nil || a.FinishedAt == nil || !a.StartedAt.Before(*a.FinishedAt) {
				t.Fatalf("a provisioning of a second: statuses %v, ended %+v", seen, a)
			}
			break
		}
		if a.Status == api.ActionFailed || time.Now().After(deadline) {
			t.Fatalf("a provisioning of a second: statuses %v, now %+v", seen, a)
		}
	}
}

// TestLastSlotOrders: 8 orders at once for a plan the node has room for
// once (20 GiB of its 32): one is answered 201 and charged, the 7 others
// 409 no_capacity with nothing charged, whether placement refused them or
// (placed on the same slot before the first applied) the FSM's re-check —
// the customer is told the same in both cases, naming no node (SPEC).
func TestLastSlotOrders(t *testing.T) {
	r := newRig(t)
	const big = 2000
	if _, err := r.c.AnyAlive(nil).Admin().CreateProduct(r.ctx, "big-t", api.ProductRequest{Category: api.ProductVPS, NameEn: "Big T",
		RetailMonthlyUsdCents: big, Specs: api.ProductSpecs{VCPU: 4, RAMMB: 20 << 10, DiskGB: 10}}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	const charge = big * 3 / 4 // the rig's 25 % reseller discount
	r.credit(n * charge)
	leader := r.c.WaitLeader(10 * time.Second)
	bigT := func(i int) api.ServerOrderRequest {
		req := order(i)
		req.PlanSlug = "big-t"
		return req
	}
	codes := r.orderBurstVia(func(int) *client.Client { return r.c.Client(leader, r.key) }, n, bigT, "", func(i int, _ api.ServerOrder, st int, msg string, _ bool) {
		if st != 201 && (st != http.StatusConflict || msg != "no node can take the order now; try again later or ask support") {
			t.Errorf("order %d: %d %s", i, st, msg)
		}
	})
	if codes[201] != 1 || codes[409] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d × 409", codes, n-1)
	}
	if b := r.balance(); b != (n-1)*charge {
		t.Fatalf("balance %d, want %d (one charge)", b, (n-1)*charge)
	}
	if s := r.servers(); len(s) != 1 || s[0].Plan.Slug != "big-t" {
		t.Fatalf("servers %+v", s)
	}
}
