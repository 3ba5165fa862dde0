package audit

import (
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
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
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
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
	r, o, client, connect := oauthAppRig(t)
	adm := r.c.AnyAlive(nil).Admin()
	mint := func(req api.KeyCreateRequest) string {
		t.Helper()
		k, err := adm.CreateKey(r.ctx, r.accA.ID, req)
		if err != nil {
			t.Fatalf("create key %q: %v", req.Name, err)
		}
		return k.Key
	}
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
