package audit

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// rawMCP sends one request to /mcp (any method, body and headers) and
// returns the status, headers and body (at most 64 KiB of a stream, read
// until timeout).
func rawMCP(t *testing.T, method, endpoint, token, session, body string, hdr map[string]string, timeout time.Duration) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, endpoint, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	framework.MCPHeaders(req, token, session, "2025-06-18")
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, "timeout: " + err.Error()
		}
		t.Fatalf("%s %s: %v", method, endpoint, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	n := 0
	for n < len(buf) {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, string(buf[:n])
}

const toolCallGetAccount = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_account","arguments":{}}}`

// TestMCPSessionsOutsideIn: an Mcp-Session-Id is a handle, not a
// credential, and what a hostile client does with one: session ids are
// unguessable (distinct, long, random-looking) and an unknown one is a 404;
// another account's bearer on a session is refused (a POST and the GET
// stream that carries the session's server-to-client messages); a
// session ended with DELETE is gone; a session of one coordinator is a 404
// on another (README); a session whose API key was revoked, or whose OAuth
// access token was revoked, stops at once (401), though it was initialized
// while they were valid.
func TestMCPSessionsOutsideIn(t *testing.T) {
	// One --public-url for the cluster (README): tokens are for it on
	// every coordinator.
	r := sharedMCPRig(t, "mcp")
	f := r.follower()
	ep := r.c.URL(f) + "/mcp"

	ids := map[string]bool{}
	idShape := regexp.MustCompile(`^[A-Za-z0-9_\-]{22,}$`)
	for range 10 {
		m := &mcpSession{t: t, endpoint: ep, token: r.keyA}
		m.initialize()
		if ids[m.session] || !idShape.MatchString(m.session) {
			t.Errorf("session id %q: repeated or short (want 22+ URL-safe characters, ≥ 128 random bits)", m.session)
		}
		ids[m.session] = true
	}
	a := &mcpSession{t: t, endpoint: ep, token: r.keyA}
	a.initialize()
	if st, _, body := rawMCP(t, "POST", ep, r.keyA, unknown(a.session), toolCallGetAccount, nil, 10*time.Second); st != 404 {
		t.Errorf("an unknown session id: %d %.200s; want 404", st, body)
	}
	if st, _, body := rawMCP(t, "POST", ep, r.keyA, a.session, toolCallGetAccount, nil, 10*time.Second); st != 200 || !strings.Contains(body, r.accA.ID) {
		t.Fatalf("A on A's session: %d %.300s", st, body)
	}

	// B's key on A's session: refused, whatever the request.
	st, _, body := rawMCP(t, "POST", ep, r.keyB, a.session, toolCallGetAccount, nil, 10*time.Second)
	if st/100 != 4 || strings.Contains(body, r.accA.ID) {
		t.Errorf("B's key on A's session, tools/call: %d %.300s; want a 4xx (the session is A's)", st, body)
	}
	st, _, body = rawMCP(t, "GET", ep, r.keyB, a.session, "", map[string]string{"Accept": "text/event-stream"}, 2*time.Second)
	if st/100 != 4 {
		t.Errorf("B's key on A's session, GET (the session's stream of server messages): %d %.300s; want a 4xx", st, body)
	}
	st, _, _ = rawMCP(t, "DELETE", ep, r.keyB, a.session, "", nil, 10*time.Second)
	if st/100 != 4 {
		t.Errorf("B's key ending A's session: %d; want a 4xx", st)
	}
	if st, _, body := rawMCP(t, "POST", ep, r.keyA, a.session, toolCallGetAccount, nil, 10*time.Second); st != 200 || !strings.Contains(body, r.accA.ID) {
		t.Errorf("A's session after B's attempts: %d %.300s", st, body)
	}
	// Another key of A's own account, with fewer scopes, on A's session:
	// it acts with its own scopes only, or is refused.
	narrow := r.keyOfA(t, api.KeyCreateRequest{Name: "narrow", Scopes: []string{"tickets:read"}})
	if st, _, body := rawMCP(t, "POST", ep, narrow, a.session, toolCallGetAccount, nil, 10*time.Second); st == 200 && strings.Contains(body, r.accA.Email) {
		t.Errorf("a tickets:read key on a session initialized with an account:read key read the account: %.300s", body)
	}

	// Another coordinator does not know the session.
	if st, _, body := rawMCP(t, "POST", r.c.URL((f+1)%3)+"/mcp", r.keyA, a.session, toolCallGetAccount, nil, 10*time.Second); st != 404 {
		t.Errorf("A's session on another coordinator: %d %.200s; want 404", st, body)
	}
	// DELETE ends it.
	if st, _, body := rawMCP(t, "DELETE", ep, r.keyA, a.session, "", nil, 10*time.Second); st/100 != 2 {
		t.Errorf("DELETE of A's session: %d %.200s", st, body)
	}
	if st, _, body := rawMCP(t, "POST", ep, r.keyA, a.session, toolCallGetAccount, nil, 10*time.Second); st != 404 {
		t.Errorf("A's session after DELETE: %d %.200s; want 404", st, body)
	}

	// A session of a key that is then revoked.
	k, err := r.c.AnyAlive(nil).Admin().CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: "soon revoked", Scopes: []string{"account:read"}})
	if err != nil {
		t.Fatal(err)
	}
	m := &mcpSession{t: t, endpoint: ep, token: k.Key}
	m.initialize()
	if _, err := r.c.AnyAlive(nil).Admin().RevokeKey(r.ctx, k.Info.ID); err != nil {
		t.Fatal(err)
	}
	// RFC 6750 §3.1: a token sent but no longer good is invalid_token; the
	// challenge names the resource metadata under the --public-url.
	challenge := func(what string, hdr http.Header) {
		t.Helper()
		wa := hdr.Get("WWW-Authenticate")
		if !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, `error="invalid_token"`) ||
			!strings.Contains(wa, `resource_metadata="https://api.audit.example/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("%s: 401 with WWW-Authenticate %q; want Bearer error=\"invalid_token\" and resource_metadata under the public URL", what, wa)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, hdr, body := rawMCP(t, "POST", ep, k.Key, m.session, toolCallGetAccount, nil, 10*time.Second)
		if st == 401 {
			challenge("the session of a revoked key", hdr)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the session of a revoked key, 10 s after: %d %.300s; want 401", st, body)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, _, _ := rawMCP(t, "GET", ep, k.Key, m.session, "", map[string]string{"Accept": "text/event-stream"}, 2*time.Second); st != 401 {
		t.Errorf("GET stream of the session of a revoked key: %d; want 401", st)
	}

	// A session of an OAuth access token that is then revoked (RFC 7009).
	o := oauthSide{t: t, base: r.c.URL(f)}
	const cb = "http://127.0.0.1:9/cb"
	client := o.register(cb)
	at, _ := o.connect(client, cb, r.keyA, "account:read")
	m = &mcpSession{t: t, endpoint: ep, token: at}
	m.initialize()
	if st, _, body := rawMCP(t, "POST", ep, at, m.session, toolCallGetAccount, nil, 10*time.Second); st != 200 || !strings.Contains(body, r.accA.ID) {
		t.Fatalf("the OAuth session: %d %.300s", st, body)
	}
	resp, err := http.PostForm(o.base+"/oauth/revoke", map[string][]string{"token": {at}, "client_id": {client}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, hdr, body := rawMCP(t, "POST", ep, at, m.session, toolCallGetAccount, nil, 10*time.Second)
		if st == 401 {
			challenge("the session of a revoked access token", hdr)
			break
		}
		if time.Now().After(deadline) {
			var out map[string]any
			_ = json.Unmarshal([]byte(body), &out)
			t.Errorf("the session of a revoked access token, 10 s after: %d %.300s; want 401", st, body)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}
