package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Handlers read the replicated state only through the store's typed
// accessors (store.ReadTx), in one read transaction per call of a.state.Read.
// The helpers below are the shapes every read handler shares.

// pathID is the {id} path value when it is an id of prefix; a malformed id
// is a 404 naming what (as a missing object is).
func pathID(rq *request, prefix, what string) (string, error) {
	id := rq.PathValue("id")
	if !ids.Valid(prefix, id) {
		return "", notFound(what)
	}
	return id, nil
}

// readOwned reads the caller's object named by the {id} path value, e.g.
// with store.ReadTx.OwnedServer; a malformed id, a missing object or
// another account's is a 404 naming what.
func readOwned[T any](a *API, rq *request, prefix, what string, get func(r store.ReadTx, accountID, id string) (T, error)) (T, error) {
	id, err := pathID(rq, prefix, what)
	if err != nil {
		var none T
		return none, err
	}
	return readOne(a, what, func(r store.ReadTx) (T, error) { return get(r, rq.caller.accountID, id) })
}

// readOne runs one typed read; a missing object is a 404 naming what.
func readOne[T any](a *API, what string, get func(r store.ReadTx) (T, error)) (T, error) {
	var v T
	err := a.state.Read(func(r store.ReadTx) (err error) { v, err = get(r); return })
	if errors.Is(err, store.ErrNotFound) {
		return v, notFound(what)
	}
	return v, err
}

// pageOf is a typed page read of the store, e.g. store.ReadTx.Invoices: one
// owner's objects, newest first, with the total count.
type pageOf[T any] func(r store.ReadTx, owner string, offset, limit int) ([]T, int, error)

// listPage serves the page the query asks for of owner's objects, each shown
// as view(item).
func listPage[T, V any](a *API, rq *request, owner string, read pageOf[T], view func(T) V) (int, any, error) {
	page, limit, err := paging(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	var items []T
	var total int
	err = a.state.Read(func(r store.ReadTx) (err error) {
		items, total, err = read(r, owner, (page-1)*limit, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := api.Page[V]{Data: make([]V, 0, len(items)), Page: page, Limit: limit, Total: total}
	for _, it := range items {
		out.Data = append(out.Data, view(it))
	}
	if page*limit < total {
		next := page + 1
		out.NextPage = &next
	}
	return http.StatusOK, out, nil
}

// same is the view of a list whose items are already the API's form.
func same[T any](v T) T { return v }

// listRaw serves a page of the caller's objects whose stored JSON is exactly
// the API's, splicing the stored bytes into the page envelope without
// decoding them.
func (a *API) listRaw(rq *request, read func(r store.ReadTx, owner string, offset, limit int) ([][]byte, int)) (int, any, error) {
	page, limit, err := paging(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	var items [][]byte
	var total int
	_ = a.state.Read(func(r store.ReadTx) error {
		items, total = read(r, rq.caller.accountID, (page-1)*limit, limit)
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
