package audit

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestProbe57ForwardedAnswersCarryEachHeaderOnce: an answer a follower
// forwards from the leader (an OAuth endpoint's, a consent page's, a /v1
// read's and write's) carries the header the leader answers, each name once:
// a name this follower set before it forwarded (Pragma, Cache-Control,
// X-Frame-Options, Referrer-Policy, Content-Security-Policy) is not also the
// leader's copy of it, no hop-by-hop header comes through, and every answer
// that can carry a secret (a token endpoint's, a registration's, a device
// code's, a consent page with its CSRF token, /v1) is `Cache-Control:
// no-store`. The names are the leader's own answer's for the same request.
// Before, a forwarded OAuth answer carried `Pragma: no-cache` twice and a
// consent page each of its framing and referrer headers twice.
func TestProbe57ForwardedAnswersCarryEachHeaderOnce(t *testing.T) {
	r := sharedMCPRig(t, "probe57hdr")
	ld, _ := r.leaderAndFollower()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const cb = "http://127.0.0.1:9/cb"
	reg, _ := json.Marshal(map[string]any{"client_name": "probe57", "redirect_uris": []string{cb},
		"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	client := oauthSide{t: t, base: r.c.URL(ld)}.register(cb)
	_, challenge := pkce()
	authorize := "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {cb},
		"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"account:read"}}.Encode()
	type ask struct {
		name, method, path, ctype, body, key string
		secret                               bool // the answer may carry a secret: no-store
	}
	form := "application/x-www-form-urlencoded"
	asks := []ask{
		{"register", "POST", "/oauth/register", "application/json", string(reg), "", true},
		{"device authorization", "POST", "/oauth/device_authorization", form, url.Values{"client_id": {client}, "scope": {"account:read"}}.Encode(), "", true},
		{"token refused", "POST", "/oauth/token", form, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {"nope"}, "redirect_uri": {cb}, "code_verifier": {strings.Repeat("v", 43)}}.Encode(), "", true},
		{"token malformed", "POST", "/oauth/token", "text/plain", "x", "", true},
		{"revoke", "POST", "/oauth/revoke", form, url.Values{"token": {"hpat_nope"}, "client_id": {client}}.Encode(), "", true},
		{"consent page", "GET", authorize, "", "", "", true},
		{"device page", "GET", "/oauth/device", "", "", "", true},
		{"v1 read", "GET", "/v1/account", "", "", r.keyA, true},
		{"v1 write", "POST", "/v1/tickets", "application/json", `{"subject":"probe57 headers","message":"m","department":"general","priority":"low"}`, r.keyA, true},
		{"v1 refused write", "POST", "/v1/tickets", "application/json", `{"subject":1}`, r.keyA, true},
	}
	hop := []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	// Names whose values differ per answer or per coordinator, or are the
	// answering coordinator's own.
	own := []string{"Date", "Content-Length", "Set-Cookie", "X-Request-Id", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"}
	names := func(h http.Header) []string {
		var out []string
		for k := range h {
			if !slices.Contains(own, k) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	send := func(i int, a ask) *http.Response {
		req, err := http.NewRequest(a.method, r.c.URL(i)+a.path, strings.NewReader(a.body))
		if err != nil {
			t.Fatal(err)
		}
		if a.ctype != "" {
			req.Header.Set("Content-Type", a.ctype)
		}
		if a.key != "" {
			req.Header.Set("Authorization", "Bearer "+a.key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s at coordinator %d: %v", a.name, i, err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, a := range asks {
		lead := send(ld, a)
		for i := range r.c.Len() {
			if i == ld {
				continue
			}
			resp := send(i, a)
			for k, vs := range resp.Header {
				if len(vs) > 1 && k != "Set-Cookie" && k != "Vary" {
					t.Errorf("%s through follower %d (%d): %s %q; want it once", a.name, i, resp.StatusCode, k, vs)
				}
				if slices.Contains(hop, k) && !(k == "Connection" && len(vs) == 1 && vs[0] == "close") {
					t.Errorf("%s through follower %d: hop-by-hop header %s: %q", a.name, i, k, vs)
				}
			}
			if a.secret && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s through follower %d (%d): Cache-Control %q; want no-store", a.name, i, resp.StatusCode, resp.Header.Values("Cache-Control"))
			}
			if got, want := names(resp.Header), names(lead.Header); resp.StatusCode == lead.StatusCode && !slices.Equal(got, want) {
				t.Errorf("%s through follower %d (%d): header names %v; the leader answers %v", a.name, i, resp.StatusCode, got, want)
			}
			if resp.StatusCode != lead.StatusCode && a.name != "register" && a.name != "device authorization" {
				t.Errorf("%s: follower %d answers %d, the leader %d", a.name, i, resp.StatusCode, lead.StatusCode)
			}
		}
	}
}
