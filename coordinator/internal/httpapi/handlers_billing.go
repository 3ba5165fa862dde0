package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

func (a *API) getAccount(rq *request) (int, any, error) {
	var acc api.Account
	err := a.state.View(func(tx *bolt.Tx) error {
		return store.GetJSON(tx, store.BucketAccounts, []byte(rq.caller.accountID), &acc)
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("account")
	}
	return http.StatusOK, acc, err
}

func (a *API) getWallet(rq *request) (int, any, error) {
	var acc api.Account
	var last []api.WalletTransaction
	err := a.state.View(func(tx *bolt.Tx) error {
		if err := store.GetJSON(tx, store.BucketAccounts, []byte(rq.caller.accountID), &acc); err != nil {
			return err
		}
		var err error
		last, _, err = store.ListOwned[api.WalletTransaction](tx, store.BucketWalletTx, acc.ID, 0, 1)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("account")
	} else if err != nil {
		return 0, nil, err
	}
	w := api.Wallet{BalanceUsdCents: acc.BalanceUsdCents, Currency: "USD", State: "active", UpdatedAt: acc.CreatedAt}
	if len(last) > 0 {
		w.UpdatedAt = last[0].CreatedAt
	}
	return http.StatusOK, w, nil
}

func listPage[T any](a *API, rq *request, bucket []byte, strip func(*T)) (int, any, error) {
	page, limit, err := paging(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	var items []T
	var total int
	err = a.state.View(func(tx *bolt.Tx) error {
		var err error
		items, total, err = store.ListOwned[T](tx, bucket, rq.caller.accountID, (page-1)*limit, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if strip != nil {
		for i := range items {
			strip(&items[i])
		}
	}
	out := api.Page[T]{Data: items, Page: page, Limit: limit, Total: total}
	if page*limit < total {
		next := page + 1
		out.NextPage = &next
	}
	return http.StatusOK, out, nil
}

func (a *API) listTransactions(rq *request) (int, any, error) {
	return a.listRaw(rq, store.BucketWalletTx)
}

// listRaw serves a page of a bucket whose values are exactly the API's JSON,
// splicing the stored bytes into the page envelope without decoding them.
func (a *API) listRaw(rq *request, bucket []byte) (int, any, error) {
	page, limit, err := paging(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	var items [][]byte
	var total int
	_ = a.state.View(func(tx *bolt.Tx) error {
		items, total = store.ListOwnedRaw(tx, bucket, rq.caller.accountID, (page-1)*limit, limit)
		return nil
	})
	n := 64
	for _, it := range items {
		n += len(it) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, `{"data":[`...)
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it...)
	}
	buf = append(buf, `],"page":`...)
	buf = strconv.AppendInt(buf, int64(page), 10)
	buf = append(buf, `,"limit":`...)
	buf = strconv.AppendInt(buf, int64(limit), 10)
	buf = append(buf, `,"total":`...)
	buf = strconv.AppendInt(buf, int64(total), 10)
	buf = append(buf, `,"next_page":`...)
	if page*limit < total {
		buf = strconv.AppendInt(buf, int64(page+1), 10)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, "}\n"...)
	return http.StatusOK, rawJSON(buf), nil
}

func (a *API) listInvoices(rq *request) (int, any, error) {
	return listPage[api.Invoice](a, rq, store.BucketInvoices, nil)
}

func (a *API) getInvoice(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("inv", id) {
		return 0, nil, notFound("invoice")
	}
	var inv store.Invoice
	err := a.state.View(func(tx *bolt.Tx) error {
		return store.GetJSON(tx, store.BucketInvoices, store.OwnedKey(rq.caller.accountID, id), &inv)
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("invoice")
	}
	return http.StatusOK, inv.Invoice, err
}
