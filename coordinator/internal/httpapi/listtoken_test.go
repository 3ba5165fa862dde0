package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// tokenPage is one page of a list walked by an opaque cursor ("" for the
// first page), checked against openapi.json (w.do): its rows, and its
// next_cursor ("" when null).
func (w *whAPI) tokenPage(key, path, cursor string, limit int) (rows []map[string]any, next string) {
	w.t.Helper()
	q := fmt.Sprintf("?limit=%d", limit)
	if cursor != "" {
		q += "&cursor=" + url.QueryEscape(cursor)
	}
	st, m := w.do(key, "GET", path+q, "")
	if st != 200 {
		w.t.Fatalf("GET %s%s: %d %v", path, q, st, m)
	}
	if cursor != "" && (m["page"] != float64(0) || m["next_page"] != nil) {
		w.t.Errorf("a cursor page answers page %v, next_page %v; want 0 and null", m["page"], m["next_page"])
	}
	for _, r := range m["data"].([]any) {
		rows = append(rows, r.(map[string]any))
	}
	nc, ok := m["next_cursor"]
	if !ok {
		w.t.Fatalf("GET %s%s: no next_cursor", path, q)
	}
	if s, _ := nc.(string); s != "" {
		next = s
	}
	return rows, next
}

// walk walks path by cursor (w.tokenPage), pages of limit, to the page
// whose next_cursor is null, failing past 20 pages. After each page it
// calls between with the page's number (from 1) and rows, before the next
// page is asked for. It returns how many times each row's idField was
// seen, and the number of pages.
func (w *whAPI) walk(key, path string, limit int, idField string, between func(page int, rows []map[string]any)) (seen map[string]int, pages int) {
	w.t.Helper()
	seen = map[string]int{}
	cursor := ""
	for {
		rows, next := w.tokenPage(key, path, cursor, limit)
		for _, r := range rows {
			seen[r[idField].(string)]++
		}
		pages++
		between(pages, rows)
		if next == "" {
			return seen, pages
		}
		if pages > 20 {
			w.t.Fatal("the walk does not end")
		}
		cursor = next
	}
}

// attempted is how many of the rows of wh's delivery log (first page of
// 200) are succeeded attempts.
func (w *whAPI) attempted(key, wh string) int {
	_, rows := w.deliveries(key, wh, 1, 200)
	n := 0
	for _, r := range rows {
		if r["outcome"] == api.AttemptSucceeded {
			n++
		}
	}
	return n
}

// TestWebhookDeliveryCursorWalk: a walk of the delivery log by cursor, pages
// of 3, shows each of 20 deliveries queued when it began once, while their
// first attempts apply between pages: first the oldest ones, not reached
// yet, then all of them, the ones already shown as queued among them; and
// while new events add queued rows. The last page answers next_cursor null.
func TestWebhookDeliveryCursorWalk(t *testing.T) {
	w := newWHAPI(t)
	rc := newHeldReceiver(t)
	acc, key := w.account(api.ScopeWebhooksRead)
	wh := w.subscribe(acc, rc.srv.URL+"/held", "*")
	w.dispatch()
	for range 20 {
		w.ticket(acc)
	}
	path := "/v1/webhooks/" + wh + "/deliveries"
	_, first := w.deliveries(key, wh, 1, 200)
	if len(first) != 20 {
		t.Fatalf("%d rows before the walk, want 20 queued", len(first))
	}
	seen, pages := w.walk(key, path, 3, "delivery_id", func(page int, _ []map[string]any) {
		switch page {
		case 1:
			// The 8 oldest deliveries' first attempts (not shown yet)
			// apply, and 2 new events come.
			for range 8 {
				rc.release <- struct{}{}
			}
			waitHook(t, "8 attempts", func() bool { return w.attempted(key, wh) == 8 })
			w.ticket(acc)
			w.ticket(acc)
		case 3:
			// Every delivery's first attempt applies: the 6 shown as
			// queued rows, and the new ones too.
			for range 14 {
				rc.release <- struct{}{}
			}
			waitHook(t, "22 attempts", func() bool { return w.attempted(key, wh) == 22 })
			w.ticket(acc)
		}
	})
	for _, r := range first {
		if id := r["delivery_id"].(string); seen[id] != 1 {
			t.Errorf("delivery %s (queued when the walk began) seen %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s seen %d times", id, n)
		}
	}
	if pages < 7 {
		t.Errorf("%d pages of 3 for 20 deliveries", pages)
	}
}

// TestKeyUsageCursorWalk: a walk of a key's usage log by cursor, pages of
// 4, shows every entry there for the whole walk once, newest request first,
// while flushes add newer entries between pages (which shift the page
// numbers) and one adds entries as old as those at the walk's end.
func TestKeyUsageCursorWalk(t *testing.T) {
	w := newWHAPI(t)
	acc, reader := w.account(api.ScopeAccountRead)
	keyID, _ := w.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}})
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	n := 0
	flush := func(at ...time.Time) {
		var es []fsm.KeyUsageEntry
		for _, a := range at {
			n++
			es = append(es, fsm.KeyUsageEntry{At: a, Method: "GET", Path: fmt.Sprintf("/v1/x/%d", n), Status: 200, IP: "192.0.2.1"})
		}
		w.apply(fsm.CmdKeyUsage, fsm.KeyUsage{Keys: []fsm.KeyUsageBatch{{KeyID: keyID, LastUsedAt: at[len(at)-1], Count: int64(len(at)), Entries: es}}})
	}
	var start []time.Time
	for i := range 15 {
		start = append(start, t0.Add(time.Duration(i)*time.Minute))
	}
	start = append(start, t0.Add(7*time.Minute)) // two entries of one time
	flush(start...)
	path := "/v1/account/api-keys/" + keyID + "/usage"
	_, before := w.deliveriesOf(reader, path)
	var last time.Time
	seen, _ := w.walk(reader, path, 4, "path", func(page int, rows []map[string]any) {
		for _, r := range rows {
			at, _ := time.Parse(time.RFC3339Nano, r["at"].(string))
			if page > 1 && at.After(last) {
				t.Errorf("page %d: %v after %v: not newest first", page, at, last)
			}
			last = at
		}
		// Newer requests between pages; on page 2, a late flush of
		// requests as old as the log's oldest.
		flush(time.Now().UTC(), time.Now().UTC())
		if page == 2 {
			flush(t0.Add(-time.Minute))
		}
	})
	for _, p := range before {
		if seen[p] != 1 {
			t.Errorf("entry %s (there for the whole walk) seen %d times", p, seen[p])
		}
	}
	for p, k := range seen {
		if k != 1 {
			t.Errorf("entry %s seen %d times", p, k)
		}
	}
}

// deliveriesOf is every path of the first page (200) of a key's usage log.
func (w *whAPI) deliveriesOf(key, path string) (int, []string) {
	w.t.Helper()
	st, m := w.do(key, "GET", path+"?limit=200", "")
	if st != 200 {
		w.t.Fatalf("GET %s: %d %v", path, st, m)
	}
	var out []string
	for _, r := range m["data"].([]any) {
		out = append(out, r.(map[string]any)["path"].(string))
	}
	return int(m["total"].(float64)), out
}

// TestListTokenForeign: a delivery-log or usage-log cursor is refused (400
// naming cursor) by another subscription's log, another account's, a key's
// usage log and a list walked by id; a list walked by id's cursor and a
// malformed one by the delivery log; with page it is the 400 naming both.
func TestListTokenForeign(t *testing.T) {
	w := newWHAPI(t)
	rc := newHeldReceiver(t)
	accA, keyA := w.account(api.ScopeWebhooksRead, api.ScopeAccountRead, api.ScopeTicketsRead)
	accB, keyB := w.account(api.ScopeWebhooksRead, api.ScopeAccountRead)
	whA := w.subscribe(accA, rc.srv.URL+"/a", "*")
	whA2 := w.subscribe(accA, rc.srv.URL+"/a2", "*")
	whB := w.subscribe(accB, rc.srv.URL+"/b", "*")
	for range 3 {
		w.ticket(accA)
		w.ticket(accB)
	}
	kA, _ := w.addKey(accA, fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}})
	kA2, _ := w.addKey(accA, fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}})
	kB, _ := w.addKey(accB, fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}})
	for _, k := range []string{kA, kA2, kB} {
		now := time.Now().UTC()
		w.apply(fsm.CmdKeyUsage, fsm.KeyUsage{Keys: []fsm.KeyUsageBatch{{KeyID: k, LastUsedAt: now, Count: 3, Entries: []fsm.KeyUsageEntry{
			{At: now, Method: "GET", Path: "/v1/a", Status: 200}, {At: now, Method: "GET", Path: "/v1/b", Status: 200}, {At: now, Method: "GET", Path: "/v1/c", Status: 200}}}}})
	}
	dA := "/v1/webhooks/" + whA + "/deliveries"
	uA := "/v1/account/api-keys/" + kA + "/usage"
	_, dlvCursor := w.tokenPage(keyA, dA, "", 1)
	_, useCursor := w.tokenPage(keyA, uA, "", 1)
	if dlvCursor == "" || useCursor == "" {
		t.Fatalf("no next cursor: %q %q", dlvCursor, useCursor)
	}
	// Each works on its own list.
	if rows, _ := w.tokenPage(keyA, dA, dlvCursor, 5); len(rows) != 2 {
		t.Errorf("A's delivery log by its cursor: %d rows, want 2", len(rows))
	}
	if rows, _ := w.tokenPage(keyA, uA, useCursor, 5); len(rows) != 2 {
		t.Errorf("A's key usage by its cursor: %d rows, want 2", len(rows))
	}
	refused := []struct{ key, path, cursor string }{
		{keyA, "/v1/webhooks/" + whA2 + "/deliveries", dlvCursor},   // another subscription's log
		{keyB, "/v1/webhooks/" + whB + "/deliveries", dlvCursor},    // another account's
		{keyA, "/v1/account/api-keys/" + kA2 + "/usage", useCursor}, // another key's usage
		{keyB, "/v1/account/api-keys/" + kB + "/usage", useCursor},  // another account's key
		{keyA, "/v1/account/api-keys/" + kA + "/usage", dlvCursor},  // another kind of list
		{keyA, dA, useCursor},                        // another kind of list
		{keyA, "/v1/tickets", dlvCursor},             // a list walked by id
		{keyA, dA, "tkt_01jfj0v4fcv7nmx2p9q8r0s1t2"}, // an id is no cursor of this list
		{keyA, dA, dlvCursor[:len(dlvCursor)-3]},     // cut short
		{keyA, dA, "not a cursor"},                   // not base64url
		{keyA, uA, useCursor + "AA"},                 // a longer position
	}
	for _, c := range refused {
		st, e := w.do(c.key, "GET", c.path+"?cursor="+url.QueryEscape(c.cursor), "")
		if msg, _ := e["message"].(string); st != 400 || e["code"] != "invalid_query" || !strings.Contains(msg, `"cursor"`) {
			t.Errorf("GET %s?cursor=%s: %d %v; want a 400 naming cursor", c.path, c.cursor, st, e)
		}
	}
	for _, p := range []string{dA, uA} {
		c := dlvCursor
		if p == uA {
			c = useCursor
		}
		st, e := w.do(keyA, "GET", p+"?page=1&cursor="+url.QueryEscape(c), "")
		if msg, _ := e["message"].(string); st != 400 || !strings.Contains(msg, `"page" and "cursor"`) {
			t.Errorf("GET %s with page and cursor: %d %v", p, st, e)
		}
		if st, _ := w.do(keyA, "GET", p+"?cursor=", ""); st != 200 {
			t.Errorf("GET %s?cursor= (empty: the first page): %d", p, st)
		}
	}
}
