package audit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe59CursorOfAnotherAccount: README's cursors as a hostile client
// of account A tries them with what account B's lists answered, through
// each of the three coordinators. The id lists (tickets, webhooks, wallet
// transactions) walk from any id as a position ("a deleted item's id still
// works"): B's item as A's cursor is a page of A's own items and shows
// nothing of B's. The opaque cursors of a webhook's deliveries and of a
// key's usage log are "bound to that subscription's or key's log and the
// caller's account: another list's or account's token, or any other value,
// is the same 400 naming cursor": B's next_cursor on A's list, and A's
// own from another of A's webhooks, are answered as a made-up token is
// (the same status, code and message, but for the value), so an answer
// does not tell whether a token is another account's. probe9's query test
// sends made-up cursors only; httpapi's TestListTokenForeign checks the
// rule below the HTTP server.
//
// A page that shows nothing passes "shows nothing of B's", so every list
// is also walked (probe60): each id list holds two of A's items older than
// B's cursor item and one newer, and A's walk from B's item at limit 1
// (README's next_cursor of each page) is at least two pages whose items are
// exactly A's two older ones, newest first ("?cursor=<that id> is the next,
// older page"); A's webhook's deliveries (three) and key's usage log (at
// least four requests, 3 a page) are walked to their end in at least two
// pages, each item once.
func TestProbe59CursorOfAnotherAccount(t *testing.T) {
	// The walks below are more requests of A's key than a minute's default budget.
	r := lightRig(t, "light", "--rate-limit", "100000")
	ctx := r.ctx
	recv := newReceiver(t)
	r.c.Credit(ctx, r.accA.ID, 100)
	r.c.Credit(ctx, r.accA.ID, 200)
	r.c.Credit(ctx, r.accB.ID, 300)
	r.c.Credit(ctx, r.accB.ID, 400)
	r.c.Credit(ctx, r.accA.ID, 500) // newer than B's: not on A's walk from B's item
	whA := r.hook(r.keyA, recv.URL+"/a", "ticket.created")
	whA2 := r.hook(r.keyA, recv.URL+"/a2", "ticket.created")
	whB := r.hook(r.keyB, recv.URL+"/b", "ticket.created")
	r.hook(r.keyB, recv.URL+"/b2", "ticket.created")
	r.hook(r.keyA, recv.URL+"/a3", "ticket.created") // newer than B's
	var bIDs, aTickets []string
	for i := range 2 {
		aTickets = append([]string{r.ticket(i, r.keyA, "p59 A").ID}, aTickets...)
		bIDs = append(bIDs, r.ticket(i, r.keyB, "p59 B").ID)
	}
	r.ticket(2, r.keyA, "p59 A after") // newer than B's
	list := func(i int, key, path string) (p58Reply, map[string]json.RawMessage) {
		t.Helper()
		rep := p58Do(t, ctx, r.c.URL(i), key, "GET", path, nil, nil, true)
		var m map[string]json.RawMessage
		if rep.status == 200 && json.Unmarshal(rep.body, &m) != nil {
			t.Fatalf("%s: not JSON", rep)
		}
		return rep, m
	}
	next := func(key, path string) string {
		t.Helper()
		var c string
		framework.WaitFor(t, "a next_cursor of "+path, 30*time.Second, 200*time.Millisecond, func() bool {
			rep, m := list(0, key, path+"?limit=1")
			if rep.status != 200 {
				t.Fatalf("%s", rep)
			}
			return json.Unmarshal(m["next_cursor"], &c) == nil && c != ""
		})
		return c
	}
	// B's items' ids, to look for in A's answers.
	for _, path := range []string{"/v1/webhooks", "/v1/billing/wallet/transactions"} {
		_, m := list(0, r.keyB, path)
		var l []struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m["data"], &l) != nil || len(l) < 2 {
			t.Fatalf("B's %s: %s", path, m["data"])
		}
		for _, x := range l {
			bIDs = append(bIDs, x.ID)
		}
	}
	_, m := list(0, r.keyB, "/v1/webhooks")
	var bHooks []struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(m["data"], &bHooks)

	// A's transactions, newest first: 500, 200, 100.
	var aTx []string
	for _, p := range p59Walk(t, r, 0, r.keyA, "/v1/billing/wallet/transactions", "", 200) {
		aTx = append(aTx, p.ids...)
	}
	if len(aTx) != 3 {
		t.Fatalf("A's wallet transactions: %v; want 3", aTx)
	}
	// A's items older than B's cursor item, newest first.
	older := map[string][]string{"/v1/tickets": aTickets, "/v1/webhooks": {whA2.ID, whA.ID}, "/v1/billing/wallet/transactions": aTx[1:]}

	// The id lists: B's item as A's cursor.
	for path, cursor := range map[string]string{"/v1/tickets": bIDs[1], "/v1/webhooks": bHooks[0].ID, "/v1/billing/wallet/transactions": bIDs[len(bIDs)-1]} {
		for i := range r.c.Len() {
			pages := p59Walk(t, r, i, r.keyA, path, cursor, 1)
			var got []string
			for _, p := range pages {
				got = append(got, p.ids...)
			}
			switch {
			case len(pages) < 2:
				t.Errorf("A's %s walked from B's %s at limit 1, coordinator %d: %d page(s) %v; want at least two", path, cursor, i, len(pages), got)
			case !slices.Equal(got, older[path]):
				t.Errorf("A's %s walked from B's %s, coordinator %d: %v in %d pages; want A's items older than B's, newest first: %v", path, cursor, i, got, len(pages), older[path])
			}
			for _, b := range bIDs {
				if slices.Contains(got, b) {
					t.Errorf("A's %s walked from B's cursor, coordinator %d, shows B's %s", path, i, b)
				}
			}
			rep, m := list(i, r.keyA, path+"?cursor="+url.QueryEscape(cursor))
			if rep.status != 200 {
				t.Errorf("A's %s with B's %s as its cursor, coordinator %d: %s; want A's page from that position", path, cursor, i, rep)
				continue
			}
			for _, b := range bIDs {
				if strings.Contains(string(m["data"]), b) {
					t.Errorf("A's %s with B's cursor, coordinator %d, shows B's %s: %s", path, i, b, rep)
				}
			}
		}
	}

	// A's opaque-cursor lists walked to their end: whA's deliveries (A's
	// three tickets) 2 a page; the usage log of A's key (written every few
	// seconds), once it holds four requests, 3 a page.
	usageA := "/v1/account/api-keys/" + r.keyID(r.keyA) + "/usage"
	for path, want := range map[string]int{"/v1/webhooks/" + whA.ID + "/deliveries": 3, usageA: 4} {
		framework.WaitFor(t, fmt.Sprint(want, " items on ", path), 30*time.Second, 200*time.Millisecond, func() bool {
			n := 0
			for _, p := range p59Walk(t, r, 0, r.keyA, path, "", 200) {
				n += len(p.ids)
			}
			return n >= want
		})
		for i := range r.c.Len() {
			pages := p59Walk(t, r, i, r.keyA, path, "", min(want, 4)-1)
			seen := map[string]bool{}
			for _, p := range pages {
				for _, id := range p.ids {
					if seen[id] {
						t.Errorf("A's %s walked at coordinator %d shows %.200s twice", path, i, id)
					}
					seen[id] = true
				}
			}
			if len(pages) < 2 || len(seen) < want {
				t.Errorf("A's %s walked at coordinator %d: %d pages, %d items; want at least two pages and %d items", path, i, len(pages), len(seen), want)
			}
		}
	}

	// The opaque cursors: B's, A's of another log, and a made-up one.
	type opaque struct{ list, foreign, what string }
	usageB := next(r.keyB, "/v1/account/api-keys/"+r.keyID(r.keyB)+"/usage")
	cases := []opaque{
		{"/v1/webhooks/" + whA.ID + "/deliveries", next(r.keyB, "/v1/webhooks/"+whB.ID+"/deliveries"), "B's webhook's next_cursor"},
		{"/v1/webhooks/" + whA.ID + "/deliveries", next(r.keyA, "/v1/webhooks/"+whA2.ID+"/deliveries"), "A's other webhook's next_cursor"},
		{"/v1/account/api-keys/" + r.keyID(r.keyA) + "/usage", usageB, "B's key's usage next_cursor"},
	}
	for _, c := range cases {
		for i := range r.c.Len() {
			made, _ := list(i, r.keyA, c.list+"?cursor="+url.QueryEscape(c.foreign+"x"))
			rep, _ := list(i, r.keyA, c.list+"?cursor="+url.QueryEscape(c.foreign))
			me, _ := made.envelope()
			e, _ := rep.envelope()
			switch {
			case rep.status != 400 || e.Code != "invalid_query" || !strings.Contains(e.Message, `"cursor"`):
				t.Errorf("%s with %s, coordinator %d: %s; want 400 invalid_query naming cursor", c.list, c.what, i, rep)
			case made.status != rep.status || me.Code != e.Code || strings.ReplaceAll(me.Message, c.foreign+"x", c.foreign) != e.Message:
				t.Errorf("%s, coordinator %d: %s answered %s; a made-up token %s (an answer tells them apart)", c.list, i, c.what, rep, made)
			}
		}
	}
}

// keyID is the id of key, as its own account's key list shows it.
func (r *rig) keyID(key string) string {
	r.t.Helper()
	var l struct {
		Data []struct {
			ID     string `json:"id"`
			Prefix string `json:"prefix"`
		} `json:"data"`
	}
	r.get(r.t, 0, key, "/v1/account/api-keys", &l)
	for _, k := range l.Data {
		if k.Prefix != "" && strings.HasPrefix(key, k.Prefix) {
			return k.ID
		}
	}
	if len(l.Data) == 1 {
		return l.Data[0].ID
	}
	r.t.Fatalf("no key of the account's list is %.8s…: %+v", key, l.Data)
	return ""
}

// p59Page is one page of a list walked by cursor: its items' ids (a
// delivery's delivery_id; a usage record, which has none, as its JSON) and
// its next_cursor ("" at the end: null).
type p59Page struct {
	ids  []string
	next string
}

// p59Walk walks path as key through coordinator i by cursor from cursor
// ("" the first page), limit items a page, until next_cursor is null, and
// returns the pages; an answer other than a 200 fails t, and more than 500
// pages is an error (a walk that never ends).
func p59Walk(t *testing.T, r *rig, i int, key, path, cursor string, limit int) []p59Page {
	t.Helper()
	var pages []p59Page
	for {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		rep := p58Do(t, r.ctx, r.c.URL(i), key, "GET", path+"?"+q.Encode(), nil, nil, true)
		var l struct {
			Data []json.RawMessage `json:"data"`
			Next *string           `json:"next_cursor"`
		}
		if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil {
			t.Fatalf("walking %s from %q, coordinator %d: %s", path, cursor, i, rep)
		}
		var p p59Page
		for _, raw := range l.Data {
			var x struct {
				ID         string `json:"id"`
				DeliveryID string `json:"delivery_id"`
			}
			_ = json.Unmarshal(raw, &x)
			switch {
			case x.ID != "":
				p.ids = append(p.ids, x.ID)
			case x.DeliveryID != "":
				p.ids = append(p.ids, x.DeliveryID)
			default:
				p.ids = append(p.ids, string(raw)) // a usage record: no id
			}
		}
		if l.Next != nil {
			p.next = *l.Next
		}
		pages = append(pages, p)
		if p.next == "" {
			return pages
		}
		if len(pages) == 500 {
			t.Errorf("walking %s: still a next_cursor after 500 pages", path)
			return pages
		}
		cursor = p.next
	}
}
