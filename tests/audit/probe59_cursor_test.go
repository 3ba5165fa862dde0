package audit

import (
	"encoding/json"
	"net/url"
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
func TestProbe59CursorOfAnotherAccount(t *testing.T) {
	r := newLightRig(t)
	ctx := r.ctx
	recv := newReceiver(t)
	r.c.Credit(ctx, r.accA.ID, 100)
	r.c.Credit(ctx, r.accA.ID, 200)
	r.c.Credit(ctx, r.accB.ID, 300)
	r.c.Credit(ctx, r.accB.ID, 400)
	whA := r.hook(r.keyA, recv.URL+"/a", "ticket.created")
	whA2 := r.hook(r.keyA, recv.URL+"/a2", "ticket.created")
	whB := r.hook(r.keyB, recv.URL+"/b", "ticket.created")
	r.hook(r.keyB, recv.URL+"/b2", "ticket.created")
	var bIDs []string
	for i := range 2 {
		r.ticket(i, r.keyA, "p59 A")
		bIDs = append(bIDs, r.ticket(i, r.keyB, "p59 B").ID)
	}
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

	// The id lists: B's item as A's cursor.
	for path, cursor := range map[string]string{"/v1/tickets": bIDs[1], "/v1/webhooks": bHooks[0].ID, "/v1/billing/wallet/transactions": bIDs[len(bIDs)-1]} {
		for i := range r.c.Len() {
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
