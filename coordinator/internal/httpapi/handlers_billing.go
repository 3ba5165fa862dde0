package httpapi

import (
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func (a *API) getAccount(rq *request) (int, any, error) {
	acc, err := readOne(a, "account", func(r store.ReadTx) (p api.AccountProfile, err error) {
		if p.Account, err = r.Account(rq.caller.accountID); err != nil {
			return p, err
		}
		pricing, err := r.AccountPricing(rq.caller.accountID)
		p.Reseller = api.AccountReseller{Enabled: pricing.DiscountPercent > 0 || len(pricing.Prices) > 0, DiscountPct: pricing.DiscountPercent}
		return p, err
	})
	return http.StatusOK, acc, err
}

func (a *API) getWallet(rq *request) (int, any, error) {
	var last []api.WalletTransaction
	acc, err := readOne(a, "account", func(r store.ReadTx) (acc api.Account, err error) {
		if acc, err = r.Account(rq.caller.accountID); err != nil {
			return acc, err
		}
		last, _, err = r.WalletTransactions(acc.ID, 0, 1)
		return acc, err
	})
	if err != nil {
		return 0, nil, err
	}
	w := api.Wallet{BalanceUsdCents: acc.BalanceUsdCents, Currency: "USD", State: "active", UpdatedAt: acc.CreatedAt}
	if len(last) > 0 {
		w.UpdatedAt = last[0].CreatedAt
	}
	return http.StatusOK, w, nil
}

// callerPrice is what the caller (accountID) pays for the product slug whose
// list price is retail, under the account's own pricing, and the wallet's
// balance (quote, domainTerms).
func callerPrice(r store.ReadTx, accountID, slug string, retail int64) (price, balance int64, err error) {
	pricing, err := r.AccountPricing(accountID)
	if err != nil {
		return 0, 0, err
	}
	acc, err := r.Account(accountID)
	if err != nil {
		return 0, 0, err
	}
	return pricing.EffectivePrice(slug, retail), acc.BalanceUsdCents, nil
}

func (a *API) listTransactions(rq *request) (int, any, error) {
	return a.listRaw(rq, "wtx", store.ReadTx.WalletTransactionsJSONAt)
}

func (a *API) listInvoices(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, "inv", store.ReadTx.InvoicesAt, same[api.Invoice])
}

func (a *API) getInvoice(rq *request) (int, any, error) {
	inv, err := readOwned(a, rq, "inv", "invoice", store.ReadTx.Invoice)
	return http.StatusOK, inv.Invoice, err
}
