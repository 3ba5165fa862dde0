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

// walkOf is a typed page read of the store in its cursor form, e.g.
// store.ReadTx.InvoicesAt: one owner's objects, newest first, from at, with
// the total count and the next page's cursor ("" at the end).
type walkOf[T any] func(r store.ReadTx, owner string, at store.PageAt, limit int) ([]T, int, string, error)

// A list that takes a cursor walks the same order as page numbers do, but a
// page starts below the id of the last item the client saw (next_cursor of
// the page before) rather than after a count of items: an item made or
// deleted between two requests moves the numbered pages (showing an item
// twice, or never), not that position. The cursor is a position, not a
// lookup (store.PageAt): a deleted item's id still places the page, and an
// id of another account's places it without reading anything of that
// account's. A cursor page answers page 0 (it has no number) and next_page
// null; page and cursor in one request are a 400.

// listWalk serves the page the query asks for, by number or by cursor (the
// id of an item, of prefix), of owner's objects, each shown as view(item).
func listWalk[T, V any](a *API, rq *request, owner, prefix string, read walkOf[T], view func(T) V) (int, any, error) {
	at, page, limit, err := pagingAt(rq.Request, prefix)
	if err != nil {
		return 0, nil, err
	}
	var items []T
	var total int
	var next string
	err = a.state.Read(func(r store.ReadTx) (err error) {
		items, total, next, err = read(r, owner, at, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := api.Page[V]{Data: make([]V, 0, len(items)), Page: page, Limit: limit, Total: total}
	for _, it := range items {
		out.Data = append(out.Data, view(it))
	}
	if page > 0 && page*limit < total {
		n := page + 1
		out.NextPage = &n
	}
	if next != "" {
		out.NextCursor = &next
	}
	return http.StatusOK, out, nil
}

// same is the view of a list whose items are already the API's form.
func same[T any](v T) T { return v }

// listRaw serves a page, by number or by cursor (the id of an item, of
// prefix), of the caller's objects whose stored JSON is exactly the API's,
// splicing the stored bytes into the page envelope without decoding them.
func (a *API) listRaw(rq *request, prefix string, read func(r store.ReadTx, owner string, at store.PageAt, limit int) ([][]byte, int, string)) (int, any, error) {
	at, page, limit, err := pagingAt(rq.Request, prefix)
	if err != nil {
		return 0, nil, err
	}
	var items [][]byte
	var total int
	var next string
	_ = a.state.Read(func(r store.ReadTx) error {
		items, total, next = read(r, rq.caller.accountID, at, limit)
		return nil
	})
	n := 96 + len(next)
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
	if page > 0 && page*limit < total {
		buf = strconv.AppendInt(buf, int64(page+1), 10)
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, `,"next_cursor":`...)
	if next != "" {
		buf = strconv.AppendQuote(buf, next) // an id: [a-z0-9_], nothing to escape
	} else {
		buf = append(buf, "null"...)
	}
	buf = append(buf, "}\n"...)
	return http.StatusOK, rawJSON(buf), nil
}

// pagingAt parses a list's ?page=, ?limit= and, when the list takes one
// (prefix, its items' id prefix, is not ""), ?cursor=: the id of the last
// item of the page before (an empty value is the first page). With a
// cursor, page is 0 (a cursor page has no number); page and cursor
// together are a 400 naming both, a cursor that is not an id of prefix a
// 400 naming it.
func pagingAt(r *http.Request, prefix string) (at store.PageAt, page, limit int, err error) {
	if page, limit, err = paging(r); err != nil {
		return at, 0, 0, err
	}
	q := r.URL.Query()
	cursor := q.Get("cursor")
	if prefix == "" || cursor == "" {
		return store.PageAt{Offset: (page - 1) * limit}, page, limit, nil
	}
	if q.Get("page") != "" {
		return at, 0, 0, errPageAndCursor()
	}
	if !ids.Valid(prefix, cursor) {
		return at, 0, 0, &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameter \"cursor\" must be the next_cursor of a previous page (an id, " + prefix + "_…)"}
	}
	return store.PageAt{Below: cursor}, 0, limit, nil
}

func errPageAndCursor() error {
	return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameters \"page\" and \"cursor\" cannot be used together: walk by one or the other"}
}
