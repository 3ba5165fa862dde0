package audit

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestGaps16CursorWalksThroughAFollower walks the three lists a customer
// reads by cursor and whose rows move under them, each through a follower
// while rows are added, and for key usage pruned, between two pages: each
// row is seen at most once, and none is skipped that was there for the
// whole walk.
//   - webhook deliveries: a failing receiver keeps 12 deliveries queued; between
//     pages a ticket (one more delivery) is opened through the leader, and
//     halfway the receiver recovers, so queued deliveries get attempted
//     mid-walk (a delivery's row appears once, queued or attempted). The log's
//     rows are attempts: a delivery whose retry was logged before the walk
//     began (the rig retries after 1 s, which a loaded machine's slow walk
//     lets pass) has a row for each, so rows are told apart by attempt;
//   - key usage: a key with 200 logged requests (the log keeps the newest 200)
//     makes 15 more between pages, through the two other coordinators, so the
//     oldest are pruned mid-walk; the rows there before and after the walk
//     were there throughout;
//   - tickets: between pages one is opened through the leader and one seen is
//     closed (its updated_at moves).
func TestGaps16CursorWalksThroughAFollower(t *testing.T) {
	r := sharedLightRig(t, "gaps16cur")
	ld, f := r.leaderAndFollower()
	other := (ld + 2) % 3

	t.Run("webhook deliveries", func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		s := switchedSink(t, 500, &failing)
		wh := r.hook(r.keyA, s.URL, "ticket.created")
		for i := range 12 {
			r.ticket(other, r.keyA, fmt.Sprintf("queued %d", i))
		}
		var before []string
		dlvs := map[string]bool{}
		for _, a := range r.attempts(f, r.keyA, wh.ID) {
			before = append(before, deliveryRow(a))
			dlvs[a.DeliveryID] = true
		}
		if len(dlvs) < 12 {
			t.Fatalf("%d deliveries listed before the walk; want 12", len(dlvs))
		}
		pages := 0
		seen := map[string]int{}
		for _, a := range walkByCursor(t, r, f, r.keyA, "/v1/webhooks/"+wh.ID+"/deliveries?limit=3", 40, func([]api.WebhookAttempt) {
			r.ticket(ld, r.keyA, fmt.Sprintf("during %d", pages))
			if pages++; pages == 2 {
				failing.Store(false)
				time.Sleep(time.Second) // attempts logged before the next page
			}
		}) {
			seen[deliveryRow(a)]++
		}
		t.Logf("delivery log: %d rows (%d deliveries) before, %d seen in %d pages", len(before), len(dlvs), len(seen), pages+1)
		checkWalkSawEachOnce(t, "delivery log row", seen, before)
	})

	t.Run("key usage", func(t *testing.T) {
		k, err := r.c.AnyAlive(nil).Admin().CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: "walked", Scopes: api.AllScopes, RateLimitPerMin: 10000})
		if err != nil {
			t.Fatal(err)
		}
		// n requests sent, answered of them the 404 of a ticket that is
		// not there: each a use logged under its own path. Any other answer
		// (a 503 in an election, which may be answered before the key is
		// looked at) is logged, and the next path sent in its place.
		n, answered := 0, 0
		use := func(count int) {
			for c := 0; c < count; {
				i := []int{ld, other}[n%2]
				rep := r.apis[i].Call(k.Key, "GET", fmt.Sprintf("/v1/tickets/tkt_gaps16_%04d", n), nil, nil)
				if n++; rep.Status == 404 {
					answered++
					c++
				} else {
					t.Logf("a use through coordinator %d: %s; another sent in its place", i, rep)
				}
			}
		}
		usage := func() map[string]bool {
			out := map[string]bool{}
			for _, u := range walkByCursor(t, r, f, r.keyA, "/v1/account/api-keys/"+k.Info.ID+"/usage?limit=100", 10, func([]api.KeyUsage) {}) {
				out[u.Path] = true
			}
			return out
		}
		flushed := func(want int) map[string]bool {
			for end := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				if u := usage(); len(u) >= want || time.Now().After(end) {
					return u
				}
			}
		}
		// The log takes at most 50 of a key's uses per usage flush (2 s),
		// from the whole cluster (a follower ships its uses to the leader's
		// recorder, which caps them): it is filled 40 uses at a time, each
		// batch once the ones before are in the log. A sleep of a flush
		// interval between batches, as before, let a loaded machine's late
		// flush (or one proposed again after an election) take two batches
		// and log 50 of their 80 uses ("170 usage rows after 210 requests").
		var start map[string]bool
		for _, count := range []int{40, 40, 40, 40, 40, 10} {
			use(count)
			want := min(answered, 200)
			if start = flushed(want); len(start) < want {
				t.Fatalf("%d usage rows after %d requests (%d sent); want the newest %d", len(start), answered, n, want)
			}
		}
		pages := 0
		seen := map[string]int{}
		for _, u := range walkByCursor(t, r, f, r.keyA, "/v1/account/api-keys/"+k.Info.ID+"/usage?limit=20", 40, func([]api.KeyUsage) {
			use(15)
			pages++
			time.Sleep(2500 * time.Millisecond) // past the usage flush interval: pruned before the next page
		}) {
			seen[u.Path]++
		}
		end := usage()
		var throughout []string
		for p := range start {
			if end[p] {
				throughout = append(throughout, p)
			}
		}
		t.Logf("key usage: %d rows at the start, %d of them still at the end, %d seen in %d pages, %d requests made (%d sent)",
			len(start), len(throughout), len(seen), pages+1, answered, n)
		if len(throughout) == len(start) {
			t.Errorf("no usage row was pruned during the walk (%d requests); the walk did not test pruning", answered)
		}
		checkWalkSawEachOnce(t, "usage row", seen, throughout)
	})

	t.Run("tickets", func(t *testing.T) {
		var before []string
		for i := range 8 {
			before = append(before, r.ticket(other, r.keyB, fmt.Sprintf("before %d", i)).ID)
		}
		n := 0
		seen := map[string]int{}
		for _, tk := range walkByCursor(t, r, f, r.keyB, "/v1/tickets?limit=3", 20, func(page []api.Ticket) {
			r.ticket(ld, r.keyB, fmt.Sprintf("during %d", n))
			n++
			if rep := r.call(ld, r.keyB, "POST", "/v1/tickets/"+page[0].ID+"/close", nil, nil); rep.Status >= 300 {
				t.Errorf("close %s: %s", page[0].ID, rep)
			}
		}) {
			seen[tk.ID]++
		}
		checkWalkSawEachOnce(t, "ticket", seen, before)
	})
}

// deliveryRow names a row of a delivery log by its delivery, chain and
// attempt: a queued row (attempt 0) is named as the first attempt it
// becomes, so a walk that showed a delivery queued and then its first
// attempt saw the same row twice.
func deliveryRow(a api.WebhookAttempt) string {
	return fmt.Sprintf("%s chain %d attempt %d", a.DeliveryID, a.Chain, max(a.Attempt, 1))
}
