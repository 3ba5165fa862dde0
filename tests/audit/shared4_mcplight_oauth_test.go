package audit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// web is a client that does not follow redirects and keeps cookies, as a
// browser's consent round looks to the server.
func web() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// pkce is a verifier and its S256 challenge (RFC 7636), made here.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// registerDeviceClient registers a public client named "audit cli" with
// grants at base (with the extra request headers hdr, a Host entry as the
// request's Host) and returns the status, its client_id and the answer's
// decoding error.
func registerDeviceClient(t *testing.T, base string, hdr map[string]string, grants ...string) (int, string, error) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"client_name": "audit cli", "grant_types": grants})
	req, _ := http.NewRequest("POST", base+"/oauth/register", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, body := framework.Fetch(t, nil, withHeaders(req, hdr))
	var out struct {
		ClientID string `json:"client_id"`
	}
	err := json.Unmarshal(body, &out)
	return resp.StatusCode, out.ClientID, err
}

// deviceAnswer is a device authorization's answer (RFC 8628 section 3.2).
type deviceAnswer struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
}

// deviceAuthorize asks base's device authorization endpoint for clientID
// and account:read (with hdr as registerDeviceClient) and returns the
// status, the answer and its decoding error.
func deviceAuthorize(t *testing.T, base, clientID string, hdr map[string]string) (int, deviceAnswer, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/oauth/device_authorization", strings.NewReader(url.Values{"client_id": {clientID}, "scope": {"account:read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := framework.Fetch(t, nil, withHeaders(req, hdr))
	var da deviceAnswer
	err := json.Unmarshal(body, &da)
	return resp.StatusCode, da, err
}

// oauthSide is one coordinator's OAuth endpoints, used with plain HTTP.
type oauthSide struct {
	t    *testing.T
	base string
}

func (o oauthSide) register(redirects ...string) string {
	o.t.Helper()
	raw, _ := json.Marshal(map[string]any{"client_name": "audit app", "redirect_uris": redirects,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	resp, err := http.Post(o.base+"/oauth/register", "application/json", bytes.NewReader(raw))
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || json.Unmarshal(body, &out) != nil || out.ClientID == "" {
		o.t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	return out.ClientID
}

// authorizeURL is an authorization request; extra overrides or adds
// parameters (an empty value removes one).
func (o oauthSide) authorizeURL(client, redirect, challenge string, extra map[string]string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "state": {"st"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	return o.base + "/oauth/authorize?" + q.Encode()
}

// consent loads the consent page of authURL; csrf is empty when the page is
// not a consent form. It answers with the status and, for a redirect, its
// Location. A load answered 503 with Retry-After (an election: the page is
// the leader's read) is loaded again (getAgainAfter503), as a user reloads
// it.
func (o oauthSide) consent(hc *http.Client, authURL string) (status int, loc, csrf, body string) {
	o.t.Helper()
	resp := getAgainAfter503(o.t, "the consent page", func() (*http.Response, error) { return hc.Get(authURL) })
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(raw)); m != nil {
		csrf = m[1]
	}
	return resp.StatusCode, resp.Header.Get("Location"), csrf, string(raw)
}

// code approves authURL with key through the consent form and returns the
// redirect's code.
func (o oauthSide) code(authURL, key string) string {
	o.t.Helper()
	hc := web()
	status, _, csrf, body := o.consent(hc, authURL)
	if status != 200 || csrf == "" {
		o.t.Fatalf("consent page: %d %.300s", status, body)
	}
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("csrf", csrf)
	form.Set("api_key", key)
	form.Set("decision", "approve")
	resp, err := hc.PostForm(o.base+"/oauth/authorize", form)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		raw, _ := io.ReadAll(resp.Body)
		o.t.Fatalf("approve: %d %q %.300s", resp.StatusCode, resp.Header.Get("Location"), raw)
	}
	return loc.Query().Get("code")
}

// token posts a token request and returns the status and the JSON answer.
func (o oauthSide) token(form url.Values) (int, map[string]any) {
	o.t.Helper()
	resp, err := http.PostForm(o.base+"/oauth/token", form)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		o.t.Fatalf("token answer: %d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// connect runs the authorization-code flow for client with redirect,
// approved with key for scope, and returns the tokens it got.
func (o oauthSide) connect(client, redirect, key, scope string) (access, refresh string) {
	o.t.Helper()
	verifier, challenge := pkce()
	code := o.code(o.authorizeURL(client, redirect, challenge, map[string]string{"scope": scope}), key)
	status, tok := o.token(exchange(client, code, redirect, verifier))
	access, _ = tok["access_token"].(string)
	refresh, _ = tok["refresh_token"].(string)
	if status != 200 || access == "" || refresh == "" {
		o.t.Fatalf("exchange: %d %v", status, tok)
	}
	return access, refresh
}

func exchange(client, code, redirect, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
}

// bearer sends one request with tok and returns the status.
func bearer(t *testing.T, base, tok, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, _ := framework.Fetch(t, nil, req)
	return resp.StatusCode
}

// TestOAuthCodeFlowOutsideIn: the authorization-code flow as a hostile
// client tries it, through a follower: PKCE must be S256 (plain and a
// missing challenge are refused before any consent), a code is bound to the
// redirect_uri it was issued for (another registered one is refused), to its
// client (another client with the right verifier is refused) and is single
// use; a token's scopes are within the approving key's (asking for none
// gets no more than the key holds).
func TestOAuthCodeFlowOutsideIn(t *testing.T) {
	// One --public-url for the cluster, as the README asks of several
	// coordinators (oauthAppRig): without it the token below, used on every
	// coordinator, is refused everywhere after a leader change (oauth16).
	r := sharedMCPRig(t, "light")
	f := r.follower()
	o := oauthSide{t: t, base: r.c.URL(f)}
	const cb1, cb2 = "http://127.0.0.1:9/cb-one", "http://127.0.0.1:9/cb-two"
	client := o.register(cb1, cb2)
	other := o.register(cb1, cb2)
	k, err := r.c.AnyAlive(nil).Admin().CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: "narrow", Scopes: []string{"account:read", "tickets:read"}})
	if err != nil {
		t.Fatal(err)
	}

	// PKCE: plain, or no challenge, never reaches a consent form.
	verifier, challenge := pkce()
	for name, extra := range map[string]map[string]string{
		"plain":        {"code_challenge_method": "plain", "code_challenge": verifier},
		"no challenge": {"code_challenge": "", "code_challenge_method": ""},
		"no method":    {"code_challenge_method": ""},
	} {
		status, loc, csrf, body := o.consent(web(), o.authorizeURL(client, cb1, challenge, extra))
		u, _ := url.Parse(loc)
		refused := status == 400 || (status == http.StatusSeeOther && u != nil && u.Query().Get("error") != "" && u.Query().Get("code") == "")
		if csrf != "" || !refused {
			t.Errorf("PKCE %s: %d Location %q consent form %v: %.200s; want it refused (400 page or an error redirect)", name, status, loc, csrf != "", body)
		}
	}

	// redirect_uri is matched exactly: near misses never get a consent
	// form or a redirect.
	for _, u := range []string{cb1 + "/", cb1 + "x", cb1 + "?a=1", cb1 + "#f", strings.ToUpper(cb1), "http://127.0.0.1:9/CB-ONE",
		"http://127.0.0.1:9/cb-one/../cb-two", "http://127.0.0.1:9@evil.example/cb-one", "http://localhost:9/cb-one", "https://127.0.0.1:9/cb-one"} {
		status, loc, csrf, _ := o.consent(web(), o.authorizeURL(client, u, challenge, nil))
		if status != 400 || loc != "" || csrf != "" {
			t.Errorf("redirect_uri %q (registered: %s, %s): %d Location %q consent form %v; want a 400 page", u, cb1, cb2, status, loc, csrf != "")
		}
	}

	// A code for cb1 is refused with cb2 (registered too), and with
	// another client holding the right verifier.
	for name, form := range map[string]func(code string) url.Values{
		"another registered redirect_uri": func(code string) url.Values { return exchange(client, code, cb2, verifier) },
		"another client":                  func(code string) url.Values { return exchange(other, code, cb1, verifier) },
		"no redirect_uri": func(code string) url.Values {
			f := exchange(client, code, cb1, verifier)
			f.Del("redirect_uri")
			return f
		},
		"no code_verifier": func(code string) url.Values {
			f := exchange(client, code, cb1, verifier)
			f.Del("code_verifier")
			return f
		},
	} {
		code := o.code(o.authorizeURL(client, cb1, challenge, nil), k.Key)
		if status, out := o.token(form(code)); status/100 != 4 || out["access_token"] != nil {
			t.Errorf("%s: %d %v; want a 4xx and no token", name, status, out)
		}
	}

	// No scope asked: the token holds no more than the approving key.
	code := o.code(o.authorizeURL(client, cb1, challenge, nil), k.Key)
	status, tok := o.token(exchange(client, code, cb1, verifier))
	at, _ := tok["access_token"].(string)
	if status != 200 || at == "" {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	for _, s := range strings.Fields(fmt.Sprint(tok["scope"])) {
		if !slices.Contains(k.Info.Scopes, s) {
			t.Errorf("token scope %q is not the approving key's (%v)", s, k.Info.Scopes)
		}
	}
	for i := range r.c.Len() {
		if got := bearer(t, r.c.URL(i), at, "GET", "/v1/account"); got != 200 {
			t.Errorf("coordinator %d: GET /v1/account with the token: %d", i, got)
		}
		if got := bearer(t, r.c.URL(i), at, "GET", "/v1/billing/wallet"); got != 403 {
			t.Errorf("coordinator %d: GET /v1/billing/wallet with a token of a key without billing:read: %d, want 403", i, got)
		}
	}
	// A refresh asking for more: refused, or no more than the grant.
	rt, _ := tok["refresh_token"].(string)
	status, ref := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {"account:read tickets:read billing:read servers:destroy"}})
	if status == 200 {
		for _, s := range strings.Fields(fmt.Sprint(ref["scope"])) {
			if !slices.Contains(k.Info.Scopes, s) {
				t.Errorf("a refresh asking for more got scope %q (the key: %v)", s, k.Info.Scopes)
			}
		}
		if at2, _ := ref["access_token"].(string); bearer(t, r.c.URL(0), at2, "GET", "/v1/billing/wallet") != 403 {
			t.Errorf("the refreshed token reads the wallet")
		}
	} else if status/100 != 4 {
		t.Errorf("a refresh asking for more: %d %v", status, ref)
	}
	if status, out := o.token(exchange(client, code, cb1, verifier)); status/100 != 4 || out["access_token"] != nil {
		t.Errorf("the code a second time: %d %v", status, out)
	}
}

// mcpSession speaks Streamable HTTP JSON-RPC to /mcp with plain requests.
type mcpSession struct {
	t        *testing.T
	endpoint string
	token    string
	session  string
	id       int
}

// post sends one JSON-RPC message and returns the response and the
// decoded result message (nil for a notification).
func (m *mcpSession) post(method string, params any, notify bool) (*http.Response, map[string]any) {
	m.t.Helper()
	msg := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
	if !notify {
		m.id++
		msg["id"] = m.id
	}
	raw, _ := json.Marshal(msg)
	req, _ := http.NewRequest("POST", m.endpoint, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(framework.MCPHeaders(req, m.token, m.session, "2025-06-18"))
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); resp.StatusCode == 200 && !strings.Contains(cc, "no-store") {
		m.t.Errorf("%s: an MCP answer with Cache-Control %q; want no-store (an answer can carry a secret shown once)", method, cc)
	}
	if notify || resp.StatusCode != 200 {
		return resp, nil
	}
	body = sseLast(resp, body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		m.t.Fatalf("%s: %v: %.300s", method, err, body)
	}
	return resp, out
}

// sseLast is body, an answer to resp, as JSON: an event stream's last data
// line, else body as it is.
func sseLast(resp *http.Response, body []byte) []byte {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return body
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	var data string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
			data = strings.TrimSpace(d)
		}
	}
	return []byte(data)
}

func (m *mcpSession) initialize() {
	m.t.Helper()
	resp, out := m.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "audit", "version": "1"}}, false)
	if resp.StatusCode != 200 || out["result"] == nil {
		m.t.Fatalf("initialize: %d %v %q", resp.StatusCode, out, resp.Header.Get("WWW-Authenticate"))
	}
	m.session = resp.Header.Get("Mcp-Session-Id")
	m.post("notifications/initialized", map[string]any{}, true)
}

// TestMCPOutsideIn: /mcp as a client written from the README: without a
// token, or with a wrong one, a 401 with WWW-Authenticate naming the
// resource metadata; tools/list shows exactly the tools of the operations
// the key's scopes allow; a tool the key may not use is refused; a tool
// answer that carries a secret (a webhook's, shown once) is not cacheable
// (Cache-Control: no-store, as issue 10 item 4 asks of every response that
// carries one).
func TestMCPOutsideIn(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	for i := range r.c.Len() {
		for _, tok := range []string{"", "snc_" + strings.Repeat("x", 43), "snc_at_nope"} {
			m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: tok}
			resp, _ := m.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "audit", "version": "1"}}, false)
			wa := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != 401 || !strings.HasPrefix(wa, "Bearer") || !strings.Contains(wa, "resource_metadata=") {
				t.Errorf("coordinator %d, token %q: %d WWW-Authenticate %q; want 401 with Bearer resource_metadata", i, tok, resp.StatusCode, wa)
			}
		}
	}

	// tools/list for a key with two read scopes and webhooks:write.
	scopes := []string{"account:read", "tickets:read", "webhooks:write"}
	k := r.keyOfA(t, api.KeyCreateRequest{Name: "mcp", Scopes: scopes})
	others := map[string]string{}
	for _, op := range r.operations() {
		if op.OperationID != "" && op.Scope != "" && !slices.Contains(scopes, op.Scope) {
			others[snake(op.OperationID)] = op.method + " " + op.path + " (" + op.Scope + ")"
		}
	}
	m := &mcpSession{t: t, endpoint: r.c.URL(f) + "/mcp", token: k}
	m.initialize()
	listed := map[string]bool{}
	for cursor := ""; ; {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		_, out := m.post("tools/list", params, false)
		res, _ := out["result"].(map[string]any)
		tools, _ := res["tools"].([]any)
		for _, tl := range tools {
			name, _ := tl.(map[string]any)["name"].(string)
			listed[name] = true
		}
		if cursor, _ = res["nextCursor"].(string); cursor == "" {
			break
		}
	}
	for name := range listed {
		if what, ok := others[name]; ok {
			t.Errorf("tools/list shows %s, the operation %s outside the key's scopes %v", name, what, scopes)
		}
	}
	for _, name := range []string{"get_account", "list_tickets", "create_webhook", "rotate_webhook_secret"} {
		if !listed[name] {
			t.Errorf("tools/list lacks %s (within %v): %v", name, scopes, listed)
		}
	}
	// A tool outside the scopes, called anyway: refused (the MCP
	// authorization spec's 403 insufficient_scope challenge), nothing made.
	resp, out := m.post("tools/call", map[string]any{"name": "create_ticket", "arguments": map[string]any{"body": map[string]any{"subject": "s", "message": "m"}}}, false)
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 403 || !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, "tickets:write") {
		t.Errorf("create_ticket with a key without tickets:write: %d %q %v; want 403 insufficient_scope naming tickets:write", resp.StatusCode, wa, out)
	}
	var tl struct {
		Total int `json:"total"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets", nil, nil).Decode(t, &tl)
	if tl.Total != 0 {
		t.Errorf("%d tickets after the refused call", tl.Total)
	}

	// Another account's bearer on this session: it never acts as A.
	mb := &mcpSession{t: t, endpoint: m.endpoint, token: r.keyB, session: m.session, id: 100}
	resp, out = mb.post("tools/call", map[string]any{"name": "get_account", "arguments": map[string]any{}}, false)
	if raw, _ := json.Marshal(out); resp.StatusCode == 200 && strings.Contains(string(raw), r.accA.ID) {
		t.Errorf("B's key on A's MCP session read A's account: %s", raw)
	}

	// A secret through MCP: the answer must not be stored by a cache.
	rc := newReceiver(t)
	resp, out = m.post("tools/call", map[string]any{"name": "create_webhook", "arguments": map[string]any{"body": map[string]any{"url": rc.URL, "events": []string{"*"}}}}, false)
	res, _ := out["result"].(map[string]any)
	raw, _ := json.Marshal(res)
	if res == nil || res["isError"] == true || !strings.Contains(string(raw), "whsec_") {
		t.Fatalf("create_webhook through MCP: %v", out)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("an MCP answer carrying a webhook secret has Cache-Control %q; want no-store", cc)
	}
}

// oauthAppRig is a light rig with one --public-url on every coordinator (as
// the README asks of a cluster of several: without it the issuer and a
// token's audience are the address of the coordinator that led when it was
// issued, and every token is refused after a leader change) and an OAuth
// client registered (with the callback http://127.0.0.1:9/cb) at the
// authorization server of a follower, o; connect connects the client with an
// API key for account:read and returns its access and refresh tokens.
func oauthAppRig(t *testing.T) (r *rig, o oauthSide, client string, connect func(key string) (access, refresh string)) {
	return oauthAppOn(t, lightRig(t, "light", "--public-url", "https://api.audit.example"))
}

// oauthAppOn is oauthAppRig on r, a rig of a cluster with --public-url
// https://api.audit.example (sharedMCPRig).
func oauthAppOn(t *testing.T, r *rig) (_ *rig, o oauthSide, client string, connect func(key string) (access, refresh string)) {
	o = oauthSide{t: t, base: r.c.URL(r.follower())}
	const cb = "http://127.0.0.1:9/cb"
	client = o.register(cb)
	connect = func(key string) (access, refresh string) {
		t.Helper()
		return o.connect(client, cb, key, "account:read")
	}
	return r, o, client, connect
}

// TestOAuthGrantEndsWithItsKey: an app connected with an API key (through
// the authorization-code or the device flow's consent page) lives no longer
// than that key. A key that leaked could otherwise connect an app of
// the thief's, whose refresh token (90 days) would survive the customer
// revoking the key. After the approving key is revoked, the app's access
// token is a 401 on every coordinator and its refresh token is refused; an
// app approved with another key of the account keeps working.
func TestOAuthGrantEndsWithItsKey(t *testing.T) {
	r, o, client, connect := oauthAppOn(t, sharedMCPRig(t, "light"))
	adm := r.c.AnyAlive(nil).Admin()
	// The device flow's consent page, approved with key.
	devClient := func() string {
		status, id, err := registerDeviceClient(t, o.base, nil, "urn:ietf:params:oauth:grant-type:device_code", "refresh_token")
		if err != nil || status != 201 {
			t.Fatalf("register a device client: %d %v", status, err)
		}
		return id
	}()
	device := func(key string) (access, refresh string) {
		t.Helper()
		status, da, err := deviceAuthorize(t, o.base, devClient, nil)
		if err != nil || da.UserCode == "" {
			t.Fatalf("device authorization: %d %v", status, err)
		}
		hc := web()
		status, _, csrf, body := o.consent(hc, o.base+"/oauth/device")
		if status != 200 || csrf == "" {
			t.Fatalf("device page: %d %.300s", status, body)
		}
		resp, err := hc.PostForm(o.base+"/oauth/device", url.Values{"user_code": {da.UserCode}, "csrf": {csrf}, "api_key": {key}, "decision": {"approve"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("device approval: %d", resp.StatusCode)
		}
		st, tok := o.token(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {devClient}, "device_code": {da.DeviceCode}})
		access, _ = tok["access_token"].(string)
		refresh, _ = tok["refresh_token"].(string)
		if st != 200 || access == "" {
			t.Fatalf("device token: %d %v", st, tok)
		}
		return access, refresh
	}
	leaked, err := adm.CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: "leaked", Scopes: []string{"account:read"}})
	if err != nil {
		t.Fatal(err)
	}
	at, rt := connect(leaked.Key)
	devAt, devRt := device(leaked.Key)
	keptAt, keptRt := connect(r.keyA)
	if got := bearer(t, r.c.URL(0), at, "GET", "/v1/account"); got != 200 {
		t.Fatalf("the app's token before the revocation: %d", got)
	}
	if _, err := adm.RevokeKey(r.ctx, leaked.Info.ID); err != nil {
		t.Fatal(err)
	}
	for i := range r.c.Len() {
		framework.WaitFor(t, fmt.Sprint("coordinator ", i, " refusing the app's token"), 10*time.Second, 100*time.Millisecond, func() bool {
			return bearer(t, r.c.URL(i), at, "GET", "/v1/account") == 401
		})
		if got := bearer(t, r.c.URL(i), devAt, "GET", "/v1/account"); got != 401 {
			t.Errorf("coordinator %d: the device-flow app connected with the revoked key: %d, want 401", i, got)
		}
		if got := bearer(t, r.c.URL(i), keptAt, "GET", "/v1/account"); got != 200 {
			t.Errorf("coordinator %d: the app connected with a live key: %d, want 200", i, got)
		}
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh of the app connected with the revoked key: %d %v; want 400 invalid_grant", status, out)
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {devClient}, "refresh_token": {devRt}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh of the device-flow app connected with the revoked key: %d %v; want 400 invalid_grant", status, out)
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {keptRt}}); status != 200 {
		t.Errorf("refresh of the app connected with a live key: %d %v", status, out)
	}
}
