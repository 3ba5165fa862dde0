package httpapi

import (
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestQuotePricesForTheCaller: callerPrice (the read behind the server,
// hosting and domain quotes) gives an account without pricing the retail
// price and its balance, and an unknown account an error; a server and a
// domain quote charge the account's discount, and a price of its own wins
// over it.
func TestQuotePricesForTheCaller(t *testing.T) {
	s, _ := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2000})
	read := func(accountID string) (price, balance int64, err error) {
		err = s.node.FSM.Read(func(r store.ReadTx) (err error) {
			price, balance, err = callerPrice(r, accountID, "domain-test", 1000)
			return err
		})
		return price, balance, err
	}
	if p, b, err := read(acc); err != nil || p != 1000 || b != 2000 {
		t.Fatalf("callerPrice without pricing: %d, %d, %v (want 1000, 2000)", p, b, err)
	}
	if p, b, err := read("acc_missing"); err == nil {
		t.Fatalf("callerPrice of an unknown account: %d, %d, no error", p, b)
	}
	quote := func(yearly, total, shortfall float64) {
		t.Helper()
		r := s.call(key, "POST", "/v1/domains/quote", `{"name":"ada.test","years":3,`+testContact+`}`)
		if r.status != 200 || r.m["yearly_usd_cents"] != yearly || r.m["total_usd_cents"] != total ||
			r.m["balance_usd_cents"] != float64(2000) || r.m["shortfall_usd_cents"] != shortfall {
			t.Fatalf("quote: %d %s (want yearly %v, total %v, balance 2000, shortfall %v)", r.status, r.body, yearly, total, shortfall)
		}
	}
	s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "vps-q", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "q",
		RetailMonthlyUsdCents: 2400, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 512, DiskGB: 10}}})
	quoteServer := func(monthly, shortfall float64) {
		t.Helper()
		r := s.call(key, "POST", "/v1/servers/quote", `{"plan_slug":"vps-q","hostname":"a","os_template":"debian-12"}`)
		if r.status != 200 || r.m["plan_slug"] != "vps-q" || r.m["retail_monthly_usd_cents"] != float64(2400) || r.m["your_monthly_usd_cents"] != monthly ||
			r.m["balance_usd_cents"] != float64(2000) || r.m["shortfall_usd_cents"] != shortfall {
			t.Fatalf("server quote: %d %s (want monthly %v, balance 2000, shortfall %v)", r.status, r.body, monthly, shortfall)
		}
	}
	quoteServer(2400, 400)
	s.apply(fsm.CmdAccountPricing, fsm.AccountPricingSet{AccountID: acc, Pricing: api.AccountPricing{DiscountPercent: 25}})
	quote(750, 2250, 250)
	quoteServer(1800, 0)
	s.apply(fsm.CmdAccountPricing, fsm.AccountPricingSet{AccountID: acc, Pricing: api.AccountPricing{DiscountPercent: 25, Prices: map[string]int64{"domain-test": 600, "vps-q": 2100}}})
	quote(600, 1800, 0)
	quoteServer(2100, 100)
}
