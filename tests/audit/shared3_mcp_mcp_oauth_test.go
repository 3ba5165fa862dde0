package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// registerRaw posts a registration body and returns the status and answer.
func registerRaw(t *testing.T, base string, body any) (int, map[string]any, string) {
	t.Helper()
	var raw []byte
	if s, ok := body.(string); ok {
		raw = []byte(s)
	} else {
		raw, _ = json.Marshal(body)
	}
	resp, err := http.Post(base+"/oauth/register", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, string(b)
}

// TestMCPOAuthRegistrationHostile: dynamic client registration (RFC 7591)
// is open to anyone, so what it accepts is what a phishing app gets:
// redirect_uris that are not https, loopback http or a private-use scheme
// (javascript:, data:, file:, http to a real host, fragments, wildcards,
// userinfo, relative) are refused with invalid_redirect_uri /
// invalid_client_metadata; confidential-client auth methods and grants
// outside the code, device and refresh flows are refused or never given a
// secret; over-long and malformed bodies are 4xx; a client name carrying
// markup is shown escaped on the consent page.
func TestMCPOAuthRegistrationHostile(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	base := r.c.URL(r.follower())
	code := map[string]any{"client_name": "hostile", "grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range code {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for _, u := range []string{"javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
		"vbscript:msgbox", "about:blank", "http://evil.example/cb", "http://127.0.0.1.evil.example/cb", "http://localhost.evil.example/cb",
		"https://evil.example/cb#frag", "https://*.evil.example/cb", "/cb", "cb", "", "https://", "https:///cb", "http://[::1", "https://evil.example/c b",
		"https://evil.example/cb\r\nLocation: https://x", "https://evil.example/" + strings.Repeat("a", 10000)} {
		st, out, body := registerRaw(t, base, with("redirect_uris", []string{"https://good.example/cb", u}))
		if st != 400 || (out["error"] != "invalid_redirect_uri" && out["error"] != "invalid_client_metadata") {
			t.Errorf("redirect_uri %.60q: %d %.200s; want 400 invalid_redirect_uri", u, st, body)
		}
	}
	for name, body := range map[string]any{
		"no redirect_uris for the code flow": code,
		"1000 redirect_uris": with("redirect_uris", func() []string {
			l := make([]string, 1000)
			for i := range l {
				l[i] = fmt.Sprintf("https://good.example/cb%d", i)
			}
			return l
		}()),
		"grant password":           with("grant_types", []string{"password"}),
		"grant client_credentials": with("grant_types", []string{"client_credentials"}),
		"grant implicit":           with("grant_types", []string{"implicit"}),
		"response_type token":      with("response_types", []string{"token"}),
		"client_name 100KB":        with("client_name", strings.Repeat("n", 100_000)),
		"malformed":                `{"client_name":`,
		"array":                    `[]`,
		"over 1 MiB":               `{"client_name":"` + strings.Repeat("n", 1<<20+1) + `"}`,
	} {
		if b, ok := body.(map[string]any); ok && name != "no redirect_uris for the code flow" && b["redirect_uris"] == nil {
			b["redirect_uris"] = []string{"https://good.example/cb"}
		}
		st, _, raw := registerRaw(t, base, body)
		if st/100 != 4 {
			t.Errorf("register, %s: %d %.200s; want a 4xx", name, st, raw)
		}
	}
	for _, m := range []string{"client_secret_basic", "client_secret_post", "private_key_jwt"} {
		st, out, raw := registerRaw(t, base, with("token_endpoint_auth_method", m))
		if st == 201 && (out["client_secret"] != nil || out["token_endpoint_auth_method"] != "none") {
			t.Errorf("register with %s: %d %.300s; want a refusal or a public client (auth method none, no secret)", m, st, raw)
		} else if st != 201 && st != 400 {
			t.Errorf("register with %s: %d %.300s", m, st, raw)
		}
	}
	// Accepted: https, loopback http (any loopback spelling), a private-use
	// scheme.
	for _, u := range []string{"https://good.example/cb", "http://127.0.0.1:33418/cb", "http://localhost:6274/oauth/callback", "http://[::1]:8080/cb", "com.example.app:/oauth2redirect"} {
		if st, _, raw := registerRaw(t, base, with("redirect_uris", []string{u})); st != 201 {
			t.Errorf("redirect_uri %q: %d %.200s; want 201", u, st, raw)
		}
	}

	// Markup in client_name is text on the consent page.
	const evilName = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	st, out, raw := registerRaw(t, base, map[string]any{"client_name": evilName, "redirect_uris": []string{"http://127.0.0.1:9/cb"}, "token_endpoint_auth_method": "none"})
	client, _ := out["client_id"].(string)
	if st != 201 || client == "" {
		t.Fatalf("register a client with markup in its name: %d %.200s", st, raw)
	}
	o := oauthSide{t: t, base: base}
	_, challenge := pkce()
	status, _, csrf, page := o.consent(web(), o.authorizeURL(client, "http://127.0.0.1:9/cb", challenge, nil))
	if status != 200 || csrf == "" {
		t.Fatalf("consent page: %d %.300s", status, page)
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") || !strings.Contains(page, html.EscapeString("<script>")) {
		t.Errorf("the consent page shows the client name unescaped: %.2000s", page)
	}
}

// TestMCPTokenAudienceAndScopes: RFC 8707 resource indicators as an MCP
// client uses them (--public-url set, a follower's endpoints): a resource
// this server is not is refused before consent; a code issued for /mcp
// cannot be exchanged (nor its refresh) for /v1; a /mcp token is a 401 on
// /v1 and a /v1 token a 401 on /mcp (each with the challenge naming the
// resource metadata); the default (API-wide) token works on both. On /mcp an
// app's token lists exactly the tools of its grant's scopes and is refused
// (no effect) on the tools it does not list.
func TestMCPTokenAudienceAndScopes(t *testing.T) {
	const pub = "https://api.audit.example"
	r := sharedMCPRig(t, "mcp")
	f := r.follower()
	base := r.c.URL(f)
	o := oauthSide{t: t, base: base}
	const cb = "http://127.0.0.1:9/cb"
	client := o.register(cb)

	for _, res := range []string{"https://evil.example/mcp", "https://evil.example", pub + ".evil.example/mcp", pub + "/mcp?x=1", pub + "/mcp#f", "mcp", pub + "/admin", pub + "/oauth/token"} {
		_, challenge := pkce()
		status, loc, csrf, body := o.consent(web(), o.authorizeURL(client, cb, challenge, map[string]string{"resource": res}))
		u, _ := url.Parse(loc)
		if csrf != "" || !(status == 400 || status == http.StatusSeeOther && u != nil && u.Query().Get("error") == "invalid_target") {
			t.Errorf("resource %q: %d %q consent form %v %.200s; want invalid_target", res, status, loc, csrf != "", body)
		}
	}

	tokenFor := func(authRes, tokenRes string) (int, map[string]any) {
		t.Helper()
		verifier, challenge := pkce()
		extra := map[string]string{"scope": "account:read tickets:read"}
		if authRes != "" {
			extra["resource"] = authRes
		}
		code := o.code(o.authorizeURL(client, cb, challenge, extra), r.keyA)
		form := exchange(client, code, cb, verifier)
		if tokenRes != "" {
			form.Set("resource", tokenRes)
		}
		return o.token(form)
	}
	// The code for /mcp, exchanged for /v1 or the whole API: refused, or a
	// token still limited to /mcp.
	for _, tr := range []string{pub + "/v1", pub} {
		status, tok := tokenFor(pub+"/mcp", tr)
		if at, _ := tok["access_token"].(string); status == 200 && bearer(t, base, at, "GET", "/v1/account") != 401 {
			t.Errorf("a code for %s/mcp exchanged with resource %s: a token that reads /v1/account", pub, tr)
		} else if status != 200 && status/100 != 4 {
			t.Errorf("a code for /mcp exchanged for %s: %d %v", tr, status, tok)
		}
	}

	status, tok := tokenFor(pub+"/mcp", pub+"/mcp")
	mcpAT, _ := tok["access_token"].(string)
	mcpRT, _ := tok["refresh_token"].(string)
	if status != 200 || mcpAT == "" {
		t.Fatalf("/mcp token: %d %v", status, tok)
	}
	status, tok = tokenFor(pub+"/v1", "")
	v1AT, _ := tok["access_token"].(string)
	if status != 200 || v1AT == "" {
		t.Fatalf("/v1 token: %d %v", status, tok)
	}
	status, tok = tokenFor("", "")
	allAT, _ := tok["access_token"].(string)
	if status != 200 || allAT == "" {
		t.Fatalf("API token: %d %v", status, tok)
	}
	initStatus := func(i int, at string) (int, string) {
		m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: at}
		resp, _ := m.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "audit", "version": "1"}}, false)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	for i := range r.c.Len() {
		if got := bearer(t, r.c.URL(i), mcpAT, "GET", "/v1/account"); got != 401 {
			t.Errorf("coordinator %d: the /mcp token on /v1/account: %d; want 401", i, got)
		}
		if got, wa := initStatus(i, v1AT); got != 401 || !strings.Contains(wa, "resource_metadata=") {
			t.Errorf("coordinator %d: the /v1 token on /mcp: %d %q; want 401 with resource_metadata", i, got, wa)
		}
		if got, _ := initStatus(i, mcpAT); got != 200 {
			t.Errorf("coordinator %d: the /mcp token on /mcp: %d", i, got)
		}
		if got, _ := initStatus(i, allAT); got != 200 {
			t.Errorf("coordinator %d: the API-wide token on /mcp: %d", i, got)
		}
		if got := bearer(t, r.c.URL(i), allAT, "GET", "/v1/account"); got != 200 {
			t.Errorf("coordinator %d: the API-wide token on /v1/account: %d", i, got)
		}
	}
	// The refresh of the /mcp grant, asking for /v1: refused or still /mcp.
	status, ref := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {mcpRT}, "resource": {pub + "/v1"}})
	if at, _ := ref["access_token"].(string); status == 200 && bearer(t, base, at, "GET", "/v1/account") != 401 {
		t.Errorf("the /mcp grant refreshed asking for /v1: a token that reads /v1/account (%v)", ref)
	} else if status != 200 && status/100 != 4 {
		t.Errorf("the /mcp grant refreshed for /v1: %d %v", status, ref)
	}

	// The /mcp token's tools: its grant's scopes (account:read,
	// tickets:read) only.
	want := map[string]bool{}
	outside := map[string]string{}
	for _, op := range r.operations() {
		if op.OperationID == "" || op.Scope == "" {
			continue
		}
		n := strings.ToLower(op.OperationID)
		if slices.Contains([]string{"account:read", "tickets:read"}, op.Scope) || slices.Contains([]string{"account:read", "tickets:read"}, op.AltScope) {
			want[n] = true
		} else {
			outside[n] = op.Scope
		}
	}
	m := &mcpSession{t: t, endpoint: base + "/mcp", token: mcpAT}
	m.initialize()
	_, out := m.post("tools/list", map[string]any{}, false)
	res, _ := out["result"].(map[string]any)
	tools, _ := res["tools"].([]any)
	listed := map[string]bool{}
	for _, tl := range tools {
		name, _ := tl.(map[string]any)["name"].(string)
		listed[strings.ReplaceAll(name, "_", "")] = true
		if sc, ok := outside[strings.ReplaceAll(name, "_", "")]; ok {
			t.Errorf("the account:read tickets:read token lists %s (%s)", name, sc)
		}
	}
	for n := range want {
		if !listed[n] {
			t.Errorf("the account:read tickets:read token does not list the tool of %s", n)
		}
	}
	before := r.charged(r.keyA)
	var tl struct {
		Total int `json:"total"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets", nil, nil).Decode(t, &tl)
	for name, args := range map[string]map[string]any{
		"create_ticket":  {"body": map[string]any{"subject": "s", "message": "m"}},
		"create_webhook": {"body": map[string]any{"url": "https://good.example/h", "events": []string{"*"}}},
		"list_servers":   {},
		"get_wallet":     {},
		"order_server":   {"body": serverBody("x")},
		"create_api_key": {"body": map[string]any{"name": "k", "scopes": []string{"account:read"}}},
	} {
		// The MCP authorization spec's runtime insufficient-scope error:
		// HTTP 403, WWW-Authenticate Bearer error="insufficient_scope" with
		// the scopes to step up to (those granted and the tool's) and the
		// resource metadata.
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
		st, h, body := rawMCP(t, "POST", m.endpoint, mcpAT, m.session, string(raw), nil, 20*time.Second)
		wa := h.Get("WWW-Authenticate")
		sc := challengeParam(wa, "scope")
		need := outside[strings.ReplaceAll(name, "_", "")]
		if st != 403 || !strings.HasPrefix(wa, "Bearer ") || challengeParam(wa, "error") != "insufficient_scope" ||
			challengeParam(wa, "resource_metadata") != pub+"/.well-known/oauth-protected-resource/mcp" ||
			need == "" || !slices.Contains(strings.Fields(sc), need) || !slices.Contains(strings.Fields(sc), "account:read") || !slices.Contains(strings.Fields(sc), "tickets:read") {
			t.Errorf("%s with a token without its scope %s: %d WWW-Authenticate %q %.200s; want 403 Bearer error=\"insufficient_scope\" scope=\"account:read tickets:read %s\" resource_metadata=…",
				name, need, st, wa, body, need)
		}
	}
	var tl2 struct {
		Total int `json:"total"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets", nil, nil).Decode(t, &tl2)
	if tl2.Total != tl.Total || r.charged(r.keyA) != before {
		t.Errorf("refused tool calls changed A's account")
	}

	// Step-up as an MCP client does it: authorize again with the scope of
	// the challenge; the new token calls the tool.
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 51, "method": "tools/call", "params": map[string]any{"name": "get_wallet", "arguments": map[string]any{}}})
	_, h, _ := rawMCP(t, "POST", m.endpoint, mcpAT, m.session, string(raw), nil, 20*time.Second)
	verifier, challenge := pkce()
	code := o.code(o.authorizeURL(client, cb, challenge, map[string]string{"scope": challengeParam(h.Get("WWW-Authenticate"), "scope"), "resource": pub + "/mcp"}), r.keyA)
	form := exchange(client, code, cb, verifier)
	form.Set("resource", pub+"/mcp")
	status, tok = o.token(form)
	upAT, _ := tok["access_token"].(string)
	if status != 200 || upAT == "" {
		t.Fatalf("step-up token: %d %v", status, tok)
	}
	up := &mcpSession{t: t, endpoint: base + "/mcp", token: upAT}
	up.initialize()
	if tr := up.call("get_wallet", map[string]any{}); tr.isError || tr.rpcErr != nil {
		t.Errorf("get_wallet after step-up to %q: %.300s", challengeParam(h.Get("WWW-Authenticate"), "scope"), tr.raw)
	}
	if tr := up.call("get_account", map[string]any{}); tr.isError || tr.rpcErr != nil {
		t.Errorf("get_account after step-up (a scope granted before): %.300s", tr.raw)
	}

	// scopes_supported of /mcp's protected-resource metadata holds every
	// scope a tool needs (a client that asks for scopes_supported can
	// call every tool the user may grant).
	var prm struct {
		ScopesSupported []string `json:"scopes_supported"`
	}
	getJSON(t, base+"/.well-known/oauth-protected-resource/mcp", nil, &prm)
	for n, sc := range outside {
		if !slices.Contains(prm.ScopesSupported, sc) {
			t.Errorf("the tool of %s needs %s, not in scopes_supported %v", n, sc, prm.ScopesSupported)
		}
	}
	for _, sc := range []string{"account:read", "tickets:read"} {
		if !slices.Contains(prm.ScopesSupported, sc) {
			t.Errorf("scopes_supported %v lacks %s", prm.ScopesSupported, sc)
		}
	}
	_ = api.AllScopes
}

// challengeParam is the value of the auth-param name of a WWW-Authenticate
// challenge (quoted or a token), "" when absent.
func challengeParam(wa, name string) string {
	m := regexp.MustCompile(`(?:^|[\s,])` + regexp.QuoteMeta(name) + `=(?:"([^"]*)"|([^\s,]+))`).FindStringSubmatch(strings.TrimPrefix(wa, "Bearer "))
	if m == nil {
		return ""
	}
	return m[1] + m[2]
}

// TestMCPOAuthNativeClients: what desktop MCP clients (and browser-based
// ones such as the MCP Inspector) need of the authorization server besides
// the flows themselves: a loopback redirect URI is matched with any port
// (RFC 8252 §7.3, OAuth 2.1: a native app gets an ephemeral port when it
// starts, after it registered), and nothing but the port varies; the
// discovery documents and the registration, token and revocation endpoints
// answer a browser page (CORS, preflight included: the MCP Inspector's OAuth
// flow runs in the page), the consent pages do not.
func TestMCPOAuthNativeClients(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	base := r.c.URL(r.follower())
	o := oauthSide{t: t, base: base}
	client := o.register("http://127.0.0.1/callback", "http://[::1]:8080/callback")
	verifier, challenge := pkce()
	for _, u := range []string{"http://127.0.0.1:53682/callback", "http://[::1]:41234/callback", "http://127.0.0.1/callback"} {
		status, _, csrf, body := o.consent(web(), o.authorizeURL(client, u, challenge, nil))
		if status != 200 || csrf == "" {
			t.Errorf("loopback redirect_uri %q (registered without that port): %d %.200s; want the consent page", u, status, body)
			continue
		}
		code := o.code(o.authorizeURL(client, u, challenge, nil), r.keyA)
		if st, tok := o.token(exchange(client, code, u, verifier)); st != 200 {
			t.Errorf("exchange for %q: %d %v", u, st, tok)
		}
	}
	// CORS, as a page at http://localhost:6274 (the Inspector) sees it,
	// through the leader and a follower (which forwards register and token).
	ld, _ := r.c.LeaderIndex(20 * time.Second)
	const origin = "http://localhost:6274"
	for _, i := range []int{ld, r.follower()} {
		b := r.c.URL(i)
		for _, ep := range []struct{ method, path, body string }{
			{"GET", "/.well-known/oauth-protected-resource/mcp", ""},
			{"GET", "/.well-known/oauth-protected-resource", ""},
			{"GET", "/.well-known/oauth-authorization-server", ""},
			{"POST", "/oauth/register", `{"client_name":"inspector","redirect_uris":["http://localhost:6274/oauth/callback"],"token_endpoint_auth_method":"none"}`},
			{"POST", "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"snc_rt_nope"}}.Encode()},
			{"POST", "/oauth/revoke", url.Values{"client_id": {client}, "token": {"snc_rt_nope"}}.Encode()},
		} {
			req, _ := http.NewRequest("OPTIONS", b+ep.path, nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", ep.method)
			req.Header.Set("Access-Control-Request-Headers", "content-type")
			resp, _ := framework.Fetch(t, nil, req)
			if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), ep.method) ||
				!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "content-type") {
				t.Errorf("coordinator %d: preflight of %s %s: %d %v; want 2xx allowing the origin, %s and Content-Type", i, ep.method, ep.path, resp.StatusCode, resp.Header, ep.method)
			}
			req, _ = http.NewRequest(ep.method, b+ep.path, strings.NewReader(ep.body))
			req.Header.Set("Origin", origin)
			if strings.HasPrefix(ep.body, "{") {
				req.Header.Set("Content-Type", "application/json")
			} else if ep.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, _ = framework.Fetch(t, nil, req)
			if acao := resp.Header.Values("Access-Control-Allow-Origin"); len(acao) != 1 || (acao[0] != "*" && acao[0] != origin) {
				t.Errorf("coordinator %d: %s %s from a page: %d Access-Control-Allow-Origin %q; want one value allowing it", i, ep.method, ep.path, resp.StatusCode, acao)
			}
		}
		// The consent pages set a CSRF cookie: no page of another origin
		// may read them.
		for _, p := range []string{"/oauth/authorize?" + url.Values{"client_id": {client}}.Encode(), "/oauth/device"} {
			req, _ := http.NewRequest("GET", b+p, nil)
			req.Header.Set("Origin", origin)
			resp, _ := framework.Fetch(t, nil, req)
			if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" {
				t.Errorf("coordinator %d: GET %s from a page: Access-Control-Allow-Origin %q; want none", i, p, acao)
			}
		}
	}

	for _, u := range []string{"http://127.0.0.1:53682/callbackx", "http://localhost:53682/callback", "http://127.0.0.2:53682/callback", "https://127.0.0.1:53682/callback", "http://127.0.0.1:53682/callback?x=1"} {
		if status, loc, csrf, _ := o.consent(web(), o.authorizeURL(client, u, challenge, nil)); status != 400 || loc != "" || csrf != "" {
			t.Errorf("redirect_uri %q (only the port may vary): %d %q consent %v; want a 400 page", u, status, loc, csrf != "")
		}
	}
}
