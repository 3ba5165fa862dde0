package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/api"
)

// withConsole installs a Console dependency on s that signs with key for an
// agent at base, or fails with err when set.
func withConsole(t *testing.T, s *srvAPI, key ed25519.PrivateKey, base string, err *error) {
	t.Helper()
	d, derr := s.a.serverDeps()
	if derr != nil {
		t.Fatal(derr)
	}
	d2 := *d
	d2.Console = func(c consoletoken.Claims) (string, string, error) {
		if *err != nil {
			return "", "", *err
		}
		tok, err := consoletoken.Sign(key, c)
		return base, tok, err
	}
	s.a.SetServerDeps(&d2)
}

func TestServerConsole(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	_, other := s.account(allServerScopes...)
	_, readOnly := s.account(api.ScopeServersRead)
	id := s.server(acc)
	path := "/v1/servers/" + id + "/console"
	signer, err := consoletoken.DeriveKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var fail error
	withConsole(t, s, signer, "https://hv-secret-node.example:8423", &fail)
	verifier := consoletoken.NewVerifier("hv-secret-node", nil)
	if err := verifier.AddKey(signer.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := s.call(key, "POST", path, "")
	if r.status != 201 || r.m["protocol"] != "vnc" {
		t.Fatalf("console: %d %s", r.status, r.body)
	}
	page, _ := url.Parse(r.m["url"].(string))
	ws, _ := url.Parse(r.m["websocket_url"].(string))
	if page == nil || ws == nil || page.Scheme != "https" || page.Path != "/vnc.html" || ws.Scheme != "wss" || ws.Path != "/websockify" || ws.Host != page.Host {
		t.Fatalf("console URLs: %s", r.body)
	}
	tok := ws.Query().Get("token")
	// noVNC connects to path on the page's host: the same token.
	if inPage := page.Query().Get("path"); inPage != "websockify?token="+url.QueryEscape(tok) || page.Query().Get("autoconnect") != "true" {
		t.Fatalf("noVNC path %q, token %q", inPage, tok)
	}
	exp, err := time.Parse(time.RFC3339, r.m["expires_at"].(string))
	if err != nil || exp.Before(start.Add(ConsoleTTL-2*time.Second)) || exp.After(time.Now().Add(ConsoleTTL+time.Second)) {
		t.Fatalf("expires_at %v (%v), want about 60 s ahead", r.m["expires_at"], err)
	}
	c, err := verifier.Verify(tok)
	if err != nil || c.Server != id || !strings.HasPrefix(c.VM, "hp-vm-") || c.Node != "hv-secret-node" || c.Expires != exp.UnixMilli() {
		t.Fatalf("token: %+v, %v", c, err)
	}
	// A second call is a new token; the first stays used.
	r2 := s.call(key, "POST", path, "{}")
	ws2, _ := url.Parse(fmt.Sprint(r2.m["websocket_url"]))
	if r2.status != 201 || ws2 == nil || ws2.Query().Get("token") == tok {
		t.Fatalf("second console: %d %s", r2.status, r2.body)
	}
	if _, err := verifier.Verify(tok); err == nil {
		t.Fatal("a console token verified twice")
	}

	for _, tc := range []struct {
		name, key, body string
		err             error
		status          int
		code            string
	}{
		{"another account", other, "", nil, 404, "not_found"},
		{"read-only key", readOnly, "", nil, 403, ""},
		{"a body", key, `{"x":1}`, nil, 400, ""},
		{"host offline", key, "", fmt.Errorf("node hv-secret-node: %w", ErrNodeOffline), 503, "node_offline"},
		{"host without console", key, "", ErrNoConsole, 503, "console_unavailable"},
	} {
		fail = tc.err
		r := s.call(tc.key, "POST", path, tc.body)
		if r.status != tc.status || (tc.code != "" && r.code() != tc.code) || bytes.Contains(r.body, []byte("hv-secret")) || bytes.Contains(r.body, []byte("hpc1.")) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	fail = nil

	// A stopped server has no display.
	act := actionID(t, s.call(key, "POST", "/v1/servers/"+id+"/power/stop", ""))
	s.finish(act, true)
	if r := s.call(key, "POST", path, ""); r.status != 409 || r.code() != "conflict" {
		t.Fatalf("stopped server: %d %s", r.status, r.body)
	}
}
