package httpapi

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
)

// pageOfIDs is a list page as a client reads it: the ids of its items (by
// idField), page, next_page and next_cursor.
type pageOfIDs struct {
	ids        []string
	page       float64
	nextPage   any
	nextCursor any
}

func readPage(t *testing.T, r reply, idField string) pageOfIDs {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var p pageOfIDs
	data, _ := r.m["data"].([]any)
	for _, it := range data {
		id, _ := it.(map[string]any)[idField].(string)
		p.ids = append(p.ids, id)
	}
	cur, ok := r.m["next_cursor"]
	if !ok {
		t.Fatalf("no next_cursor in %s", r.body)
	}
	p.page, _ = r.m["page"].(float64)
	p.nextPage, p.nextCursor = r.m["next_page"], cur
	return p
}

// TestListCursor: the lists paged by number also walk by cursor (the id of
// the last item seen): a walk by next_cursor shows every item once, newest
// first; an empty cursor is the first page; page with cursor, a cursor of
// another list's ids and a malformed one are 400s naming the parameters;
// the cursor is a position (an id that names nothing, or another account's
// object, places the page and shows nothing of that account). Every answer
// is checked against /openapi.json (s.call).
func TestListCursor(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(api.ScopeServersRead, api.ScopeTicketsRead, api.ScopeTicketsWrite)
	made := s.servers(acc, 3)
	gone := ids.New("srv", time.Now()) // an id that names nothing, between made[2] and made[3]
	time.Sleep(2 * time.Millisecond)
	made = append(made, s.servers(acc, 2)...)
	other, _ := s.account(api.ScopeServersRead)
	foreign := s.server(other) // newer than every server of acc
	newest := slices.Clone(made)
	slices.Reverse(newest)

	// A walk by cursor, limit 2: every server once, newest first; a cursor
	// page has page 0 and next_page null; the last page next_cursor null.
	var walked []string
	cursor := ""
	for n := 0; ; n++ {
		if n > 5 {
			t.Fatalf("walk does not end: %v", walked)
		}
		p := readPage(t, s.call(key, "GET", "/v1/servers?limit=2&cursor="+cursor, ""), "id")
		walked = append(walked, p.ids...)
		if n > 0 && (p.page != 0 || p.nextPage != nil) {
			t.Errorf("cursor page %d: page %v next_page %v, want 0 and null", n, p.page, p.nextPage)
		}
		if p.nextCursor == nil {
			break
		}
		if last := p.ids[len(p.ids)-1]; p.nextCursor != last {
			t.Fatalf("next_cursor %v, want the page's last id %s", p.nextCursor, last)
		}
		cursor = p.nextCursor.(string)
	}
	if !slices.Equal(walked, newest) {
		t.Fatalf("walk by cursor: %v, want %v", walked, newest)
	}

	cases := []struct {
		name, path string
		want       []string // ids, newest first
		next       any      // next_cursor
		err        string   // a 400's message contains it
	}{
		{name: "empty cursor is the first page", path: "/v1/servers?limit=2&cursor=", want: newest[:2], next: newest[1]},
		{name: "empty page with a cursor", path: "/v1/servers?limit=2&page=&cursor=" + newest[1], want: newest[2:4], next: newest[3]},
		{name: "page numbers still work, with next_cursor", path: "/v1/servers?limit=2&page=2", want: newest[2:4], next: newest[3]},
		{name: "cursor at the last item", path: "/v1/servers?limit=2&cursor=" + made[0], want: nil, next: nil},
		{name: "an id naming nothing places the page", path: "/v1/servers?limit=2&cursor=" + gone, want: []string{made[2], made[1]}, next: made[1]},
		{name: "another account's id places the page, shows nothing of it", path: "/v1/servers?limit=2&cursor=" + foreign, want: newest[:2], next: newest[1]},
		{name: "account IPs by cursor", path: "/v1/servers/ips?limit=3&cursor=" + newest[0], want: newest[1:4], next: newest[3]},
		{name: "page with cursor", path: "/v1/servers?page=1&cursor=" + made[0], err: `query parameters "page" and "cursor" cannot be used together`},
		{name: "another list's id", path: "/v1/servers?cursor=tkt_" + gone[4:], err: `query parameter "cursor" must be the next_cursor of a previous page (an id, srv_…)`},
		{name: "malformed cursor", path: "/v1/servers/ips?cursor=srv_x", err: `query parameter "cursor"`},
	}
	for _, tc := range cases {
		r := s.call(key, "GET", tc.path, "")
		if tc.err != "" {
			if r.status != 400 || r.code() != "invalid_query" || !strings.Contains(r.msg(), tc.err) {
				t.Errorf("%s: %d %s, want 400 invalid_query containing %s", tc.name, r.status, r.body, tc.err)
			}
			continue
		}
		idField := "id"
		if strings.HasPrefix(tc.path, "/v1/servers/ips") {
			idField = "serverId"
		}
		p := readPage(t, r, idField)
		if !slices.Equal(p.ids, tc.want) || p.nextCursor != tc.next {
			t.Errorf("%s: ids %v next_cursor %v, want %v and %v", tc.name, p.ids, p.nextCursor, tc.want, tc.next)
		}
	}

	// The tickets list splices stored JSON (listRaw): the same walk.
	var tickets []string
	for range 3 {
		r := s.call(key, "POST", "/v1/tickets", `{"subject":"s","message":"m"}`)
		if r.status != 201 {
			t.Fatalf("create ticket: %d %s", r.status, r.body)
		}
		tickets = append([]string{r.m["id"].(string)}, tickets...)
		time.Sleep(2 * time.Millisecond)
	}
	first := readPage(t, s.call(key, "GET", "/v1/tickets?limit=2", ""), "id")
	if !slices.Equal(first.ids, tickets[:2]) || first.nextCursor != tickets[1] || first.page != 1 {
		t.Fatalf("tickets page 1: %+v, want %v, next_cursor %s", first, tickets[:2], tickets[1])
	}
	second := readPage(t, s.call(key, "GET", "/v1/tickets?limit=2&cursor="+tickets[1], ""), "id")
	if !slices.Equal(second.ids, tickets[2:]) || second.nextCursor != nil || second.page != 0 || second.nextPage != nil {
		t.Fatalf("tickets by cursor: %+v, want %v, the end", second, tickets[2:])
	}
	if r := s.call(key, "GET", "/v1/tickets?page=2&cursor="+tickets[1], ""); r.status != 400 || !strings.Contains(r.msg(), `"page" and "cursor"`) {
		t.Errorf("tickets page with cursor: %d %s, want 400 naming both", r.status, r.body)
	}
	if r := s.call(key, "GET", "/v1/tickets?cursor="+made[0], ""); r.status != 400 || !strings.Contains(r.msg(), `"cursor"`) {
		t.Errorf("tickets with a server id as cursor: %d %s, want 400 naming cursor", r.status, r.body)
	}
}
