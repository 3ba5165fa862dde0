package audit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// limitedKey is a key of acc named limited, of budget requests a minute,
// and the index of c's leader.
func limitedKey(t *testing.T, c *framework.ProcessCluster, ctx context.Context, acc api.Account, budget int) (api.KeyCreated, int) {
	t.Helper()
	k, err := c.AnyAlive(nil).Admin().CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "limited", RateLimitPerMin: budget})
	if err != nil {
		t.Fatal(err)
	}
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return k, ld
}

// TestStaleReadsShareTheKeyBudget: a key's budget (here 6 a minute)
// is the key's, whichever coordinator a client spreads its requests over and
// whatever consistency it asks for: with the budget spent on the leader and
// the followers, linearizable and stale reads alike, the next request to any
// coordinator is a 429 with Retry-After and X-RateLimit-Remaining: 0.
func TestStaleReadsShareTheKeyBudget(t *testing.T) {
	c, ctx, acc, apis := limitCluster(t, "limit@example.com")
	const budget = 6
	k, ld := limitedKey(t, c, ctx, acc, budget)
	order := []int{ld, (ld + 1) % 3, (ld + 2) % 3}
	paths := []string{"/v1/account", "/v1/account?consistency=stale"}
	var answered []string
	// A follower serves a stale read from its own state, which may not hold
	// the key a moment after its creation: that 401 is counted nowhere, and
	// the read is tried again until the follower knows the key.
	call := func(i int, path string) framework.Reply {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rep := apis[i].Call(k.Key, "GET", path, nil, nil)
			if rep.Status != 401 || time.Now().After(deadline) {
				return rep
			}
		}
	}
	for n := 0; n < budget; n++ {
		i, path := order[n%3], paths[(n/3)%2]
		rep := call(i, path)
		answered = append(answered, strconv.Itoa(i)+path+"→"+strconv.Itoa(rep.Status)+" remaining "+rep.Header.Get("X-RateLimit-Remaining"))
		if rep.Status != 200 || rep.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(budget-1-n) {
			t.Errorf("request %d of %d (coordinator %d, %s): %d, X-RateLimit-Remaining %q, want 200 and %d", n+1, budget, i, path, rep.Status, rep.Header.Get("X-RateLimit-Remaining"), budget-1-n)
		}
	}
	for _, i := range order {
		for _, path := range paths {
			rep := apis[i].Call(k.Key, "GET", path, nil, nil)
			if rep.Status != 429 || rep.Code() != "rate_limited" || rep.Header.Get("Retry-After") == "" || rep.Header.Get("X-RateLimit-Remaining") != "0" {
				t.Errorf("past the budget, coordinator %d %s: %d %s (Retry-After %q, X-RateLimit-Remaining %q), want 429 rate_limited; before: %v",
					i, path, rep.Status, rep.Body, rep.Header.Get("Retry-After"), rep.Header.Get("X-RateLimit-Remaining"), answered)
			}
		}
	}
}

// TestStaleReadsWithoutALeaderKeepAShare: a coordinator left alone (the
// other two killed, so no leader) still serves stale reads, up to its share
// of the key's budget (9 a minute over 3 voters: 3), saying so in
// X-RateLimit-Limit, and then answers 429 with Retry-After. Its 503s
// (no_leader: a linearizable read, a write) carry the same X-RateLimit-*
// headers, and are not counted: the share is 3 before and after them, 0
// once the stale reads spent it.
func TestStaleReadsWithoutALeaderKeepAShare(t *testing.T) {
	c, ctx, acc, apis := limitCluster(t, "alone@example.com")
	const budget, share = 9, 3
	k, ld := limitedKey(t, c, ctx, acc, budget)
	alone := (ld + 1) % 3
	a := apis[alone]
	// A stale read on the follower once it holds the key (a 401 is counted
	// nowhere): a token leased from the leader's window, which dies with it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep := a.Call(k.Key, "GET", "/v1/account?consistency=stale", nil, nil)
		if rep.Status == 200 {
			break
		}
		if rep.Status != 401 || time.Now().After(deadline) {
			t.Fatalf("stale read on follower %d with the leader up: %d %s", alone, rep.Status, rep.Body)
		}
	}
	c.Kill(ld)
	c.Kill((ld + 2) % 3)
	// A 503 while it still names the dead leader is leader_unreachable (the
	// key's limit, what it last knew of the leader's window), then
	// no_leader (its share, as its stale reads count it). Each carries the
	// key's headers.
	unavailable := func(method, path string, remaining int) framework.Reply {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rep := a.Call(k.Key, method, path, ticket(method), nil)
			if rep.Status != 503 {
				t.Fatalf("%s %s alone: %d %s, want 503", method, path, rep.Status, rep.Body)
			}
			lim, rem, reset := rep.Header.Get("X-RateLimit-Limit"), rep.Header.Get("X-RateLimit-Remaining"), rep.Header.Get("X-RateLimit-Reset")
			l, _ := strconv.Atoi(lim)
			r, _ := strconv.Atoi(rem)
			rs, _ := strconv.ParseInt(reset, 10, 64)
			if rep.Code() == "no_leader" || time.Now().After(deadline) {
				if rep.Code() != "no_leader" || lim != strconv.Itoa(share) || rem != strconv.Itoa(remaining) ||
					rs < time.Now().Unix()-1 || rs > time.Now().Add(61*time.Second).Unix() {
					t.Errorf("%s %s alone: 503 %s, X-RateLimit-Limit %q, -Remaining %q, -Reset %q, want no_leader, %d, %d and within a minute",
						method, path, rep.Code(), lim, rem, reset, share, remaining)
				}
				return rep
			}
			if (l != budget && l != share) || rem == "" || r > l || reset == "" {
				t.Errorf("%s %s alone: 503 %s, X-RateLimit-Limit %q, -Remaining %q, -Reset %q, want %d or %d and at most that left",
					method, path, rep.Code(), lim, rem, reset, budget, share)
			}
		}
	}
	unavailable("GET", "/v1/account", share)
	unavailable("POST", "/v1/tickets", share)
	var answered []string
	for n := 0; n < share; n++ {
		rep := a.Call(k.Key, "GET", "/v1/account?consistency=stale", nil, nil)
		answered = append(answered, strconv.Itoa(rep.Status)+" limit "+rep.Header.Get("X-RateLimit-Limit")+" remaining "+rep.Header.Get("X-RateLimit-Remaining"))
		if rep.Status != 200 || rep.Header.Get("X-RateLimit-Limit") != strconv.Itoa(share) || rep.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(share-1-n) {
			t.Errorf("stale read %d of %d alone: %d %s, X-RateLimit-Limit %q, X-RateLimit-Remaining %q, want 200, %d and %d",
				n+1, share, rep.Status, rep.Body, rep.Header.Get("X-RateLimit-Limit"), rep.Header.Get("X-RateLimit-Remaining"), share, share-1-n)
		}
	}
	rep := a.Call(k.Key, "GET", "/v1/account?consistency=stale", nil, nil)
	if rep.Status != 429 || rep.Code() != "rate_limited" || rep.Header.Get("Retry-After") == "" || rep.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("past the share alone: %d %s (Retry-After %q, X-RateLimit-Remaining %q), want 429 rate_limited; before: %v",
			rep.Status, rep.Body, rep.Header.Get("Retry-After"), rep.Header.Get("X-RateLimit-Remaining"), answered)
	}
	if u := unavailable("GET", "/v1/account", 0); u.Header.Get("X-RateLimit-Reset") != rep.Header.Get("X-RateLimit-Reset") {
		t.Errorf("503 after the share was spent: X-RateLimit-Reset %q, the 429's %q", u.Header.Get("X-RateLimit-Reset"), rep.Header.Get("X-RateLimit-Reset"))
	}
}
