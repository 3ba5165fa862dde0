package audit

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestBehindALoadBalancer: three coordinator processes with
// --trusted-proxies 127.0.0.0/8 (the test client is the provider's load
// balancer) and --ip-rate-limit 4. Two customers behind the proxy
// (X-Forwarded-For 198.51.100.1 and .2) have separate budgets: the first
// spends its 4 and gets a 429, the second still has its 4. A key
// allow-listed for 203.0.113.7 works on every coordinator (followers
// forward the client address, a ticket is created) with X-Forwarded-For
// 203.0.113.7, and with "1.2.3.4, 203.0.113.7" (the rightmost untrusted hop
// is the client; what the customer put to its left is not believed); it is
// a 403 with another address, with "203.0.113.7, 1.2.3.4", and with no
// header (the proxy's own address). The key's usage log and last_used_ip
// name 203.0.113.7, not the proxy.
func TestBehindALoadBalancer(t *testing.T) {
	const budget = 4
	c, ctx, acc := ipBudgetCluster(t, framework.ProcessOptions{N: 3, RaftTimeout: framework.RaftTimeout}, budget, "behind-lb@example.com", 2*time.Minute,
		"--trusted-proxies=127.0.0.0/8")
	adm := c.AnyAlive(nil).Admin()
	k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "office", Scopes: []string{"account:read", "tickets:write"}, AllowedCIDRs: []string{"203.0.113.7/32"}})
	if err != nil {
		t.Fatal(err)
	}
	apis := make([]*framework.API, c.Len())
	for i := range apis {
		apis[i] = framework.NewAPI(t, c.URL(i), nil)
	}

	// Separate budgets for two customers behind the one proxy address.
	lb := apis[0].From("127.0.0.21")
	xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	for n := 1; n <= budget; n++ {
		if r := lb.Call("", "GET", "/v1/scopes", nil, xff("198.51.100.1")); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(budget-n) {
			t.Fatalf("customer 1, request %d: %d, X-RateLimit-Remaining %q; want 200, %d", n, r.Status, r.Header.Get("X-RateLimit-Remaining"), budget-n)
		}
	}
	if r := lb.Call("", "GET", "/v1/scopes", nil, xff("198.51.100.1")); r.Status != 429 || r.Code() != "rate_limited" {
		t.Fatalf("customer 1 past its budget: %s; want 429 rate_limited", r)
	}
	if r := lb.Call("", "GET", "/v1/scopes", nil, xff("198.51.100.2")); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(budget-1) {
		t.Fatalf("customer 2 behind the same proxy: %d, X-RateLimit-Remaining %q; want 200 and its own budget (%d left)", r.Status, r.Header.Get("X-RateLimit-Remaining"), budget-1)
	}
	// Customer 1 cannot take customer 2's budget by naming it to the left.
	if r := lb.Call("", "GET", "/v1/scopes", nil, xff("198.51.100.2, 198.51.100.1")); r.Status != 429 {
		t.Fatalf("customer 1 claiming customer 2's address to the left: %s; want 429 (its own spent budget)", r)
	}

	// From here each request is sent again after a 503 an election answers
	// (pkg/client's policy, with Retry-After), as a customer's client does:
	// under CI load the cluster can lose its leader for seconds (ci-A of stop
	// 62 met one for the whole refusal loop), and that 503 is not the
	// allow-list's answer. Every request below is safe to send again: a
	// read, a refusal, or a ticket with its own Idempotency-Key.
	resend := func(a *framework.API, key, method, path string, body any, h map[string]string) framework.Reply {
		t.Helper()
		r, err := a.TryResending(ctx, client.Resend{Resendable: func(string, any, http.Header) bool { return true }}, key, method, path, body, h)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// The allow-list sees the customer's address.
	for i := range c.Len() {
		for j, h := range []string{"203.0.113.7", "1.2.3.4, 203.0.113.7"} {
			if r := resend(apis[i], k.Key, "GET", "/v1/account", nil, xff(h)); r.Status != 200 {
				t.Errorf("coordinator %d, X-Forwarded-For %q, GET /v1/account: %s; want 200", i, h, r)
			}
			hk := map[string]string{"X-Forwarded-For": h, "Idempotency-Key": "via-lb-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)}
			if r := resend(apis[i], k.Key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "via lb", Message: "m"}, hk); r.Status != 201 {
				t.Errorf("coordinator %d, X-Forwarded-For %q, POST /v1/tickets: %s; want 201", i, h, r)
			}
		}
	}

	// Usage and last_used_ip name the customer.
	framework.WaitFor(t, "the key's use in its list entry", 20*time.Second, 200*time.Millisecond, func() bool {
		keys, err := adm.Keys(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ki := range keys {
			if ki.ID == k.Info.ID && ki.UseCount >= 12 {
				if ki.LastUsedIP != "203.0.113.7" {
					t.Fatalf("last_used_ip %q; want 203.0.113.7", ki.LastUsedIP)
				}
				return true
			}
		}
		return false
	})
	usage, err := adm.KeyUsage(ctx, k.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) == 0 {
		t.Fatal("no usage entries")
	}
	for _, u := range usage {
		if u.IP != "203.0.113.7" {
			t.Errorf("usage entry %s %s %d: ip %q; want 203.0.113.7", u.Method, u.Path, u.Status, u.IP)
		}
	}

	// /mcp: the operations a tool call dispatches in-process see the
	// customer's address too (they are checked against the allow-list).
	ep := c.URL(0) + "/mcp"
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`
	st, h, body := rawMCP(t, "POST", ep, k.Key, "", initialize, xff("203.0.113.7"), 10*time.Second)
	if st != 200 || h.Get("Mcp-Session-Id") == "" {
		t.Fatalf("/mcp initialize with X-Forwarded-For 203.0.113.7: %d %.300s", st, body)
	}
	session := h.Get("Mcp-Session-Id")
	if st, _, body := rawMCP(t, "POST", ep, k.Key, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, xff("203.0.113.7"), 10*time.Second); st/100 != 2 {
		t.Fatalf("/mcp notifications/initialized: %d %.300s", st, body)
	}
	// A tool call the election answered (its result says hostplane/status
	// 503) is made again, as a client reading that result does.
	toolCall := func(from string) (int, string) {
		t.Helper()
		for {
			st, _, body := rawMCP(t, "POST", ep, k.Key, session, toolCallGetAccount, xff(from), 10*time.Second)
			if !strings.Contains(body, `"hostplane/status":503`) || ctx.Err() != nil {
				return st, body
			}
			time.Sleep(time.Second)
		}
	}
	if st, body := toolCall("1.2.3.4, 203.0.113.7"); st != 200 || !strings.Contains(body, acc.ID) || strings.Contains(body, "ip_not_allowed") {
		t.Errorf("/mcp get_account with X-Forwarded-For \"1.2.3.4, 203.0.113.7\": %d %.400s; want the account", st, body)
	}
	if st, body := toolCall("203.0.113.8"); strings.Contains(body, acc.ID) || !strings.Contains(body, "ip_not_allowed") {
		t.Errorf("/mcp get_account with X-Forwarded-For 203.0.113.8: %d %.400s; want it refused (ip_not_allowed)", st, body)
	}

	// Refusals. A refused key spends its client address's budget: each
	// request comes from its own proxy address, so that the ones without a
	// header (the proxy is the client) have a budget.
	peer := 40
	for i := range c.Len() {
		for _, h := range []map[string]string{xff("203.0.113.8"), xff("203.0.113.7, 1.2.3.4"), nil, {"Forwarded": "for=203.0.113.7"}} {
			// An election's 503 is sent again from the next proxy address
			// (a refusal spends its address's budget of 4).
			var r framework.Reply
			for tries := 0; ; tries++ {
				peer++
				r = apis[i].From("127.0.0."+strconv.Itoa(peer)).Call(k.Key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "refused", Message: "m"}, h)
				if !electionAnswered503(r) || tries == 20 || peer == 250 {
					break
				}
				time.Sleep(time.Second)
			}
			if r.Status != 403 || r.Code() != "ip_not_allowed" {
				t.Errorf("coordinator %d, headers %v: %s; want 403 ip_not_allowed", i, h, r)
			}
		}
	}

}

// TestForwardedForIsIgnoredWithoutTrustedProxies: without
// --trusted-proxies (the default) X-Forwarded-For changes nothing: two
// "customers" naming different addresses from one client share its budget,
// and a key allow-listed for 203.0.113.7 is refused whatever the header says.
func TestForwardedForIsIgnoredWithoutTrustedProxies(t *testing.T) {
	const budget = 4
	c, ctx, acc := ipBudgetCluster(t, framework.ProcessOptions{N: 1}, budget, "no-lb@example.com", time.Minute)
	k, err := c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "office", Scopes: []string{"account:read"}, AllowedCIDRs: []string{"203.0.113.7/32"}})
	if err != nil {
		t.Fatal(err)
	}
	a := framework.NewAPI(t, c.URL(0), nil)
	for _, h := range []string{"203.0.113.7", "1.2.3.4, 203.0.113.7"} {
		if r := a.Call(k.Key, "GET", "/v1/account", nil, map[string]string{"X-Forwarded-For": h}); r.Status != 403 {
			t.Errorf("X-Forwarded-For %q without trusted proxies: %s; want 403", h, r)
		}
	}
	from := a.From("127.0.0.22")
	n := 0
	for ; n <= budget; n++ {
		if r := from.Call("", "GET", "/v1/scopes", nil, map[string]string{"X-Forwarded-For": "198.51.100.1"}); r.Status == 429 {
			break
		}
	}
	if n != budget {
		t.Fatalf("customer 1: %d requests before the 429; want %d", n, budget)
	}
	if r := from.Call("", "GET", "/v1/scopes", nil, map[string]string{"X-Forwarded-For": "198.51.100.2"}); r.Status != 429 {
		t.Fatalf("customer 2 from the same client address: %s; want 429 (one budget: the header is not read)", r)
	}
}

// electionAnswered503 is whether r is the 503 a leadership change answers
// (no_leader, not_leader, leader_unreachable): the request was not served,
// and a client sends it again after Retry-After.
func electionAnswered503(r framework.Reply) bool {
	switch r.Code() {
	case "no_leader", "not_leader", "leader_unreachable":
		return r.Status == 503
	}
	return false
}
