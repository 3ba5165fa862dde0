package audit

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestMCP62FollowerProxyPath: the follower's other way to the leader,
// httputil.ReverseProxy (httpapi forward.go proxyTo), under the framing
// rule and keeping what it forwards. A follower sends every request it does
// not serve itself to the leader; the channel (forwardmux.go) carries only
// writes to /v1 (not GET/HEAD/OPTIONS, no Upgrade header, a query without
// ';' or '%'), so every linearizable GET, and a write with an Upgrade header
// or such a query, takes the proxy. Three coordinators, --trusted-proxies
// 127.0.0.0/8 (the test client is the load balancer).
//
// Smuggling shapes, each alone on a fresh connection to a follower, whose
// body read by Content-Length holds a complete second request (POST
// /v1/tickets "mcp62-smuggled-<case>"): CL+TE on a GET /v1/account, on a
// POST /v1/tickets with Upgrade: h2c, and on a POST /v1/tickets?x=%41; TE
// first then CL on the GET; a Transfer-Encoding on an obs-fold line, and
// its value on a continuation line. Each gets at most one answer: a 400,
// or one answer with the connection closed; no smuggled ticket is opened.
//
// A plain request through the proxy keeps its body (the ticket's subject
// and message), its headers (the Idempotency-Key: the same ticket again),
// the client address X-Forwarded-For names (rightmost untrusted hop: a key
// allow-listed for 203.0.113.7 serves "1.2.3.4, 203.0.113.7" and refuses
// "203.0.113.8" with 403), and the leader's answer: status, the error body
// naming the field, a GET's body, and a 429's Retry-After.
func TestMCP62FollowerProxyPath(t *testing.T) {
	r := lightRig(t, "mcp62proxy", "--trusted-proxies=127.0.0.0/8")
	_, f := r.leaderAndFollower()
	u, _ := url.Parse(r.c.URL(f))
	host := u.Host

	smuggled := func(name string) string {
		body := fmt.Sprintf(`{"subject":"mcp62-smuggled-%s","message":"m"}`, name)
		return "POST /v1/tickets HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyA +
			"\r\nContent-Type: application/json\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	getHead := "GET /v1/account HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyA + "\r\n"
	upgradeHead := "POST /v1/tickets HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyA + "\r\nUpgrade: h2c\r\nContent-Type: application/json\r\n"
	queryHead := "POST /v1/tickets?x=%41 HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyA + "\r\nContent-Type: application/json\r\n"
	clte := func(head, name string) string {
		body := "0\r\n\r\n" + smuggled(name)
		return head + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(body)) + body
	}
	shapes := []struct{ name, raw string }{
		{"get-cl-te", clte(getHead, "get-cl-te")},
		{"upgrade-cl-te", clte(upgradeHead, "upgrade-cl-te")},
		{"query-cl-te", clte(queryHead, "query-cl-te")},
		{"get-te-first", func() string {
			body := "0\r\n\r\n" + smuggled("get-te-first")
			return getHead + fmt.Sprintf("Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n", len(body)) + body
		}()},
		{"get-fold-te", func() string {
			body := "0\r\n\r\n" + smuggled("get-fold-te")
			return getHead + fmt.Sprintf("Content-Length: %d\r\nX-Probe: a\r\n Transfer-Encoding: chunked\r\n\r\n", len(body)) + body
		}()},
		{"upgrade-fold-te-value", func() string {
			body := "0\r\n\r\n" + smuggled("upgrade-fold-te-value")
			return upgradeHead + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", len(body)) + body
		}()},
	}
	for _, s := range shapes {
		answers := p61Resend(t, host, s.raw)
		switch {
		case len(answers) == 0:
			t.Errorf("%s at the follower: no answer, the connection closed", s.name)
		case len(answers) > 1:
			t.Errorf("%s at the follower: %d answers to one request (%s): a second request was read from its body", s.name, len(answers), strings.Join(answers, "; "))
		case !strings.HasPrefix(answers[0], "400 ") && !strings.HasSuffix(answers[0], "(closed)"):
			t.Errorf("%s at the follower: %s; want a 400, or one answer and the connection closed", s.name, answers[0])
		default:
			t.Logf("%s: %s", s.name, answers[0])
		}
	}

	// Plain requests through the proxy.
	ctx := r.ctx
	adm := r.c.AnyAlive(nil).Admin()
	office, err := adm.CreateKey(ctx, r.accA.ID, api.KeyCreateRequest{Name: "mcp62-office", Scopes: []string{"account:read", "tickets:read", "tickets:write"}, AllowedCIDRs: []string{"203.0.113.7/32"}})
	if err != nil {
		t.Fatal(err)
	}
	fa := r.apis[f]
	send := func(key, method, path string, body any, h map[string]string) framework.Reply {
		t.Helper()
		rep, err := fa.TryResending(ctx, client.Resend{Resendable: func(string, any, http.Header) bool { return true }}, key, method, path, body, h)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	hdr := func(kv ...string) map[string]string {
		m := map[string]string{"Upgrade": "h2c"} // a write with an Upgrade header is not the channel's
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	want := api.TicketCreateRequest{Subject: "mcp62 via the proxy", Message: "the body, kept"}
	// post sends want with Idempotency-Key mcp62-proxy-1 from xff: a 201 and its ticket.
	post := func(what, xff string) (tk api.Ticket) {
		t.Helper()
		rep := send(office.Key, "POST", "/v1/tickets", want, hdr("X-Forwarded-For", xff, "Idempotency-Key", "mcp62-proxy-1"))
		if rep.Status != 201 {
			t.Fatalf("%s: %s; want 201", what, rep)
		}
		rep.Decode(t, &tk)
		return tk
	}
	tk := post("POST /v1/tickets through the proxy, allow-listed client", "1.2.3.4, 203.0.113.7")
	if tk.Subject != want.Subject {
		t.Errorf("ticket through the proxy: subject %q; want %q", tk.Subject, want.Subject)
	}
	if tk2 := post("the same POST again (same Idempotency-Key)", "203.0.113.7"); tk2.ID != tk.ID {
		t.Errorf("the same Idempotency-Key through the proxy opened %s after %s: the header was not kept", tk2.ID, tk.ID)
	}
	var got struct {
		api.Ticket
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	if g := send(office.Key, "GET", "/v1/tickets/"+tk.ID, nil, map[string]string{"X-Forwarded-For": "203.0.113.7"}); g.Status != 200 {
		t.Errorf("GET the ticket through the proxy: %s", g)
	} else if g.Decode(t, &got); got.ID != tk.ID || !strings.Contains(string(g.Body), want.Message) {
		t.Errorf("GET the ticket through the proxy: %s; want %s with its message %q", g.Body, tk.ID, want.Message)
	}
	if rep := send(office.Key, "POST", "/v1/tickets", want, hdr("X-Forwarded-For", "203.0.113.8")); rep.Status != 403 {
		t.Errorf("POST through the proxy from 203.0.113.8 with a key allow-listed for 203.0.113.7: %s; want 403", rep)
	}
	if rep := send(office.Key, "GET", "/v1/account", nil, nil); rep.Status != 403 {
		t.Errorf("GET through the proxy with no X-Forwarded-For (the client is the load balancer): %s; want 403", rep)
	}
	if rep := send(r.keyA, "POST", "/v1/tickets", map[string]string{"subject": "no message"}, hdr("Idempotency-Key", "mcp62-proxy-bad")); rep.Status != 400 || !strings.Contains(string(rep.Body), "message") {
		t.Errorf("POST through the proxy without its message: %s; want the leader's 400 naming message", rep)
	}
	tight, err := adm.CreateKey(ctx, r.accA.ID, api.KeyCreateRequest{Name: "mcp62-tight", Scopes: []string{"account:read"}, RateLimitPerMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	var limited framework.Reply
	for range 5 {
		if limited = fa.Call(tight.Key, "GET", "/v1/account", nil, nil); limited.Status == 429 {
			break
		}
	}
	if limited.Status != 429 || limited.Code() != "rate_limited" || limited.Header.Get("Retry-After") == "" {
		t.Errorf("GET through the proxy past a 1/min key's limit: %s (Retry-After %q); want 429 rate_limited with Retry-After", limited, limited.Header.Get("Retry-After"))
	}

	var l struct {
		Data []api.Ticket `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/tickets?limit=200", &l)
	for _, tk := range l.Data {
		if strings.HasPrefix(tk.Subject, "mcp62-smuggled-") {
			t.Errorf("a request hidden in another's body was processed at the follower: ticket %s %q", tk.ID, tk.Subject)
		}
	}
}
