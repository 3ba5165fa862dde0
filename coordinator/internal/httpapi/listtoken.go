package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"

	"github.com/hostplane/hostplane/pkg/api"
)

// A list whose position is not one item's id (the webhook delivery log,
// whose queued rows are computed; a key's usage log, whose entries have no
// id) walks by an opaque cursor: a token naming the list (its kind and the
// object it belongs to: a subscription, a key) and the caller's account,
// and the position. The list refuses a token of another kind, object or
// account, or one it cannot read, with the 400 naming cursor the lists
// walked by id answer a cursor that is none of theirs. The binding is a
// hash, not a secret: a token only ever places a page in the caller's own
// list, so a forged one shows nothing another account's.

// Kinds of opaque cursor.
const (
	tokenDeliveries byte = 'd'
	tokenKeyUsage   byte = 'u'
)

// listTokenBind is the part of a token binding it to its list and account.
func listTokenBind(kind byte, accountID, listID string) []byte {
	h := sha256.Sum256([]byte{kind, 0})
	h = sha256.Sum256(append(append(append(h[:], accountID...), 0), listID...))
	return h[:8]
}

// sealListToken is the cursor of position pos in the list of kind kind of
// listID, for account accountID.
func sealListToken(kind byte, accountID, listID string, pos []byte) string {
	b := append(append([]byte{kind}, listTokenBind(kind, accountID, listID)...), pos...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openListToken is the position in cursor, a token sealListToken made for
// the same kind, listID and account; anything else is a 400 naming cursor.
func openListToken(cursor string, kind byte, accountID, listID string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 9 || b[0] != kind || string(b[1:9]) != string(listTokenBind(kind, accountID, listID)) {
		return nil, badListToken()
	}
	return b[9:], nil
}

// tokenPage answers out, a page of a list walked by an opaque cursor (kind,
// listID): next_page while a numbered page has rows after it, next_cursor
// the token of pos, the place of the page's last row when another follows
// (nil: none does).
func tokenPage[T any](rq *request, out api.Page[T], kind byte, listID string, pos []byte) (int, any, error) {
	if out.Page > 0 && out.Page*out.Limit < out.Total {
		n := out.Page + 1
		out.NextPage = &n
	}
	if pos != nil {
		c := sealListToken(kind, rq.caller.accountID, listID, pos)
		out.NextCursor = &c
	}
	return http.StatusOK, out, nil
}

func badListToken() error {
	return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameter \"cursor\" must be the next_cursor of a previous page of this list"}
}

// pagingToken parses a list's ?page=, ?limit= and ?cursor= where the
// cursor is an opaque token ("" when absent or empty: the page asked for
// by number). With a cursor, page is 0; page and cursor together are the
// 400 pagingAt answers.
func pagingToken(r *http.Request) (cursor string, page, limit int, err error) {
	if page, limit, err = paging(r); err != nil {
		return "", 0, 0, err
	}
	q := r.URL.Query()
	if cursor = q.Get("cursor"); cursor == "" {
		return "", page, limit, nil
	}
	if q.Get("page") != "" {
		return "", 0, 0, errPageAndCursor()
	}
	return cursor, 0, limit, nil
}
