package audit

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestFSMMadeIDsSortInCommitOrder: a customer who reads the actions list
// (newest first by id) sees the actions the coordinators open themselves
// in the order they were committed. An operator's suspension of a hosting
// account opens its hosting.suspend action, and the lifting its
// hosting.unsuspend, both with an id the FSM makes at apply; the same
// command emits hosting.suspended or hosting.unsuspended, whose ids sort in
// commit order (level 12, TestWebhookEventIDsSortInCommitOrder). Hosting
// accounts are suspended, then unsuspended, by as many clients at once
// through all three coordinators (the followers forward), three rounds:
// the actions sorted by id must come in the order of their commands'
// events sorted by id. Before level 13 such an action id began with the
// time the request started, so two racing requests that committed in one
// order took ids in the other.
func TestFSMMadeIDsSortInCommitOrder(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := newRig(t)
	waitTopLevel(t, r)
	s := newSink(t, nil)
	r.hook(r.keyA, s.URL, "hosting.suspended", "hosting.unsuspended")

	const accounts, rounds = 40, 4
	r.c.Credit(r.ctx, r.accA.ID, accounts*hostingPrice)
	hosted := make([]string, accounts)
	for i := range accounts {
		var o api.HostingOrder
		rep := r.write(i%r.c.Len(), r.keyA, "POST", "/v1/hosting", hostingBody(fmt.Sprintf("ido%02d", i)))
		if rep.Status != 201 {
			t.Fatalf("hosting order %d: %s", i, rep)
		}
		rep.Decode(t, &o)
		hosted[i] = o.Hosting.ID
	}
	waitHosting := func(want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for _, id := range hosted {
			for {
				var h api.HostingAccount
				r.get(t, 0, r.keyA, "/v1/hosting/"+id, &h)
				if h.Status == want && (h.ActionID == "" || r.actionDone(t, h.ActionID)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("hosting account %s is %s after 90 s, want %s", id, h.Status, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	waitHosting(api.HostingActive)

	// race has every hosting account suspended (or the suspension lifted)
	// at once, one client each, through coordinator (client + try) % 3.
	race := func(round int, suspend bool) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, accounts)
		for g, id := range hosted {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				deadline := time.Now().Add(60 * time.Second)
				for try := 0; ; try++ {
					adm := r.c.Nodes[(g+try)%r.c.Len()].Admin()
					var res api.AdminSuspension
					var err error
					if suspend {
						res, err = adm.Suspend(r.ctx, "hosting", id, fmt.Sprintf("round %d", round))
					} else {
						res, err = adm.Unsuspend(r.ctx, "hosting", id)
					}
					if err == nil && res.Suspended == suspend {
						return
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("round %d: suspend=%v of %s not done within 60 s: %+v %v", round, suspend, id, res, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	for round := range rounds {
		race(round, true)
		waitHosting(api.HostingSuspended)
		race(round, false)
		waitHosting(api.HostingActive)
	}

	// What the events say was committed, in id (commit) order.
	type step struct{ id, hosting, what string }
	var evs []step
	for _, ev := range sortedEvents[struct {
		HostingID string `json:"hostingId"`
	}](t, s, 2*rounds*accounts, 60*time.Second, "hosting.suspended", "hosting.unsuspended") {
		evs = append(evs, step{ev.ID, ev.Data.HostingID, strings.TrimPrefix(ev.Type, "hosting.")})
	}

	// What the customer's actions list shows, in id order.
	var acts []step
	for cursor := ""; ; {
		var page struct {
			Data       []api.Action `json:"data"`
			NextCursor *string      `json:"next_cursor"`
		}
		path := "/v1/actions?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r.get(t, 0, r.keyA, path, &page)
		for _, a := range page.Data {
			if a.Command == api.ActionHostingSuspend || a.Command == api.ActionHostingUnsuspend {
				what := map[string]string{api.ActionHostingSuspend: "suspended", api.ActionHostingUnsuspend: "unsuspended"}[a.Command]
				acts = append(acts, step{a.ID, a.ResourceID, what})
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(acts) != len(evs) {
		t.Fatalf("%d suspend/unsuspend actions listed, %d events", len(acts), len(evs))
	}
	slices.SortFunc(acts, func(a, b step) int { return strings.Compare(a.id, b.id) })
	// Each action's command's place in commit order: the place of the
	// event of its hosting account and kind that many times seen before
	// (the rounds are apart: a hosting account's actions sort by round
	// at every level).
	commit := map[string]int{}
	nth := map[string]int{}
	for i, ev := range evs {
		k := ev.hosting + " " + ev.what
		commit[fmt.Sprintf("%s #%d", k, nth[k])] = i
		nth[k]++
	}
	clear(nth)
	var bad []string
	prev := -1
	for i, a := range acts {
		k := a.hosting + " " + a.what
		at, ok := commit[fmt.Sprintf("%s #%d", k, nth[k])]
		nth[k]++
		if !ok {
			t.Fatalf("action %s (%s) has no event", a.id, k)
		}
		if at < prev {
			bad = append(bad, fmt.Sprintf("%s (%s, committed #%d) sorts after %s (committed #%d)", a.id, k, at, acts[i-1].id, prev))
		}
		prev = at
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d suspend/unsuspend actions sorted by id come after an action committed later (commit order: their events'); the first: %s",
			len(bad), len(acts), strings.Join(bad[:min(len(bad), 5)], "; "))
	}
}

// actionDone reports whether action id (read through coordinator 0 as A)
// has finished.
func (r *rig) actionDone(t *testing.T, id string) bool {
	t.Helper()
	var a api.Action
	r.get(t, 0, r.keyA, "/v1/actions/"+id, &a)
	return a.Finished()
}
