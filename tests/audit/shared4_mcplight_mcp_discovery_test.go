package audit

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// withHeaders sets hdr on r (a "Host" entry as r.Host) and returns r.
func withHeaders(r *http.Request, hdr map[string]string) *http.Request {
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

// getJSON fetches url with the extra request headers (Host among them) and
// decodes the JSON answer; it fails the test on anything but a 200.
func getJSON(t *testing.T, rawURL string, hdr map[string]string, v any) http.Header {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, raw := framework.Fetch(t, &http.Client{Timeout: 20 * time.Second}, withHeaders(req, hdr))
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s %v: %d %.300s", rawURL, hdr, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("GET %s: %v: %.300s", rawURL, err, raw)
	}
	return resp.Header
}

// local maps a URL under the public base onto coordinator base (a reverse
// proxy's job): the path and query are kept.
func local(public, pub, base string) string {
	if rest, ok := strings.CutPrefix(public, pub); ok {
		return base + rest
	}
	return public
}

var resourceMetadata = regexp.MustCompile(`resource_metadata="([^"]+)"`)

// forgedHeaders are what a client (or a proxy that passes them on) may send to
// make the server name another host in what it publishes.
var forgedHeaders = []map[string]string{
	nil,
	{"Host": "evil.example"},
	{"Host": "evil.example:443", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
	{"Forwarded": `host=evil.example;proto=https`, "X-Forwarded-Prefix": "/evil", "X-Original-Host": "evil.example"},
}

// checkDiscovery follows what an MCP client does from a 401 on base+"/mcp"
// (with hdr on every request) and checks everything it reads names pub:
// the challenge's resource_metadata, the RFC 9728 document of /mcp (and of
// the API as a whole), the RFC 8414 document of the issuer it names and a
// device authorization's verification_uri.
func checkDiscovery(t *testing.T, base, pub string, hdr map[string]string, device bool) {
	t.Helper()
	m := &mcpSession{t: t, endpoint: base + "/mcp"}
	req, _ := http.NewRequest("POST", m.endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, _ := framework.Fetch(t, &http.Client{Timeout: 20 * time.Second}, withHeaders(req, hdr))
	wa := resp.Header.Get("WWW-Authenticate")
	mm := resourceMetadata.FindStringSubmatch(wa)
	if resp.StatusCode != 401 || !strings.HasPrefix(wa, "Bearer ") || mm == nil {
		t.Fatalf("POST /mcp without a token %v: %d WWW-Authenticate %q; want 401 Bearer resource_metadata=…", hdr, resp.StatusCode, wa)
	}
	if want := pub + "/.well-known/oauth-protected-resource/mcp"; mm[1] != want {
		t.Errorf("%v: the 401 names resource_metadata %q; want %q", hdr, mm[1], want)
	}
	// The scopes a client asks for first (MCP "Scope Selection Strategy":
	// the challenge's scope before scopes_supported): a default key's, so a
	// user can approve with one; more come by step-up.
	if sc := challengeParam(wa, "scope"); !slices.Equal(strings.Fields(sc), api.DefaultScopes()) {
		t.Errorf("%v: the 401's scope %q; want the default scopes %v", hdr, sc, api.DefaultScopes())
	}
	// RFC 6750 §3.1: no error code when no credentials were sent; with a
	// bearer that is not good, error="invalid_token" (a client then drops
	// the token and authorizes again), and the same resource_metadata.
	if strings.Contains(wa, "error=") {
		t.Errorf("%v: the 401 without a token has an error code: %q", hdr, wa)
	}
	for _, bad := range []string{"notakeyatall"} {
		st, h, _ := rawMCP(t, "POST", base+"/mcp", bad, "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hdr, 20*time.Second)
		bw := h.Get("WWW-Authenticate")
		bm := resourceMetadata.FindStringSubmatch(bw)
		if st != 401 || !strings.HasPrefix(bw, "Bearer ") || !strings.Contains(bw, `error="invalid_token"`) || bm == nil || bm[1] != mm[1] {
			t.Errorf("%v: POST /mcp with the bad bearer %q: %d WWW-Authenticate %q; want 401 Bearer error=\"invalid_token\" resource_metadata=%q", hdr, bad, st, bw, mm[1])
		}
	}

	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
		BearerMethods        []string `json:"bearer_methods_supported"`
	}
	getJSON(t, local(mm[1], pub, base), hdr, &prm)
	if prm.Resource != pub+"/mcp" || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != pub {
		t.Errorf("%v: protected resource metadata of /mcp: resource %q authorization_servers %v; want %q and [%q]", hdr, prm.Resource, prm.AuthorizationServers, pub+"/mcp", pub)
	}
	if len(prm.BearerMethods) > 0 && !slices.Contains(prm.BearerMethods, "header") {
		t.Errorf("%v: bearer_methods_supported %v lacks header", hdr, prm.BearerMethods)
	}
	for _, s := range prm.ScopesSupported {
		if !slices.Contains(api.AllScopes, s) {
			t.Errorf("%v: protected resource metadata lists scope %q, not an API scope", hdr, s)
		}
	}
	var root struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, base+"/.well-known/oauth-protected-resource", hdr, &root)
	if root.Resource != pub || !slices.Equal(root.AuthorizationServers, []string{pub}) {
		t.Errorf("%v: protected resource metadata of the API: resource %q authorization_servers %v; want %q", hdr, root.Resource, root.AuthorizationServers, pub)
	}

	// RFC 8414 §3: the issuer's document is at the issuer with the
	// well-known path inserted; its issuer must be exactly the one asked.
	var as map[string]any
	getJSON(t, base+"/.well-known/oauth-authorization-server", hdr, &as)
	if as["issuer"] != pub {
		t.Errorf("%v: authorization server issuer %v; want %q", hdr, as["issuer"], pub)
	}
	for _, ep := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint", "device_authorization_endpoint"} {
		if s, _ := as[ep].(string); !strings.HasPrefix(s, pub+"/") {
			t.Errorf("%v: %s %q is not under the issuer %q", hdr, ep, s, pub)
		}
	}
	strs := func(k string) []string {
		var out []string
		l, _ := as[k].([]any)
		for _, v := range l {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	if m := strs("code_challenge_methods_supported"); !slices.Equal(m, []string{"S256"}) {
		t.Errorf("%v: code_challenge_methods_supported %v; want [S256] (OAuth 2.1, MCP: clients refuse a server without it)", hdr, m)
	}
	if rt := strs("response_types_supported"); !slices.Equal(rt, []string{"code"}) {
		t.Errorf("%v: response_types_supported %v; want [code]", hdr, rt)
	}
	gt := strs("grant_types_supported")
	for _, g := range []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"} {
		if !slices.Contains(gt, g) {
			t.Errorf("%v: grant_types_supported %v lacks %s", hdr, gt, g)
		}
	}
	for _, g := range []string{"password", "implicit", "client_credentials"} {
		if slices.Contains(gt, g) {
			t.Errorf("%v: grant_types_supported %v offers %s", hdr, gt, g)
		}
	}
	if am := strs("token_endpoint_auth_methods_supported"); !slices.Contains(am, "none") {
		t.Errorf("%v: token_endpoint_auth_methods_supported %v lacks none (public clients)", hdr, am)
	}

	if !device {
		return
	}
	// The device flow's verification_uri is what a user is told to open.
	status, clientID, err := registerDeviceClient(t, base, hdr, "urn:ietf:params:oauth:grant-type:device_code")
	if status != 201 || clientID == "" {
		t.Fatalf("%v: register: %d %v", hdr, status, err)
	}
	status, da, _ := deviceAuthorize(t, base, clientID, hdr)
	if status != 200 || da.VerificationURI != pub+"/oauth/device" || (da.VerificationURIComplete != "" && !strings.HasPrefix(da.VerificationURIComplete, pub+"/oauth/device?")) {
		t.Errorf("%v: device authorization: %d verification_uri %q complete %q; want %q", hdr, status, da.VerificationURI, da.VerificationURIComplete, pub+"/oauth/device")
	}
}

// TestMCPDiscoveryOutsideIn: an MCP client that knows only a coordinator's
// /mcp URL discovers the authorization server as the MCP authorization spec
// says (401 → RFC 9728 → RFC 8414), through every coordinator, and what it
// reads names the configured --public-url only: a forged Host,
// X-Forwarded-* or Forwarded header (a client's own, or one a proxy passes
// on) never makes a coordinator publish another issuer, resource or
// verification page (a token or a user code could be sent there). With no
// --public-url each coordinator names its own address, forged headers or not.
// A /mcp token from one coordinator's consent works on every coordinator's
// /mcp; /mcp behind a reverse proxy on the same host that passes the public
// Host on is served (as /v1 is), and any other Host on the loopback listener
// is refused (DNS rebinding).
func TestMCPDiscoveryOutsideIn(t *testing.T) {
	const pub = "https://api.audit.example"
	r := sharedMCPRig(t, "mcp")
	for i := range r.c.Len() {
		for _, hdr := range forgedHeaders {
			checkDiscovery(t, r.c.URL(i), pub, hdr, true)
		}
	}
	// The same grant, reached through any coordinator of the cluster (as a
	// load balancer spreads a client's requests), is one audience: a /mcp
	// token from coordinator 0's consent works on every /mcp.
	o := oauthSide{t: t, base: r.c.URL(0)}
	const cb = "http://127.0.0.1:9/cb"
	client := o.register(cb)
	verifier, challenge := pkce()
	code := o.code(o.authorizeURL(client, cb, challenge, map[string]string{"scope": "account:read", "resource": pub + "/mcp"}), r.keyA)
	form := exchange(client, code, cb, verifier)
	form.Set("resource", pub+"/mcp")
	status, tok := oauthSide{t: t, base: r.c.URL(1)}.token(form)
	at, _ := tok["access_token"].(string)
	if status != 200 || at == "" {
		t.Fatalf("exchange through coordinator 1: %d %v", status, tok)
	}
	for i := range r.c.Len() {
		m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: at}
		m.initialize()
		_, out := m.post("tools/call", map[string]any{"name": "get_account", "arguments": map[string]any{}}, false)
		if raw, _ := json.Marshal(out); !strings.Contains(string(raw), r.accA.ID) {
			t.Errorf("coordinator %d: get_account with the /mcp token: %.300s", i, raw)
		}
	}

	// A client that asks for the 401's scope is approved with a default
	// API key (the customer's usual key); asking for every scope in
	// scopes_supported needs a key holding them all.
	def := r.keyOfA(t, api.KeyCreateRequest{Name: "default", Scopes: api.DefaultScopes()})
	_, h, _ := rawMCP(t, "POST", r.c.URL(1)+"/mcp", "", "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, 10*time.Second)
	verifier, challenge = pkce()
	code = o.code(o.authorizeURL(client, cb, challenge, map[string]string{"scope": challengeParam(h.Get("WWW-Authenticate"), "scope"), "resource": pub + "/mcp"}), def)
	form = exchange(client, code, cb, verifier)
	form.Set("resource", pub+"/mcp")
	if status, tok := o.token(form); status != 200 || tok["access_token"] == nil {
		t.Errorf("a token for the 401's scope approved with a default key: %d %v", status, tok)
	}

	// A reverse proxy on the coordinator's host that passes the public
	// Host on (Caddy's and Traefik's default; nginx with proxy_set_header
	// Host $host) reaches the loopback listener with Host
	// api.audit.example: /mcp serves it as /v1 does.
	for i := range r.c.Len() {
		ep := r.c.URL(i) + "/mcp"
		proxied := map[string]string{"Host": "api.audit.example", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
		init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`
		st, h, body := rawMCP(t, "POST", ep, at, "", init, proxied, 10*time.Second)
		if st != 200 || h.Get("Mcp-Session-Id") == "" {
			t.Errorf("coordinator %d through a proxy passing Host %s: initialize %d %.200s; want 200 (GET /v1/account the same way: %d)", i, proxied["Host"], st, body,
				func() int {
					req, _ := http.NewRequest("GET", r.c.URL(i)+"/v1/account", nil)
					req.Host = proxied["Host"]
					req.Header.Set("Authorization", "Bearer "+r.keyA)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return 0
					}
					resp.Body.Close()
					return resp.StatusCode
				}())
			continue
		}
		sid := h.Get("Mcp-Session-Id")
		rawMCP(t, "POST", ep, at, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, proxied, 10*time.Second)
		if st, _, body := rawMCP(t, "POST", ep, at, sid, toolCallGetAccount, proxied, 10*time.Second); st != 200 || !strings.Contains(body, r.accA.ID) {
			t.Errorf("coordinator %d through the proxy: get_account %d %.300s", i, st, body)
		}
		// A Host that is neither loopback nor the public URL's reaching
		// the loopback listener is what DNS rebinding looks like.
		if st, _, _ := rawMCP(t, "POST", ep, at, sid, toolCallGetAccount, map[string]string{"Host": "evil.example"}, 10*time.Second); st != 403 {
			t.Errorf("coordinator %d: Host evil.example on its loopback listener: %d; want 403 (DNS rebinding protection)", i, st)
		}
	}

	// With --public-url on every coordinator, no warning about it (the
	// cluster has run for many seconds: the check runs every second).
	publicURLWarning(t, r, false)

	t.Run("no public url", func(t *testing.T) {
		d := sharedLightRig(t, "light")
		for i := range d.c.Len() {
			for _, hdr := range forgedHeaders {
				checkDiscovery(t, d.c.URL(i), d.c.URL(i), hdr, false)
			}
		}
		// README: a cluster of several coordinators needs --public-url for
		// OAuth; each one without it says so in its log and in cluster
		// status.
		publicURLWarning(t, d, true)
		// What the warning is about: a /mcp token from coordinator 0's
		// consent is not taken everywhere (or is not issued at all).
		o := oauthSide{t: t, base: d.c.URL(0)}
		const cb = "http://127.0.0.1:9/cb"
		client := o.register(cb)
		verifier, challenge := pkce()
		code := o.code(o.authorizeURL(client, cb, challenge, map[string]string{"scope": "account:read", "resource": d.c.URL(0) + "/mcp"}), d.keyA)
		form := exchange(client, code, cb, verifier)
		form.Set("resource", d.c.URL(0)+"/mcp")
		status, tok := o.token(form)
		t.Logf("without --public-url: exchange through coordinator 0: %d %v", status, tok["error"])
		if status == 200 {
			at, _ := tok["access_token"].(string)
			refused := 0
			for i := range d.c.Len() {
				if st, _, _ := rawMCP(t, "POST", d.c.URL(i)+"/mcp", at, "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, 10*time.Second); st == 401 {
					refused++
				}
			}
			t.Logf("without --public-url: the /mcp token from coordinator 0 is refused by %d of %d coordinators", refused, d.c.Len())
			if refused == 0 {
				t.Errorf("without --public-url a /mcp token from coordinator 0 works on every coordinator: the README and the warning say it does not")
			}
		}
	})
}

// noPublicURL is how the warning of a cluster without --public-url starts,
// in the log and in cluster status.
const noPublicURL = "no --public-url, in a cluster of 3 coordinators"

// publicURLWarning checks that each coordinator of r warns, or does not, that
// the cluster has no --public-url: in its log (within seconds) and in
// its cluster status (hostplanectl cluster status prints the warnings).
func publicURLWarning(t *testing.T, r *rig, want bool) {
	t.Helper()
	for i, p := range r.c.Nodes {
		// A coordinator logs it within a second of seeing the cluster
		// at its size (a follower may see 2 first, then 3: it warns
		// again); a loaded machine may delay that by seconds.
		deadline := time.Now().Add(15 * time.Second)
		for {
			raw, _ := os.ReadFile(p.LogPath())
			got := slices.ContainsFunc(strings.Split(string(raw), "\n"), func(l string) bool {
				return strings.Contains(l, "level=WARN") && strings.Contains(l, noPublicURL)
			})
			if got == want || !want || time.Now().After(deadline) {
				if got != want {
					t.Errorf("coordinator %d: warns of no --public-url in its log: %v; want %v", i, got, want)
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		st := clusterStatus(t, p)
		got := len(st.Warnings) == 1 && strings.HasPrefix(st.Warnings[0], noPublicURL)
		if got != want || !want && len(st.Warnings) > 0 {
			t.Errorf("coordinator %d: cluster status --json warnings %q; want the no --public-url warning: %v", i, st.Warnings, want)
		}
		if out := ctl(t, p, "cluster", "status"); out.code != 0 || strings.Contains(out.stdout, "warning: "+noPublicURL) != want {
			t.Errorf("coordinator %d: hostplanectl cluster status (exit %d):\n%s\nwant the no --public-url warning: %v", i, out.code, out.stdout, want)
		}
	}
}
