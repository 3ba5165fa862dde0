package audit

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// cursorPage is a page of a /v1 list read by cursor.
type cursorPage[T any] struct {
	Data       []T     `json:"data"`
	Page       int     `json:"page"`
	NextPage   *int    `json:"next_page"`
	NextCursor *string `json:"next_cursor"`
}

// walkByCursor reads path (a list, with its limit) page after page by
// next_cursor through coordinator i as key, calling between after every
// page but the last; at most maxPages pages.
func walkByCursor[T any](t *testing.T, r *rig, i int, key, path string, maxPages int, between func(page []T)) (seen []T) {
	t.Helper()
	cursor := ""
	for n := 0; n < maxPages; n++ {
		var l cursorPage[T]
		r.get(t, i, key, path+"&cursor="+url.QueryEscape(cursor), &l)
		if n > 0 && (l.Page != 0 || l.NextPage != nil) {
			t.Errorf("page %d by cursor: page %d, next_page %v; want 0 and null", n+1, l.Page, l.NextPage)
		}
		seen = append(seen, l.Data...)
		if l.NextCursor == nil {
			return seen
		}
		cursor = *l.NextCursor
		between(l.Data)
	}
	t.Fatalf("%s: no end after %d pages", path, maxPages)
	return nil
}

// checkWalkSawEachOnce fails t for each item a walk saw more than once
// (seen counts the times each id was seen) and for each item of before
// (there for the whole walk) it never saw; what names the kind of item.
func checkWalkSawEachOnce(t *testing.T, what string, seen map[string]int, before []string) {
	t.Helper()
	for id, k := range seen {
		if k > 1 {
			t.Errorf("%s %s seen %d times in one walk", what, id, k)
		}
	}
	for _, id := range before {
		if seen[id] == 0 {
			t.Errorf("%s %s, there for the whole walk, never seen", what, id)
		}
	}
}

// TestProbe10TicketCursorUnderInserts is TestProbe10TicketPagesUnderInserts
// (a walk of GET /v1/tickets with limit=2 while the account opens a ticket
// between two page requests) walking by next_cursor: no ticket is seen
// twice and every ticket there for the whole walk is seen. By page number
// (the probe's walk) 4 tickets were seen twice: each insert pushed the last
// ticket seen onto the next page.
func TestProbe10TicketCursorUnderInserts(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	var before []string
	for i := range 6 {
		before = append(before, r.ticket(f, r.keyA, fmt.Sprintf("before %d", i)).ID)
	}
	n := 0
	seen := map[string]int{}
	for _, tk := range walkByCursor(t, r, f, r.keyA, "/v1/tickets?limit=2", 20, func([]api.Ticket) {
		r.ticket(f, r.keyA, fmt.Sprintf("during %d", n))
		n++
	}) {
		seen[tk.ID]++
	}
	if n == 0 {
		t.Fatal("no ticket opened during the walk")
	}
	checkWalkSawEachOnce(t, "ticket", seen, before)
	if len(seen) != len(before) {
		t.Errorf("the walk saw %d tickets, want the %d opened before it (those opened during it are newer than its first page)", len(seen), len(before))
	}
}

// TestProbe10WebhookCursorUnderDeletes is TestProbe10WebhookPagesUnderDeletes
// (a walk of GET /v1/webhooks with limit=2 while the account deletes a
// webhook it has already seen after each page) walking by next_cursor:
// every webhook there for the whole walk is seen, and none twice; the
// cursor of a page whose last webhook is then deleted still places the
// next page. By page number 2 webhooks were never seen: each deletion
// behind the walk moved an unseen one onto the page already read.
func TestProbe10WebhookCursorUnderDeletes(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	s := newSink(t, nil)
	var all []string
	for range 6 {
		all = append(all, r.hook(r.keyA, s.URL, "ticket.created").ID)
	}
	var deleted []string
	del := func(id string) {
		r.remove(t, f, r.keyA, "/v1/webhooks/"+id)
		deleted = append(deleted, id)
	}
	pages := 0
	seen := map[string]int{}
	for _, w := range walkByCursor(t, r, f, r.keyA, "/v1/webhooks?limit=2", 10, func(page []api.Webhook) {
		pages++
		if pages == 1 {
			del(page[len(page)-1].ID) // the next page's cursor names a deleted webhook
		} else {
			del(page[0].ID)
		}
	}) {
		seen[w.ID]++
	}
	if len(deleted) == 0 {
		t.Fatal("no webhook deleted during the walk")
	}
	for _, id := range all {
		if seen[id] == 0 && !slices.Contains(deleted, id) {
			t.Errorf("webhook %s, there for the whole walk, never seen", id)
		}
		if seen[id] > 1 {
			t.Errorf("webhook %s seen %d times in one walk", id, seen[id])
		}
	}
}
