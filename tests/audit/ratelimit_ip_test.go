package audit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestUnkeyedRequestsHaveAnAddressBudget: three coordinator processes with
// --ip-rate-limit=8. From one client address, every kind of answer to a
// request without a valid key (no key, a malformed one, an unknown one, the
// public GET /v1/scopes, an unknown path, a wrong method, GET /openapi.json,
// a stale read without a key) carries X-RateLimit-Limit 8 and counts
// X-RateLimit-Remaining down on the leader, while a key's requests from the
// same address, interleaved, carry the key's figures (limit 100) and do not
// move the address's count. Past the 8, each kind is a 429 rate_limited with
// Retry-After on the leader, and the key still gets its 200s. A follower
// counts what it answers itself (the public route, a 404 or 405 without a
// key, the document, a stale read without a key) from its own 8, and passes
// on the rest: a request without a valid key it forwards is the leader's
// 429; the key works there too, forwarded and on a stale read it serves
// itself. Past the follower's 8, its own answers are 429s as well. The
// other follower, and another address on the leader, still have their 8.
//
// A leader change starts the leader's counts afresh (README): a round in
// which the term moved is not judged, and is run again from another
// loopback address.
func TestUnkeyedRequestsHaveAnAddressBudget(t *testing.T) {
	const budget, keyLimit = 8, 100
	c, ctx, acc := ipBudgetCluster(t, framework.ProcessOptions{N: 3}, budget, "ip-budget@example.com", 2*time.Minute)
	k, err := c.AnyAlive(nil).Admin().CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "ip-budget", RateLimitPerMin: keyLimit})
	if err != nil {
		t.Fatal(err)
	}
	key := k.Key
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The document, fetched with the key: counted against the key, not
	// against the address (framework.NewAPI would fetch it without one).
	first := framework.NewAPI(t, c.URL(ld), []byte(`{"openapi":"3.0.3","info":{"title":"x","version":"1"},"paths":{}}`))
	docReply := first.Call(key, "GET", "/openapi.json", nil, nil)
	if docReply.Status != 200 || docReply.Header.Get("X-RateLimit-Limit") != strconv.Itoa(keyLimit) {
		t.Fatalf("GET /openapi.json with the key: %d, X-RateLimit-Limit %q, want 200 and the key's %d", docReply.Status, docReply.Header.Get("X-RateLimit-Limit"), keyLimit)
	}
	apis := make([]*framework.API, c.Len())
	for i := range apis {
		apis[i] = framework.NewAPI(t, c.URL(i), docReply.Body)
	}
	// A stale read answers from what that coordinator has applied, and the
	// follower's stale read with the key below is judged 200: wait until
	// every coordinator has applied the key (a loaded follower still behind
	// answered it 401, twice under load). From the default address, not the
	// rounds' own ones, whose budgets the rounds count.
	for i, a := range apis {
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			r := a.Call(key, "GET", "/v1/account?consistency=stale", nil, nil)
			if r.Status == 200 {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("coordinator %d: a stale read with the new key still answers %d %s after 30 s", i, r.Status, r.Code())
			}
		}
	}
	unknown := "snc_" + strings.Repeat("A", 40)

	type ask struct {
		name, key, method, path string
		status                  int
	}
	figures := func(r framework.Reply) string {
		return r.Header.Get("X-RateLimit-Limit") + "/" + r.Header.Get("X-RateLimit-Remaining")
	}
	addr := func(remaining int) string { return fmt.Sprintf("%d/%d", budget, remaining) }

	leaderRounds(ctx, t, c, func(round, ld int, bad func(format string, args ...any)) {
		ip := fmt.Sprintf("127.0.0.%d", 10+round)
		f1, f2 := (ld+1)%3, (ld+2)%3
		leader, follower, other := apis[ld].From(ip), apis[f1].From(ip), apis[f2].From(ip)
		check := func(where string, a *framework.API, q ask, wantStatus int, want string) framework.Reply {
			r := a.Call(q.key, q.method, q.path, nil, nil)
			if r.Status != wantStatus || figures(r) != want || r.Header.Get("X-RateLimit-Reset") == "" {
				bad("%s, %s (%s %s): %d %s, X-RateLimit-Limit/-Remaining %q, -Reset %q; want %d and %s",
					where, q.name, q.method, q.path, r.Status, r.Code(), figures(r), r.Header.Get("X-RateLimit-Reset"), wantStatus, want)
			}
			if wantStatus == 429 {
				if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.Code() != "rate_limited" || s < 1 || s > 60 {
					bad("%s, %s: 429 %q, Retry-After %q; want rate_limited, 1-60 s", where, q.name, r.Code(), r.Header.Get("Retry-After"))
				}
			}
			return r
		}
		keyed := func(where string, a *framework.API, path string) {
			r := a.Call(key, "GET", path, nil, nil)
			rem, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
			if r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != strconv.Itoa(keyLimit) || err != nil || rem < 0 || rem >= keyLimit {
				bad("%s, the key from the same address, GET %s: %d, X-RateLimit-Limit/-Remaining %q; want 200 and the key's (limit %d)", where, path, r.Status, figures(r), keyLimit)
			}
		}

		everyKind := []ask{
			{name: "no key", method: "GET", path: "/v1/account", status: 401},
			{name: "a malformed key", key: "snc_nope", method: "GET", path: "/v1/account", status: 401},
			{name: "an unknown key", key: unknown, method: "GET", path: "/v1/account", status: 401},
			{name: "the public route", method: "GET", path: "/v1/scopes", status: 200},
			{name: "an unknown path", method: "GET", path: "/v1/nope", status: 404},
			{name: "a wrong method", method: "DELETE", path: "/v1/scopes", status: 405},
			{name: "the document", method: "GET", path: "/openapi.json", status: 200},
			{name: "a stale read without a key", method: "GET", path: "/v1/account?consistency=stale", status: 401},
		}
		for n, q := range everyKind {
			check("leader", leader, q, q.status, addr(budget-1-n))
			keyed("leader", leader, "/v1/account")
		}
		for _, q := range everyKind {
			check("leader past the budget", leader, q, 429, addr(0))
		}
		keyed("leader past the budget", leader, "/v1/account")
		keyed("leader past the budget", leader, "/v1/scopes")

		// The follower: its own answers (every kind but the three key
		// refusals, which it forwards) from its own budget; what it forwards
		// is the leader's (spent).
		own := everyKind[3:]
		for n, q := range own {
			check("follower", follower, q, q.status, addr(budget-1-n))
		}
		for _, q := range []ask{
			{name: "no key, forwarded", method: "GET", path: "/v1/account"},
			{name: "an unknown key, forwarded", key: unknown, method: "GET", path: "/v1/account"},
		} {
			check("follower", follower, q, 429, addr(0))
		}
		keyed("follower", follower, "/v1/account")
		keyed("follower", follower, "/v1/account?consistency=stale")
		for n := len(own); n < budget; n++ {
			check("follower", follower, own[0], 200, addr(budget-1-n))
		}
		for _, q := range own {
			check("follower past the budget", follower, q, 429, addr(0))
		}
		keyed("follower past the budget", follower, "/v1/account?consistency=stale")
		keyed("follower past the budget", follower, "/v1/scopes")

		check("the other follower", other, own[0], 200, addr(budget-1))
		check("leader, another address", apis[ld].From(fmt.Sprintf("127.0.1.%d", 10+round)), everyKind[0], 401, addr(budget-1))
	})
}

// ipBudgetCluster starts o's coordinator processes with
// --ip-rate-limit=budget (budget requests a minute from a client address
// without a valid key) and the extra flags, and one account of email (none
// if email is ""); ctx ends with the test, within d.
func ipBudgetCluster(t *testing.T, o framework.ProcessOptions, budget int, email string, d time.Duration, extra ...string) (*framework.ProcessCluster, context.Context, api.Account) {
	t.Helper()
	o.Bin = framework.Coordinator(t)
	o.Extra = func(int, *framework.CoordinatorProcess) []string {
		return append([]string{"--ip-rate-limit=" + strconv.Itoa(budget)}, extra...)
	}
	c := framework.NewProcessCluster(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	var acc api.Account
	if email != "" {
		var err error
		if acc, _, err = c.NewAccount(ctx, email); err != nil {
			t.Fatal(err)
		}
	}
	return c, ctx, acc
}

// leaderRounds runs round(round, ld, bad) for round 1, 2, ..., ld the
// cluster's leader as it starts, until a round under which the Raft term did
// not move, or the third: a new leader counts every budget from a fresh
// window, so a round the term moved under is not judged and the next one is
// run (from another address). What the judged round reports to bad fails the
// test.
func leaderRounds(ctx context.Context, t *testing.T, c *framework.ProcessCluster, round func(round, ld int, bad func(format string, args ...any))) {
	t.Helper()
	for n := 1; ; n++ {
		ld, term := leaderAndTerm(ctx, t, c)
		before := term()
		var wrong []string
		round(n, ld, func(format string, args ...any) { wrong = append(wrong, fmt.Sprintf(format, args...)) })
		if after := term(); after != before && n < 3 {
			t.Logf("round %d: the term moved from %d to %d; again from another address", n, before, after)
			continue
		}
		for _, w := range wrong {
			t.Error(w)
		}
		return
	}
}

// TestMCPRefusalsSpendTheAddressBudget: /mcp's refusals for credentials (no
// bearer, a malformed or unknown key: 401; a key used from outside its
// allow-list: 403) are requests without a valid key, counted against the
// client address's budget as /v1 counts its own (one budget for both on a
// coordinator: here --ip-rate-limit=5), with its X-RateLimit-* figures; past
// it /mcp and /v1 answer such requests 429 rate_limited with Retry-After,
// while a valid key still initializes an MCP session, with its own figures.
func TestMCPRefusalsSpendTheAddressBudget(t *testing.T) {
	const budget = 5
	c, ctx, acc := ipBudgetCluster(t, framework.ProcessOptions{N: 1}, budget, "mcp-ip-budget@example.com", time.Minute)
	good, err := c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "good", RateLimitPerMin: 50})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "elsewhere", AllowedCIDRs: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := c.URL(0) + "/mcp"
	const init = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`
	figures := func(h http.Header) string {
		return h.Get("X-RateLimit-Limit") + "/" + h.Get("X-RateLimit-Remaining")
	}
	refusals := []struct {
		name, token string
		status      int
	}{
		{"no bearer", "", 401},
		{"a malformed key", "snc_nope", 401},
		{"an unknown key", "snc_" + strings.Repeat("B", 40), 401},
		{"a key from outside its allow-list", elsewhere.Key, 403},
	}
	for n, q := range refusals {
		st, hdr, body := rawMCP(t, "POST", endpoint, q.token, "", init, nil, 10*time.Second)
		if want := fmt.Sprintf("%d/%d", budget, budget-1-n); st != q.status || figures(hdr) != want || hdr.Get("X-RateLimit-Reset") == "" {
			t.Errorf("/mcp, %s: %d, X-RateLimit-Limit/-Remaining %q, -Reset %q; want %d and the address's %s: %.200s", q.name, st, figures(hdr), hdr.Get("X-RateLimit-Reset"), q.status, want, body)
		}
	}
	a := framework.NewAPI(t, c.URL(0), nil) // its GET /openapi.json is the budget's fifth request
	past := fmt.Sprintf("%d/0", budget)
	for _, q := range refusals {
		st, hdr, body := rawMCP(t, "POST", endpoint, q.token, "", init, nil, 10*time.Second)
		if retry, _ := strconv.Atoi(hdr.Get("Retry-After")); st != 429 || !strings.Contains(body, `"rate_limited"`) || retry < 1 || retry > 60 || figures(hdr) != past {
			t.Errorf("/mcp past the budget, %s: %d, Retry-After %q, %q; want 429 rate_limited, Retry-After 1-60, %s: %.200s", q.name, st, hdr.Get("Retry-After"), figures(hdr), past, body)
		}
	}
	if r := a.Call("", "GET", "/v1/account", nil, nil); r.Status != 429 || figures(r.Header) != past {
		t.Errorf("/v1 without a key after /mcp spent the budget: %d, %q; want 429, %s", r.Status, figures(r.Header), past)
	}
	st, hdr, body := rawMCP(t, "POST", endpoint, good.Key, "", init, nil, 10*time.Second)
	if st != 200 || hdr.Get("Mcp-Session-Id") == "" || hdr.Get("X-RateLimit-Limit") != "50" {
		t.Errorf("/mcp initialize with a valid key past the address's budget: %d, session %q, X-RateLimit-Limit %q; want 200, a session, the key's 50: %.200s", st, hdr.Get("Mcp-Session-Id"), hdr.Get("X-RateLimit-Limit"), body)
	}
}
