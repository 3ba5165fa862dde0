package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// fromAddr is an HTTP client whose connections leave from ip (any 127/8
// address is this host's loopback), so a test can be a client at another
// source address.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// bearerFrom sends GET path with tok from hc and returns the status and the
// X-RateLimit-Limit header.
func bearerFrom(t *testing.T, hc *http.Client, base, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, _ := framework.Fetch(t, hc, req)
	return resp.StatusCode, resp.Header.Get("X-RateLimit-Limit")
}

// TestOAuthAppGetsNoMoreThanItsKey: an app connected with an API key gets no
// more than that key, as a key minted with a key does: the key's IP
// allow-list binds the app's tokens, the key's per-minute limit is the app's,
// and the app stops working (tokens 401, refresh invalid_grant) once the key
// has expired. An app connected with a key that has none of these limits is
// unaffected (the control). Before, an app's tokens worked from anywhere, at
// the default limit, for 90 days after its key expired.
func TestOAuthAppGetsNoMoreThanItsKey(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r, o, client, connect := oauthAppRig(t)
	mint := func(req api.KeyCreateRequest) string { return r.keyOfA(t, req) }
	expiry := time.Now().Add(15 * time.Second).UTC().Truncate(time.Second)
	narrow := mint(api.KeyCreateRequest{Name: "narrow", Scopes: []string{"account:read"}, AllowedCIDRs: []string{"127.0.0.1/32"}, RateLimitPerMin: 5})
	short := mint(api.KeyCreateRequest{Name: "short", Scopes: []string{"account:read"}, ExpiresAt: &expiry})
	narrowAt, _ := connect(narrow)
	shortAt, shortRt := connect(short)
	keptAt, keptRt := connect(r.keyA)

	here, there := fromAddr("127.0.0.1"), fromAddr("127.0.0.2")
	leader := r.c.Leader().URL()

	// The allow-list: the app's token from outside it is what the key gets there.
	if st, _ := bearerFrom(t, there, leader, narrow, "/v1/account"); st != 403 {
		t.Fatalf("the narrow key itself from 127.0.0.2: %d, want 403 (the allow-list as keys have it)", st)
	}
	for i := range r.c.Len() {
		if st, _ := bearerFrom(t, there, r.c.URL(i), narrowAt, "/v1/account"); st != 403 {
			t.Errorf("coordinator %d: the narrow key's app from 127.0.0.2: %d, want 403", i, st)
		}
		if st, _ := bearerFrom(t, there, r.c.URL(i), keptAt, "/v1/account"); st != 200 {
			t.Errorf("coordinator %d: the unrestricted key's app from 127.0.0.2: %d, want 200", i, st)
		}
	}

	// The rate limit: the key's 5 a minute, counted for the app; a 429 comes
	// within two windows' worth of requests whatever the window's phase.
	st, limit := bearerFrom(t, here, leader, narrowAt, "/v1/account")
	if st != 200 || limit != "5" {
		t.Fatalf("the narrow key's app from 127.0.0.1: %d with X-RateLimit-Limit %q, want 200 and 5", st, limit)
	}
	limited := false
	for range 11 {
		if st, _ := bearerFrom(t, here, leader, narrowAt, "/v1/account"); st == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("the narrow key's app: 12 requests in a row, no 429 (its key allows 5 a minute)")
	}
	if _, limit := bearerFrom(t, here, leader, keptAt, "/v1/account"); limit == "5" || limit == "" {
		t.Errorf("the unrestricted key's app: X-RateLimit-Limit %q, want the default", limit)
	}

	// The expiry: the app works until its key expires, then not on any coordinator.
	if st, _ := bearerFrom(t, here, leader, shortAt, "/v1/account"); st != 200 {
		t.Fatalf("the short key's app before the expiry: %d", st)
	}
	time.Sleep(time.Until(expiry) + 500*time.Millisecond)
	for i := range r.c.Len() {
		if st, _ := bearerFrom(t, here, r.c.URL(i), shortAt, "/v1/account"); st != 401 {
			t.Errorf("coordinator %d: the app of the expired key: %d, want 401", i, st)
		}
		if st, _ := bearerFrom(t, here, r.c.URL(i), keptAt, "/v1/account"); st != 200 {
			t.Errorf("coordinator %d: the app of a live key: %d, want 200", i, st)
		}
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {shortRt}}); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh of the app of the expired key: %d %v; want 400 invalid_grant", status, out)
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {keptRt}}); status != 200 {
		t.Errorf("refresh of the app of a live key: %d %v", status, out)
	}
}

// TestOAuthSpendsTheAddressBudget: three coordinator processes with
// --ip-rate-limit=7. The OAuth endpoints take no API key, so every request to
// them is a request without a valid key: from one client address each kind
// (a registration, a device authorization, a token request with a guessed
// code, a revocation, the consent pages, the metadata documents) spends the
// address's one budget, the one /v1 without a key spends, and carries its
// X-RateLimit-* figures, through a follower (which forwards the protocol
// endpoints to the leader) as well as on the leader. Past it each is refused
// with Retry-After: a 429 whose body is OAuth's error format with
// "rate_limited" (an HTML page on the consent pages), except a device-code
// poll, which is RFC 8628's slow_down (a 400, the answer a device client
// knows to back off on). A guessed code is refused before it is looked at,
// so a token endpoint is no faster brute-force target than /v1. Another
// address still has its budget. Before, the OAuth endpoints had a budget of
// their own (300 a minute per exact address, whatever --ip-rate-limit said:
// an IPv6 client could step round it by changing the low bits), sent no
// X-RateLimit-*, answered slow_down to every kind of request, and the
// metadata documents were not counted at all.
func TestOAuthSpendsTheAddressBudget(t *testing.T) {
	const budget = 7
	c, ctx, _ := ipBudgetCluster(t, framework.ProcessOptions{N: 3}, budget, "", 2*time.Minute)

	type ask struct {
		name, method, path, ctype, body string
		status                          int
		code                            string // the OAuth error code, "" for none or a page
	}
	reg := `{"client_name":"budget","grant_types":["urn:ietf:params:oauth:grant-type:device_code","authorization_code"],"redirect_uris":["http://127.0.0.1/cb"]}`
	form := "application/x-www-form-urlencoded"
	do := func(hc *http.Client, base string, q ask) (int, http.Header, string) {
		t.Helper()
		var body io.Reader
		if q.body != "" {
			body = strings.NewReader(q.body)
		}
		req, _ := http.NewRequestWithContext(ctx, q.method, base+q.path, body)
		if q.ctype != "" {
			req.Header.Set("Content-Type", q.ctype)
		}
		resp, b := framework.Fetch(t, hc, req)
		return resp.StatusCode, resp.Header, string(b)
	}
	oauthCode := func(b string) string {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(b), &e)
		return e.Error
	}

	leaderRounds(ctx, t, c, func(round, ld int, bad func(format string, args ...any)) {
		ip := fmt.Sprintf("127.0.2.%d", 10+round)
		hc := fromAddr(ip)
		leader, follower := c.URL(ld), c.URL((ld+1)%3)

		// A client to name in the requests, registered from another address.
		st, h, b := do(fromAddr(fmt.Sprintf("127.0.3.%d", 10+round)), leader, ask{method: "POST", path: "/oauth/register", ctype: "application/json", body: reg})
		var cl struct {
			ClientID string `json:"client_id"`
		}
		if err := json.Unmarshal([]byte(b), &cl); st != 201 || err != nil {
			t.Fatalf("register from another address: %d %s", st, b)
		}
		if h.Get("X-RateLimit-Limit") != strconv.Itoa(budget) {
			bad("register: X-RateLimit-Limit %q, want %d", h.Get("X-RateLimit-Limit"), budget)
		}
		guess := url.Values{"grant_type": {"authorization_code"}, "client_id": {cl.ClientID}, "code": {"guessed-code"},
			"redirect_uri": {"http://127.0.0.1/cb"}, "code_verifier": {strings.Repeat("v", 43)}}.Encode()
		poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {cl.ClientID}, "device_code": {"guessed-device-code"}}.Encode()
		authorize := "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {cl.ClientID}, "redirect_uri": {"http://127.0.0.1/cb"},
			"code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}, "state": {"s"}}.Encode()

		every := []ask{
			{name: "a registration", method: "POST", path: "/oauth/register", ctype: "application/json", body: reg, status: 201},
			{name: "a device authorization", method: "POST", path: "/oauth/device_authorization", ctype: form, body: url.Values{"client_id": {cl.ClientID}, "scope": {"account:read"}}.Encode(), status: 200},
			{name: "a guessed code", method: "POST", path: "/oauth/token", ctype: form, body: guess, status: 400, code: "invalid_grant"},
			{name: "a revocation", method: "POST", path: "/oauth/revoke", ctype: form, body: url.Values{"client_id": {cl.ClientID}, "token": {"guessed"}}.Encode(), status: 200},
			{name: "the device page", method: "GET", path: "/oauth/device", status: 200},
			{name: "the authorize page", method: "GET", path: authorize, status: 200},
			{name: "the metadata", method: "GET", path: "/.well-known/oauth-authorization-server", status: 200},
		}
		// Through the follower for the even ones, on the leader for the odd:
		// one budget, the leader's, for what the leader serves.
		for n, q := range every {
			base, where := leader, "leader"
			if n%2 == 0 && q.path != "/.well-known/oauth-authorization-server" {
				base, where = follower, "follower"
			}
			st, h, b := do(hc, base, q)
			want := fmt.Sprintf("%d/%d", budget, budget-1-n)
			if got := h.Get("X-RateLimit-Limit") + "/" + h.Get("X-RateLimit-Remaining"); st != q.status || got != want || h.Get("X-RateLimit-Reset") == "" || q.code != "" && oauthCode(b) != q.code {
				bad("%s, %s: %d %s, X-RateLimit-Limit/-Remaining %q, -Reset %q; want %d %s and %s", where, q.name, st, oauthCode(b), got, h.Get("X-RateLimit-Reset"), q.status, q.code, want)
			}
		}
		past := fmt.Sprintf("%d/0", budget)
		// /v1 without a key shares the budget: spent.
		if st, h, _ := do(hc, leader, ask{method: "GET", path: "/v1/account"}); st != 429 || h.Get("X-RateLimit-Limit")+"/"+h.Get("X-RateLimit-Remaining") != past {
			bad("/v1 without a key after OAuth spent the budget: %d, %q/%q; want 429 and %s", st, h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"), past)
		}
		refused := append(every, ask{name: "a device-code poll", method: "POST", path: "/oauth/token", ctype: form, body: poll})
		for _, q := range refused {
			for _, at := range []struct{ where, base string }{{"leader", leader}, {"follower", follower}} {
				if q.path == "/.well-known/oauth-authorization-server" && at.where == "follower" {
					continue // a follower answers the documents itself, from its own budget
				}
				st, h, b := do(hc, at.base, q)
				wantStatus, wantCode := 429, "rate_limited"
				switch {
				case q.name == "a device-code poll":
					wantStatus, wantCode = 400, "slow_down"
				case strings.HasPrefix(q.path, "/oauth/device") && q.method == "GET", strings.HasPrefix(q.path, "/oauth/authorize"):
					wantCode = "" // an HTML page
				case strings.HasPrefix(q.path, "/.well-known/"):
					wantCode = "" // the API's error format, as the document's 404
					if !strings.Contains(b, `"rate_limited"`) {
						bad("%s past the budget, %s: %.200s, want rate_limited", at.where, q.name, b)
					}
				}
				retry, _ := strconv.Atoi(h.Get("Retry-After"))
				if got := h.Get("X-RateLimit-Limit") + "/" + h.Get("X-RateLimit-Remaining"); st != wantStatus || got != past || retry < 1 || retry > 60 || wantCode != "" && oauthCode(b) != wantCode {
					bad("%s past the budget, %s: %d %q, X-RateLimit-Limit/-Remaining %q, Retry-After %q; want %d %q, %s, 1-60 s: %.200s", at.where, q.name, st, oauthCode(b), got, h.Get("Retry-After"), wantStatus, wantCode, past, b)
				}
			}
		}
		// Another address still has its budget.
		if st, h, _ := do(fromAddr(fmt.Sprintf("127.0.4.%d", 10+round)), follower, ask{method: "POST", path: "/oauth/token", ctype: form, body: guess}); st != 400 || h.Get("X-RateLimit-Remaining") != strconv.Itoa(budget-1) {
			bad("a guessed code from another address: %d, X-RateLimit-Remaining %q; want 400 and %d", st, h.Get("X-RateLimit-Remaining"), budget-1)
		}
	})
}
