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
)

func orderDump(f *FSM) []byte {
	return bucketDump(f, append(store.ServerBuckets, store.BucketOutbox, store.BucketAccounts, store.BucketWalletTx,
		store.BucketInvoices, store.BucketInvoiceIDs, store.BucketCounters, store.BucketProducts, store.BucketAccountPricing)...)
}

func testOrder(n int, slug string) ServerOrder {
	srv := fmt.Sprintf("srv_%d", n)
	return ServerOrder{PlanSlug: slug,
		Create: ServerCreate{
			Server: store.Server{Server: api.Server{ID: srv, Label: "web", OSTemplate: "debian-12", OS: "debian"},
				AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + srv},
			Action: store.Action{Action: api.Action{ID: fmt.Sprintf("act_%d", n), Command: api.ActionServerProvision, ResourceID: srv},
				NodeID: "hv-1", Target: "hp-" + srv, Deadline: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		InvoiceID: fmt.Sprintf("inv_%d", n), PaymentID: fmt.Sprintf("pay_%d", n), TxID: fmt.Sprintf("wtx_%d", n)}
}

// TestServerOrder: an order debits the account's effective price, issues a
// paid invoice numbered INV-<year>-<n> with invoice.created and invoice.paid,
// and creates the server with its first month paid; every refusal (unknown,
// retired plan, short wallet, a server create refusal) changes nothing.
func TestServerOrder(t *testing.T) {
	h := newServerHarness(t)
	vps := api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 2", RetailMonthlyUsdCents: 1200,
		Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60}}
	h.must(CmdProductPut, ProductPut{Slug: "vps-2", Create: true, Product: vps})
	if _, err := h.apply(CmdProductPut, ProductPut{Slug: "vps-2", Create: true, Product: vps}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := h.apply(CmdProductPut, ProductPut{Slug: "nope", Product: vps}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing product: %v", err)
	}
	h.must(CmdProductPut, ProductPut{Slug: "old-1", Create: true, Product: vps})
	h.must(CmdProductRetire, ProductRetire{Slug: "old-1"})
	h.must(CmdAccountPricing, AccountPricingSet{AccountID: "acc_1", Pricing: api.AccountPricing{DiscountPercent: 20}})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 1000})

	before := orderDump(h.fsms[0])
	for name, o := range map[string]ServerOrder{"unknown plan": testOrder(1, "vps-9"), "retired plan": testOrder(1, "old-1")} {
		if _, err := h.apply(CmdServerOrder, o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"plan_slug"`) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	bad := testOrder(1, "vps-2")
	bad.Create.Server.NodeID = "hv-404"
	if _, err := h.apply(CmdServerOrder, bad); !errors.Is(err, ErrNotFound) {
		t.Fatalf("order on a missing node: %v", err)
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}

	v := h.must(CmdServerOrder, testOrder(1, "vps-2")).(api.ServerOrder)
	if v.Invoice.TotalUsdCents != 960 || v.Invoice.Status != api.InvoicePaid || v.Invoice.Number != "INV-2026-000001" {
		t.Fatalf("invoice %+v", v.Invoice)
	}
	want := h.at.AddDate(0, 1, 0)
	if v.Server.PaidUntil == nil || !v.Server.PaidUntil.Equal(want) || v.Server.Plan.VCPUs != 2 || v.Server.Plan.MemoryMiB != 4096 || v.Server.Plan.Slug != "vps-2" {
		t.Fatalf("server %+v, paid until %v, want %v", v.Server, v.Server.PaidUntil, want)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 40 {
		t.Fatalf("balance %d, want 40", b)
	}
	if got := outboxTypes(t, h.fsms[0]); strings.Join(got, ",") != "wallet.deposit.received,invoice.created,invoice.paid" {
		t.Fatalf("events %v", got)
	}

	// A price change does not touch the running period; the wallet is short now.
	vps.RetailMonthlyUsdCents = 100
	h.must(CmdProductPut, ProductPut{Slug: "vps-2", Product: vps})
	before = orderDump(h.fsms[0])
	_, err := h.apply(CmdServerOrder, testOrder(2, "vps-2"))
	var short *ShortfallError
	if !errors.As(err, &short) || !errors.Is(err, ErrInsufficientFunds) || short.ShortfallUsdCents() != 40 {
		t.Fatalf("order with 40 cents for 80: %v", err)
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}
	// Its own price wins over the discount.
	h.must(CmdAccountPricing, AccountPricingSet{AccountID: "acc_1", Pricing: api.AccountPricing{DiscountPercent: 20, Prices: map[string]int64{"vps-2": 40}}})
	v2 := h.must(CmdServerOrder, testOrder(2, "vps-2")).(api.ServerOrder)
	if v2.Invoice.TotalUsdCents != 40 || v2.Invoice.Number != "INV-2026-000002" || balance(t, h.fsms[0], "acc_1") != 0 {
		t.Fatalf("second order %+v", v2.Invoice)
	}
	var s1 store.Server
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { s1, err = r.OwnedServer("acc_1", "srv_1"); return })
	if s1.MonthlyUsdCents != 960 {
		t.Fatalf("first server renews at %d, want 960", s1.MonthlyUsdCents)
	}
	h.replicasSame(orderDump)
}

// TestServerOrderRefund: a bought server whose provisioning fails is refunded
// in the command that records the failure (refund transaction, the invoice's
// credit, the action's message saying so), once.
func TestServerOrderRefund(t *testing.T) {
	h := newServerHarness(t)
	twoVPS2Orders(h, 3000)
	if b := balance(t, h.fsms[0], "acc_1"); b != 3000-2*1200 {
		t.Fatalf("balance %d", b)
	}
	// Both fail in one entry (a deadline sweep): each is refunded once.
	fail := func(id string) ActionFinish {
		return ActionFinish{ID: id, ErrorCode: "template_missing", ErrorMessage: "the node has no template debian-12"}
	}
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{fail("act_1"), fail("act_2")}})
	if b := balance(t, h.fsms[0], "acc_1"); b != 3000 {
		t.Fatalf("balance %d after the refunds, want 3000", b)
	}
	again := orderDump(h.fsms[0])
	h.must(CmdActionFinish, fail("act_1"))
	if !bytes.Equal(again, orderDump(h.fsms[0])) {
		t.Fatal("a repeated failure changed the state")
	}
	_ = h.fsms[0].Read(func(r store.ReadTx) error {
		s, err := r.OwnedServer("acc_1", "srv_1")
		if err != nil || s.Status != api.ServerError || s.PaidUntil != nil {
			t.Fatalf("server %+v %v", s, err)
		}
		a, err := r.Action("act_1")
		if err != nil || !strings.Contains(a.Error.Message, "1200 cents were refunded") {
			t.Fatalf("action %+v %v", a, err)
		}
		txs, _, err := r.WalletTransactions("acc_1", 0, 10)
		if err != nil || len(txs) != 5 {
			t.Fatalf("transactions %+v %v", txs, err)
		}
		refunds := 0
		for _, tx := range txs {
			if tx.Type == api.TxRefund && tx.AmountUsdCents == 1200 {
				refunds++
			}
		}
		if refunds != 2 {
			t.Fatalf("transactions: %+v", txs)
		}
		invs, _, err := r.Invoices("acc_1", 0, 10)
		if err != nil || len(invs) != 2 {
			t.Fatalf("invoices %+v %v", invs, err)
		}
		for _, inv := range invs {
			if len(inv.Payments) != 2 || inv.Payments[1].AmountUsdCents != -1200 {
				t.Fatalf("invoice %+v", inv)
			}
		}
		return nil
	})
	h.replicasSame(orderDump)
}

// TestOrderCapacityAtApply: two orders the proposer placed on the same last
// slot of a node: the first lands, the second is refused at apply time with
// a NoCapacityError (409 no_capacity) and charges nothing; a terminated
// server's room is free again.
func TestOrderCapacityAtApply(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
		Capacity: api.AgentNodeCapacity{VCPUs: 4, MemoryBytes: 6 << 30, DiskBytes: 100 << 30}})
	h.must(CmdProductPut, ProductPut{Slug: "big-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "Big",
		RetailMonthlyUsdCents: 1000, Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 40}}})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	o1, o2 := testOrder(1, "big-1"), testOrder(2, "big-1")
	o1.Create.CPUOvercommit, o2.Create.CPUOvercommit = 4, 4
	h.must(CmdServerOrder, o1)
	before := orderDump(h.fsms[0])
	_, err := h.apply(CmdServerOrder, o2)
	var full *NoCapacityError
	if !errors.As(err, &full) || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("second order on the last slot: %v", err)
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) || balance(t, h.fsms[0], "acc_1") != 4000 {
		t.Fatal("the refused order changed the state")
	}
	// Without the field (an entry from before the check) it is applied as it was.
	o3 := testOrder(3, "big-1")
	h.must(CmdServerOrder, o3)
	// Terminated servers free their room.
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: true}, {ID: "act_3", Success: true}}})
	for _, srv := range []string{"srv_1", "srv_3"} {
		h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_t" + srv, Command: api.ActionServerTerminate, ResourceID: srv},
			AccountID: "acc_1", NodeID: "hv-1", Target: "hp-" + srv, Deadline: h.at.Add(time.Hour)}})
		h.must(CmdActionFinish, ActionFinish{ID: "act_t" + srv, Success: true})
	}
	h.must(CmdServerOrder, o2)
	h.replicasSame(orderDump)
}
