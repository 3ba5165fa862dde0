package audit

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe11AcrossCoordinators: what a client spreading its calls over the
// three coordinators relies on.
//
// Reads after writes (README "Read consistency"): a ticket or webhook made
// through one coordinator is, at once, the first of its list read through
// each other one (by page and by cursor: the next page's cursor from one
// coordinator walks on at another), and readable by id there.
//
// A client's own X-Hostplane-Forwarded-By or X-Hostplane-Body-Unread header
// changes nothing, at the leader or a follower.
//
// Idempotency (SPEC.md: the same key and body replay the first response, the
// same key with another body is a 422): one Idempotency-Key sent at the same
// moment to two coordinators with two different bodies makes one ticket; the
// other send is a 409 (the key in flight) or the 422; afterwards the winner's
// body replays its answer byte for byte and the loser's is the 422, on every
// coordinator.
func TestProbe11AcrossCoordinators(t *testing.T) {
	r := sharedLightRig(t, "probe11across")
	n := r.c.Len()

	t.Run("reads after writes elsewhere", func(t *testing.T) {
		for k := range 12 {
			w, rd := k%n, (k+1+k/n)%n
			if rd == w {
				rd = (rd + 1) % n
			}
			subject := fmt.Sprint("ryw-", k)
			rep := r.write(w, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: "m"})
			if rep.Status != 201 {
				t.Fatalf("ticket through coordinator %d: %s", w, rep)
			}
			var tk api.Ticket
			rep.Decode(t, &tk)
			var page cursorPage[api.Ticket]
			r.get(t, rd, r.keyA, "/v1/tickets?limit=1", &page)
			if len(page.Data) != 1 || page.Data[0].ID != tk.ID {
				t.Errorf("ticket %s made through coordinator %d, then the first of GET /v1/tickets?limit=1 through coordinator %d: %+v; want it", tk.ID, w, rd, page.Data)
			}
			if rep := r.call(rd, r.keyA, "GET", "/v1/tickets/"+tk.ID, nil, nil); rep.Status != 200 {
				t.Errorf("ticket %s made through coordinator %d, read through coordinator %d: %s", tk.ID, w, rd, rep)
			}
			hook := r.call(w, r.keyA, "POST", "/v1/webhooks", map[string]any{"url": fmt.Sprint("http://127.0.0.1:9/h", k), "events": []string{"invoice.paid"}}, nil)
			if hook.Status != 201 {
				t.Fatalf("webhook through coordinator %d: %s", w, hook)
			}
			var wh struct {
				ID string `json:"id"`
			}
			hook.Decode(t, &wh)
			var hooks cursorPage[struct {
				ID string `json:"id"`
			}]
			r.get(t, rd, r.keyA, "/v1/webhooks?limit=1&cursor=", &hooks)
			if len(hooks.Data) != 1 || hooks.Data[0].ID != wh.ID {
				t.Errorf("webhook %s made through coordinator %d, then the first of GET /v1/webhooks?limit=1&cursor= through coordinator %d: %+v; want it", wh.ID, w, rd, hooks.Data)
			}
		}
		// A walk by cursor whose pages are read through the coordinators in
		// turn sees every ticket once, newest first.
		var all []string
		cursor := ""
		for p := 0; ; p++ {
			var page cursorPage[api.Ticket]
			r.get(t, p%n, r.keyA, "/v1/tickets?limit=5&cursor="+url.QueryEscape(cursor), &page)
			for _, tk := range page.Data {
				all = append(all, tk.Subject)
			}
			if page.NextCursor == nil || p > 10 {
				break
			}
			cursor = *page.NextCursor
		}
		if len(all) != 12 || all[0] != "ryw-11" || all[11] != "ryw-0" {
			t.Errorf("a walk by cursor over the three coordinators: %v; want ryw-11 … ryw-0, each once", all)
		}
	})

	// The headers coordinators add when one forwards to another mean
	// nothing from a client: such a request is served as it is without
	// them, on every coordinator. Before, a follower answered any request
	// carrying X-Hostplane-Forwarded-By with 503 no_leader and Retry-After:
	// 1 ("leadership is changing"), for ever, where the leader served it.
	// Each is sent again after an election's 503, as README asks of a
	// client (the POST with an Idempotency-Key): that old 503, sent again
	// for 15 s, still fails the test.
	t.Run("a client's forwarding headers", func(t *testing.T) {
		for i := range n {
			for _, hdr := range []map[string]string{{"X-Hostplane-Forwarded-By": "c1"}, {"X-Hostplane-Body-Unread": "too_large"},
				{"X-Hostplane-Forwarded-By": "c9", "X-Hostplane-Body-Unread": "timeout"}} {
				if rep := r.call(i, r.keyA, "GET", "/v1/account", nil, hdr); rep.Status != 200 {
					t.Errorf("GET /v1/account at coordinator %d with %v: %s; want 200, as without them", i, hdr, rep)
				}
				keyed := maps.Clone(hdr)
				keyed["Idempotency-Key"] = "hdr-" + rand.Text()
				if rep := r.call(i, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "hdr", Message: "m"}, keyed); rep.Status != 201 {
					t.Errorf("POST /v1/tickets at coordinator %d with %v: %s; want 201, as without them", i, hdr, rep)
				}
			}
		}
	})

	// SPEC.md: X-RateLimit-Reset is when the key's window ends, and the
	// budget is the key's (README: one window on the leader for the
	// cluster). So a client spreading its calls over the coordinators reads
	// one Reset from all of them, and a 429 from any says to retry no later
	// than that Reset. A leader change starts a new window (README): a
	// round that sees one is tried again with a new key.
	t.Run("one window's headers on every coordinator", func(t *testing.T) {
		const budget = 6
		var wrong []string
		for round := 1; round <= 3; round++ {
			key := r.keyOfA(t, api.KeyCreateRequest{Name: fmt.Sprint("probe11-limit-", round), RateLimitPerMin: budget})
			wrong = nil
			resets := map[string]bool{}
			for m := range budget + n {
				i := m % n
				method, body := "GET", any(nil)
				if m%2 == 1 {
					method, body = "POST", api.TicketCreateRequest{Subject: "limit", Message: "m"}
				}
				path := map[string]string{"GET": "/v1/account", "POST": "/v1/tickets"}[method]
				rep := r.apis[i].Call(key, method, path, body, nil)
				reset := rep.Header.Get("X-RateLimit-Reset")
				resets[reset] = true
				at, _ := strconv.ParseInt(reset, 10, 64)
				switch {
				case m < budget && rep.Status/100 != 2:
					wrong = append(wrong, fmt.Sprintf("request %d (coordinator %d) within the budget: %s", m+1, i, rep))
				case m >= budget && rep.Status != 429:
					wrong = append(wrong, fmt.Sprintf("request %d (coordinator %d) past the budget: %s; want 429", m+1, i, rep))
				case m >= budget:
					retry, err := strconv.Atoi(rep.Header.Get("Retry-After"))
					if left := time.Until(time.Unix(at, 0)); err != nil || retry < 1 || time.Duration(retry-1)*time.Second > left+time.Second {
						wrong = append(wrong, fmt.Sprintf("a 429 at coordinator %d: Retry-After %q with X-RateLimit-Reset %s (%s from now)", i, rep.Header.Get("Retry-After"), reset, left.Round(time.Second)))
					}
				}
			}
			if len(resets) != 1 {
				wrong = append(wrong, fmt.Sprintf("X-RateLimit-Reset took %d values over one window's requests to the three coordinators: %v", len(resets), resets))
			}
			if wrong == nil {
				return
			}
			t.Logf("round %d: %v (again, in case the leader changed)", round, wrong)
		}
		for _, w := range wrong {
			t.Error(w)
		}
	})

	t.Run("one key, two bodies, two coordinators at once", func(t *testing.T) {
		for round := range 4 {
			key := fmt.Sprint("two-bodies-", round)
			hdr := map[string]string{"Idempotency-Key": key}
			at := []int{round % n, (round + 1) % n}
			bodies := []api.TicketCreateRequest{{Subject: key + "-x", Message: "x"}, {Subject: key + "-y", Message: "y"}}
			reps := make([][]byte, 2)
			statuses := make([]int, 2)
			codes := make([]string, 2)
			var wg sync.WaitGroup
			for s := range 2 {
				wg.Go(func() {
					// Sent again after an election's 503, as a client
					// with an Idempotency-Key does: the answer to a resend
					// is one of those the first send may get.
					rep := r.call(at[s], r.keyA, "POST", "/v1/tickets", bodies[s], hdr)
					reps[s], statuses[s], codes[s] = rep.Body, rep.Status, rep.Code()
				})
			}
			wg.Wait()
			// The winner: the 201 (one at most). A 409 in flight may leave
			// none: the loser of that race then sends its body again.
			win := -1
			for s := range 2 {
				switch {
				case statuses[s] == 201 && win == -1:
					win = s
				case statuses[s] == 201:
					t.Errorf("round %d: both bodies of one key answered 201: %s / %s", round, reps[0], reps[1])
				case statuses[s] == 409 && codes[s] == "idempotency_key_in_flight", statuses[s] == 422 && codes[s] == "idempotency_key_reused":
				default:
					t.Errorf("round %d: body %d at coordinator %d: %d %s; want 201, 409 idempotency_key_in_flight or 422 idempotency_key_reused", round, s, at[s], statuses[s], reps[s])
				}
			}
			if win == -1 {
				t.Errorf("round %d: neither body made the ticket: %d %s / %d %s", round, statuses[0], reps[0], statuses[1], reps[1])
				continue
			}
			for i := range n {
				again := r.call(i, r.keyA, "POST", "/v1/tickets", bodies[win], hdr)
				if again.Status != 201 || !bytes.Equal(again.Body, reps[win]) {
					t.Errorf("round %d: the winning body again at coordinator %d: %s; want %s", round, i, again, reps[win])
				}
				if other := r.call(i, r.keyA, "POST", "/v1/tickets", bodies[1-win], hdr); other.Status != 422 || other.Code() != "idempotency_key_reused" {
					t.Errorf("round %d: the other body at coordinator %d: %s; want 422 idempotency_key_reused", round, i, other)
				}
			}
		}
		var list struct {
			Data []api.Ticket `json:"data"`
		}
		r.get(t, 0, r.keyA, "/v1/tickets?limit=200", &list)
		made := map[string]int{}
		for _, tk := range list.Data {
			if len(tk.Subject) > 2 {
				made[tk.Subject[:len(tk.Subject)-2]]++
			}
		}
		for round := range 4 {
			if k := fmt.Sprint("two-bodies-", round); made[k] != 1 {
				t.Errorf("%s: %d tickets; want 1", k, made[k])
			}
		}
	})
}
