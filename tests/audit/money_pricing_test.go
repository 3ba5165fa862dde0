package audit

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMoneyResellerPricesAndLimits: an operator gives A reseller terms (a
// 25% discount, and an own price for vps-a that wins over it); A's
// products list and quote say 1000 cents and the order charges exactly
// that (invoice, wallet), B still pays retail. Changing A's terms and the
// retail price afterwards touches neither the paid month nor the renewal
// invoice once issued (README: at the price the server renews at). Absurd
// terms and top-ups are 400s that change nothing: a discount below 0 or
// over 100, a negative or over-USD-1-million price, a top-up of 0, below
// 0, over the per-movement bound or at the int64 limit.
func TestMoneyResellerPricesAndLimits(t *testing.T) {
	m := newMoneyRig(t)
	adm := m.c.Leader().Admin()
	terms := api.AccountPricing{DiscountPercent: 25, Prices: map[string]int64{"vps-a": 1000}}
	if _, err := adm.SetAccountPricing(m.ctx, m.accA.ID, terms); err != nil {
		t.Fatal(err)
	}
	m.c.Credit(m.ctx, m.accA.ID, 5000)

	var prods api.ProductList
	m.get(m.keyA, "/v1/products", &prods)
	yours := map[string]int64{}
	for _, p := range prods.Data {
		yours[p.Slug] = p.YourMonthlyUsdCents
	}
	if yours["vps-a"] != 1000 || yours["web-a"] != hostingPrice*75/100 {
		t.Fatalf("A's prices %v; want vps-a 1000 (own price), web-a %d (25%% off)", yours, hostingPrice*75/100)
	}
	var q api.ServerQuote
	if rep := m.call(1, m.keyA, "POST", "/v1/servers/quote", serverBody("r1"), nil); rep.Status != 200 {
		t.Fatalf("quote: %s", rep)
	} else {
		rep.Decode(t, &q)
	}
	if q.YourMonthlyUsdCents != 1000 || q.RetailMonthlyUsdCents != serverPrice || q.BalanceUsdCents != 5000 || q.ShortfallUsdCents != 0 {
		t.Fatalf("A's quote %+v", q)
	}
	if rep := m.call(1, m.keyB, "POST", "/v1/servers/quote", serverBody("r1"), nil); rep.Status != 200 || !strings.Contains(string(rep.Body), `"your_monthly_usd_cents":1200`) {
		t.Fatalf("B's quote (retail): %s", rep)
	}
	o := m.orderServer("r1")
	if o.Invoice.TotalUsdCents != q.YourMonthlyUsdCents || o.Invoice.Status != api.InvoicePaid || m.balance(m.keyA) != 5000-q.YourMonthlyUsdCents {
		t.Fatalf("the order charged %d (%s), balance %d; the quote said %d", o.Invoice.TotalUsdCents, o.Invoice.Status, m.balance(m.keyA), q.YourMonthlyUsdCents)
	}

	// New terms and a new retail price after the order.
	if _, err := adm.SetAccountPricing(m.ctx, m.accA.ID, api.AccountPricing{DiscountPercent: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.UpdateProduct(m.ctx, "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: 3000, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}); err != nil {
		t.Fatal(err)
	}
	if s := m.server(m.keyA, o.Server.ID); !s.PaidUntil.Equal(*o.Server.PaidUntil) || m.balance(m.keyA) != 4000 {
		t.Fatalf("the price change moved the paid month: paid until %s (was %s), balance %d", s.PaidUntil, o.Server.PaidUntil, m.balance(m.keyA))
	}
	m.at(o.Server.PaidUntil.AddDate(0, 0, -7).Add(time.Hour))
	m.wait("the renewal invoice", func() bool { return m.unpaid(m.keyA) == 1 })
	renewal := func() api.Invoice {
		for _, inv := range m.invoices(m.keyA) {
			if inv.Status == api.InvoiceUnpaid {
				return inv
			}
		}
		t.Fatal("no unpaid renewal")
		return api.Invoice{}
	}
	issued := renewal()
	if issued.TotalUsdCents != 1000 {
		t.Fatalf("the renewal invoice: %d cents, want the 1000 the server was bought and renews at", issued.TotalUsdCents)
	}
	if _, err := adm.SetAccountPricing(m.ctx, m.accA.ID, api.AccountPricing{Prices: map[string]int64{"vps-a": 1}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // five sweeps
	if again := renewal(); again.ID != issued.ID || again.TotalUsdCents != issued.TotalUsdCents {
		t.Fatalf("the issued renewal changed with the terms: %+v → %+v", issued, again)
	}

	// Absurd terms and top-ups.
	before, err := adm.AccountPricing(m.ctx, m.accA.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []api.AccountPricing{
		{DiscountPercent: -1}, {DiscountPercent: 101}, {DiscountPercent: math.MaxInt64},
		{Prices: map[string]int64{"vps-a": -1}}, {Prices: map[string]int64{"vps-a": 100_000_001}}, {Prices: map[string]int64{"vps-a": math.MinInt64}},
	} {
		if _, err := adm.SetAccountPricing(m.ctx, m.accA.ID, bad); api.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("terms %+v: %v, want a 400", bad, err)
		}
	}
	if after, err := adm.AccountPricing(m.ctx, m.accA.ID); err != nil || after.DiscountPercent != before.DiscountPercent || after.Prices["vps-a"] != before.Prices["vps-a"] {
		t.Errorf("refused terms changed A's: %+v → %+v %v", before, after, err)
	}
	bal := m.balance(m.keyA)
	for _, amount := range []int64{0, -1, -serverPrice, 1_000_000_000_001, math.MaxInt64, math.MinInt64} {
		if _, err := adm.CreditWallet(m.ctx, m.accA.ID, api.WalletCreditRequest{AmountUsdCents: amount, Gateway: "test"}); api.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("a top-up of %d: %v, want a 400", amount, err)
		}
	}
	// The largest top-up there is, twice, sums exactly.
	for range 2 {
		if _, err := adm.CreditWallet(m.ctx, m.accA.ID, api.WalletCreditRequest{AmountUsdCents: 1_000_000_000_000, Gateway: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if b := m.balance(m.keyA); b != bal+2_000_000_000_000 {
		t.Fatalf("balance %d after two top-ups of 10^12 cents on %d", b, bal)
	}
}
