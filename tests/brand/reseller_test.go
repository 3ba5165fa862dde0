package brand

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestSeed444hostResellerOnAccount: the 444host seed's changelog (v1.2,
// "Reseller tier") says GET /v1/account reports reseller.enabled and
// discount_pct. A 444host client reads them before and after an operator
// gives its account reseller terms: no terms is enabled false, 0; a 20%
// discount is enabled true, 20, and the products list charges that; an own
// price for a product without a discount is enabled true, 0; terms removed
// are enabled false again. Another account's terms never show. Every answer
// is validated against the /openapi.json the coordinator serves.
func TestSeed444hostResellerOnAccount(t *testing.T) {
	c := start(t, "444host", false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := c.Admin(0)
	acc, key := newAccount(t, ctx, c, "reseller@example.com", "account:read")
	_, other := newAccount(t, ctx, c, "retail@example.com", "account:read")
	if _, err := adm.CreateProduct(ctx, "vps-2", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 2", RetailMonthlyUsdCents: 1200,
		Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60}}); err != nil {
		t.Fatal(err)
	}
	sa := newSeedAPI(t, ctx, c, acc.ID, key, 100)
	ob := seedAPI{t: t, a: sa.a, key: other}

	// reseller reads GET /v1/account as the seed names it.
	reseller := func(s seedAPI) (bool, float64) {
		t.Helper()
		a := s.obj(s.call("GET", "/v1/account", nil, 200))
		r, ok := a["reseller"].(map[string]any)
		if !ok {
			t.Fatalf("GET /v1/account has no reseller object: %v", a)
		}
		has(t, "GET /v1/account reseller", r, "enabled", "discount_pct")
		en, _ := r["enabled"].(bool)
		pct, _ := r["discount_pct"].(float64)
		return en, pct
	}
	price := func(s seedAPI) float64 {
		t.Helper()
		var prods struct {
			Data []map[string]any `json:"data"`
		}
		s.call("GET", "/v1/products", nil, 200).Decode(t, &prods)
		if len(prods.Data) != 1 {
			t.Fatalf("products %v", prods.Data)
		}
		p, _ := prods.Data[0]["your_monthly_usd_cents"].(float64)
		return p
	}
	check := func(what string, s seedAPI, wantEnabled bool, wantPct, wantPrice float64) {
		t.Helper()
		if en, pct := reseller(s); en != wantEnabled || pct != wantPct {
			t.Errorf("%s: reseller enabled %v, discount_pct %v; want %v, %v", what, en, pct, wantEnabled, wantPct)
		}
		if p := price(s); p != wantPrice {
			t.Errorf("%s: your_monthly_usd_cents %v, want %v", what, p, wantPrice)
		}
	}

	check("no terms", sa, false, 0, 1200)
	set := func(p api.AccountPricing) {
		t.Helper()
		if _, err := adm.SetAccountPricing(ctx, acc.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	set(api.AccountPricing{DiscountPercent: 20})
	check("a 20% discount", sa, true, 20, 960)
	check("the other account, while the first has a discount", ob, false, 0, 1200)
	set(api.AccountPricing{Prices: map[string]int64{"vps-2": 900}})
	check("an own price and no discount", sa, true, 0, 900)
	set(api.AccountPricing{})
	check("terms removed", sa, false, 0, 1200)
}
