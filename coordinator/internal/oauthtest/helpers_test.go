// Package oauthtest tests the OAuth 2.1 authorization server through real
// coordinators (in-process: Raft, bbolt, the HTTP listener, with a clock the
// test moves; and hostplane-coordinator processes through tests/framework)
// with golang.org/x/oauth2 as the client, and the consent page in a real
// headless Chromium. It starts clusters and a browser: a heavy package in
// scripts/run-tests.sh.
package oauthtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/clock/clocktest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"golang.org/x/oauth2"
)

type env struct {
	t     *testing.T
	c     *testcluster.Cluster
	base  string
	clock *clocktest.Offset // the coordinator's clock, moved forward to expire codes and tokens
	ctx   context.Context
}

func start(t *testing.T, opts ...testcluster.Option) *env {
	t.Helper()
	return startN(t, 1, opts...)
}

// startN starts n coordinators.
func startN(t *testing.T, n int, opts ...testcluster.Option) *env {
	t.Helper()
	clk := &clocktest.Offset{}
	opts = append([]testcluster.Option{func(_ int, cfg *server.Config) {
		cfg.Clock = clk.Now
		cfg.OAuthPollInterval = time.Second
		// No test here fails over; the coordinators share this process
		// (with -race) on 2 cores, and the test cluster's 500 ms Raft
		// timeouts (a 250 ms leader lease) let leadership move under load:
		// 503 no_leader in TestThreeCoordinators at load 19-30.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 2*time.Second, 2*time.Second
	}}, opts...)
	c := testcluster.New(t, n, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, c: c, base: c.URL(0), clock: clk, ctx: ctx}
}

// account creates an account with one key of the given scopes.
func (e *env) account(email string, scopes ...string) (api.Account, string) {
	return e.c.NewAccount(email, scopes...)
}

// register registers a public client (RFC 7591) and returns its client_id.
func (e *env) register(meta map[string]any) string {
	e.t.Helper()
	status, out := e.postJSON("/oauth/register", meta)
	if status != http.StatusCreated {
		e.t.Fatalf("register: %d %v", status, out)
	}
	id, _ := out["client_id"].(string)
	if !strings.HasPrefix(id, "hpc_") {
		e.t.Fatalf("register: client_id %q", id)
	}
	return id
}

func (e *env) postJSON(path string, body any) (int, map[string]any) {
	e.t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(e.base+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	return decode(e.t, resp)
}

// postForm sends an OAuth form and returns the status and the JSON answer.
func (e *env) postForm(path string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.PostForm(e.base+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	return decode(e.t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: not JSON (%v): %s", resp.Request.URL.Path, err, raw)
	}
	return resp.StatusCode, out
}

// oauthConfig is the x/oauth2 client of a public client.
func (e *env) oauthConfig(clientID string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{
			AuthURL: e.base + "/oauth/authorize", TokenURL: e.base + "/oauth/token",
			DeviceAuthURL: e.base + "/oauth/device_authorization", AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1:9/callback",
		Scopes:      scopes,
	}
}

// oauthCode returns the OAuth error code of an x/oauth2 error.
func oauthCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// apiStatus is the HTTP status of a pkg/client error (200 for nil).
func apiStatus(err error) int {
	if err == nil {
		return 200
	}
	if st := api.StatusOf(err); st != 0 {
		return st
	}
	return -1
}

// deviceGrant runs a device flow approved through the admin API and returns
// the token.
func (e *env) deviceGrant(clientID, accountID, resource string, scopes ...string) *oauth2.Token {
	e.t.Helper()
	cfg := e.oauthConfig(clientID, scopes...)
	var opts []oauth2.AuthCodeOption
	if resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", resource))
	}
	da := e.deviceAuth(cfg, opts...)
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: accountID}); err != nil {
		e.t.Fatalf("approve: %v", err)
	}
	tok, err := cfg.DeviceAccessToken(e.ctx, da)
	if err != nil {
		e.t.Fatalf("device token: %v", err)
	}
	return tok
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// browser is a cookie-keeping HTTP client that does not follow redirects,
// standing in for a browser on the consent page (Chromium does it for real in
// TestConsentPageInChromium).
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get loads a page and returns its status, body and CSRF token.
func (b *browser) get(u string) (int, string, string) {
	b.t.Helper()
	resp, err := b.hc.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := csrfRE.FindStringSubmatch(string(raw))
	if m == nil {
		return resp.StatusCode, string(raw), ""
	}
	return resp.StatusCode, string(raw), m[1]
}

func (b *browser) post(u string, form url.Values) *http.Response {
	b.t.Helper()
	resp, err := b.hc.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

// deviceAuth starts a device authorization for cfg's client and scopes.
func (e *env) deviceAuth(cfg *oauth2.Config, opts ...oauth2.AuthCodeOption) *oauth2.DeviceAuthResponse {
	e.t.Helper()
	da, err := cfg.DeviceAuth(e.ctx, opts...)
	if err != nil {
		e.t.Fatalf("device authorization: %v", err)
	}
	return da
}

// registerDeviceClient registers a public client named name for the device
// flow (device_code and refresh_token grants) and returns its id.
func (e *env) registerDeviceClient(name string) string {
	e.t.Helper()
	return e.register(map[string]any{"client_name": name, "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}})
}

// approveForm is the consent page's form for authURL approving with key
// (csrf: the token of the page as served).
func approveForm(authURL, csrf, key string) url.Values {
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("csrf", csrf)
	form.Set("api_key", key)
	form.Set("decision", "approve")
	return form
}

// authorize approves an authorization request (as the consent page's form
// does) with key and returns the redirect's query.
func (e *env) authorize(authURL, key string) url.Values {
	e.t.Helper()
	b := newBrowser(e.t)
	status, body, csrf := b.get(authURL)
	if status != 200 || csrf == "" {
		e.t.Fatalf("consent page: %d %s", status, body)
	}
	resp := b.post(e.base+"/oauth/authorize", approveForm(authURL, csrf, key))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		raw, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("approve: %d %s", resp.StatusCode, raw)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc.Query()
}

// bearerT is a /v1 client with tok as its bearer whose every response is
// checked against /openapi.json.
func bearerT(t *testing.T, base, tok string) *client.Client {
	cl := client.New(base, tok)
	cl.HTTP = &http.Client{Transport: framework.NewValidatingTransport(t, httpapi.OpenAPI, base), Timeout: 30 * time.Second}
	return cl
}

func regexpMust(re string) *regexp.Regexp { return regexp.MustCompile(re) }
