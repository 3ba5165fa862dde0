package audit

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRateLimitIsPerKeyAcrossCoordinators: a key's budget (here 6 a minute)
// is the key's, whichever coordinator a client spreads its requests over:
// with the budget spent on the leader and both followers, reads and writes,
// every answer counting down X-RateLimit-Remaining, the next request to any
// coordinator is a 429 with Retry-After and X-RateLimit-Remaining: 0.
//
// Stale reads (?consistency=stale), which a follower serves on tokens leased
// from the leader's window, are TestStaleReadsShareTheKeyBudget's.
func TestRateLimitIsPerKeyAcrossCoordinators(t *testing.T) {
	c, ctx, acc, apis := limitCluster(t, "limit@example.com")
	const budget = 6
	reqs := []struct{ method, path string }{{"GET", "/v1/account"}, {"POST", "/v1/tickets"}}
	// A leader change starts every key's window afresh (README): a round in
	// which the term moved is not counted, and tried again with a new key.
	for round := 1; ; round++ {
		k, err := c.AnyAlive(nil).Admin().CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: fmt.Sprint("limited-", round), RateLimitPerMin: budget})
		if err != nil {
			t.Fatal(err)
		}
		ld, term := leaderAndTerm(ctx, t, c)
		before := term()
		order := []int{ld, (ld + 1) % 3, (ld + 2) % 3}
		var answered, wrong []string
		for n := 0; n < budget; n++ {
			i, rq := order[n%3], reqs[(n/3)%2]
			rep := apis[i].Call(k.Key, rq.method, rq.path, ticket(rq.method), nil)
			answered = append(answered, strconv.Itoa(i)+" "+rq.method+" "+rq.path+"→"+strconv.Itoa(rep.Status)+" remaining "+rep.Header.Get("X-RateLimit-Remaining"))
			if rep.Status >= 300 || rep.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(budget-1-n) {
				wrong = append(wrong, fmt.Sprintf("request %d of %d (coordinator %d, %s %s): %d, X-RateLimit-Remaining %q, want 2xx and %d",
					n+1, budget, i, rq.method, rq.path, rep.Status, rep.Header.Get("X-RateLimit-Remaining"), budget-1-n))
			}
		}
		for _, i := range order {
			for _, rq := range reqs {
				rep := apis[i].Call(k.Key, rq.method, rq.path, ticket(rq.method), nil)
				if rep.Status != 429 || rep.Code() != "rate_limited" || rep.Header.Get("Retry-After") == "" || rep.Header.Get("X-RateLimit-Remaining") != "0" {
					wrong = append(wrong, fmt.Sprintf("past the budget, coordinator %d %s %s: %d %s (Retry-After %q, X-RateLimit-Remaining %q), want 429 rate_limited; before: %v",
						i, rq.method, rq.path, rep.Status, rep.Body, rep.Header.Get("Retry-After"), rep.Header.Get("X-RateLimit-Remaining"), answered))
				}
			}
		}
		if after := term(); after != before && round < 3 {
			t.Logf("round %d: the term moved from %d to %d; again with a new key", round, before, after)
			continue
		}
		for _, w := range wrong {
			t.Error(w)
		}
		// The leader loses its quorum: its 503s (no_leader, the read
		// barrier failing while it still leads, then none known) carry the
		// key's headers, uncounted: its own window (6, all spent) while it
		// leads, the share of a coordinator without a leader (2 of 6 over
		// 3 voters, none spent) once it stepped down.
		// The followers are killed while the leader is asked (429s with the
		// budget spent until then), so a 503 may come while it still leads.
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			c.Kill((ld + 1) % 3)
			c.Kill((ld + 2) % 3)
		}()
		seen := map[string]bool{}
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !seen["503 2/2"]; time.Sleep(5 * time.Millisecond) {
			rep := apis[ld].Call(k.Key, "GET", "/v1/account", nil, nil)
			got := rep.Header.Get("X-RateLimit-Limit") + "/" + rep.Header.Get("X-RateLimit-Remaining")
			if !(rep.Status == 429 && got == "6/0") && !(rep.Status == 503 && (got == "6/0" || got == "2/2")) || rep.Header.Get("X-RateLimit-Reset") == "" {
				t.Fatalf("the leader losing its quorum: %d %s, X-RateLimit-Limit/-Remaining %q, -Reset %q, want 429 6/0, or 503 with 6/0 (leading) or 2/2 (stepped down)",
					rep.Status, rep.Code(), got, rep.Header.Get("X-RateLimit-Reset"))
			}
			seen[strconv.Itoa(rep.Status)+" "+rep.Code()+" "+got] = true
			seen[strconv.Itoa(rep.Status)+" "+got] = true
		}
		<-killed
		if !seen["503 2/2"] {
			t.Errorf("the leader without a quorum answered %v for 15 s, never the share of a coordinator without a leader", seen)
		}
		t.Logf("the leader's 503s without a quorum: %v", seen)
		return
	}
}

// ticket is a ticket body for a POST, nothing for a GET.
func ticket(method string) any {
	if method == "POST" {
		return api.TicketCreateRequest{Subject: "rate", Message: "limit"}
	}
	return nil
}

// leaderAndTerm is the cluster's leader and a reading of its Raft term: a
// round that counts a budget on the leader is repeated when the term moved
// under it (the new leader counts from a fresh window).
func leaderAndTerm(ctx context.Context, t *testing.T, c *framework.ProcessCluster) (int, func() uint64) {
	t.Helper()
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return ld, func() uint64 {
		st, err := c.Admin(ld).ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Term
	}
}

// limitCluster starts the rate-limit tests' three coordinator processes (a
// short Raft timeout) with one account of email, and a client of each
// coordinator's public API; ctx ends with the test, within 2 minutes.
func limitCluster(t *testing.T, email string) (*framework.ProcessCluster, context.Context, api.Account, []*framework.API) {
	t.Helper()
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	acc, _, err := c.NewAccount(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	apis := make([]*framework.API, c.Len())
	for i := range apis {
		apis[i] = framework.NewAPI(t, c.URL(i), nil)
	}
	return c, ctx, acc, apis
}
