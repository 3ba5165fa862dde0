package oauthtest

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// TestCoordinatorProcesses runs the flows against three hostplane-coordinator
// processes (tests/framework) logging at debug level: the device flow approved
// on a follower's consent form, refresh and its reuse, a /mcp-bound token
// calling a tool through a follower (the audience travels with the forwarded
// tool call; a client cannot send it), and finally no secret in any log file,
// Raft log, snapshot or state of any coordinator.
func TestCoordinatorProcesses(t *testing.T) {
	const public = "https://api.example.test"
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t),
		// Nothing fails over here: Raft timeouts of 2 s (not 500 ms) keep the
		// leader under load (503 no_leader at load 21-23).
		RaftTimeout: 2 * time.Second, LogLevel: "debug",
		Extra: func(int, *framework.CoordinatorProcess) []string { return []string{"--public-url", public} }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.WaitLeader(20 * time.Second)
	f0, f1 := (leader+1)%3, (leader+2)%3
	acc, key, err := c.NewAccount(ctx, "proc@example.com", "account:read", "tickets:read")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, base: c.URL(f0), ctx: ctx}
	clientID := e.register(map[string]any{
		"client_name": "Process CLI", "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "authorization_code", "refresh_token"},
	})
	cfg := e.oauthConfig(clientID, "account:read")
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The person approves on the other follower's consent page.
	b := newBrowser(t)
	_, _, csrf := b.get(c.URL(f1) + "/oauth/device")
	resp := b.post(c.URL(f1)+"/oauth/device", map[string][]string{"csrf": {csrf}, "user_code": {da.UserCode}, "api_key": {key}, "decision": {"approve"}})
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approval on a follower's page: %d", resp.StatusCode)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if got, err := bearerT(t, c.URL(i), tok.AccessToken).Account(ctx); err != nil || got.ID != acc.ID {
			t.Fatalf("token on coordinator %d: %+v %v", i, got, err)
		}
	}
	tok2, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token(); oauthCode(err) != "invalid_grant" {
		t.Fatalf("reused refresh token: %v", err)
	}
	if _, err := bearerT(t, c.URL(f1), tok2.AccessToken).Account(ctx); apiStatus(err) != 401 {
		t.Fatalf("rotated token after reuse: %v, want 401", err)
	}

	// A /mcp token: a tool call through a follower runs its /v1 route on the leader.
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", public+"/mcp")), key)
	code := q.Get("code")
	mcpTok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "proc", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: c.URL(f1) + "/mcp", HTTPClient: oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: mcpTok.AccessToken})),
	}, nil)
	if err != nil {
		t.Fatalf("connect /mcp on a follower: %v", err)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_account"})
	cs.Close()
	if err != nil || r.IsError || !strings.Contains(r.Content[0].(*mcp.TextContent).Text, acc.ID) {
		t.Fatalf("get_account through a follower with an /mcp token: %+v %v", r, err)
	}
	// A client naming the audience itself is not believed.
	req, _ := http.NewRequest("GET", c.URL(f0)+"/v1/account", nil)
	req.Header.Set("Authorization", "Bearer "+mcpTok.AccessToken)
	req.Header.Set("X-Hostplane-Audience-Path", "/mcp")
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 401 {
		t.Fatalf("/mcp token on /v1 with a forged audience header: %d, want 401", hr.StatusCode)
	}

	norm := strings.ReplaceAll(da.UserCode, "-", "")
	secrets := map[string]string{
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken, "rotated access token": tok2.AccessToken,
		"rotated refresh token": tok2.RefreshToken, "device code": da.DeviceCode, "user code": norm, "user code as shown": da.UserCode,
		"authorization code": code, "code verifier": verifier, "approving API key": key, "mcp token": mcpTok.AccessToken,
	}
	for _, p := range c.Nodes {
		for _, root := range []string{p.DataDir, p.LogPath()} {
			_, _ = framework.ScanFiles(root, func(path string, raw []byte) {
				for what, s := range secrets {
					if bytes.Contains(raw, []byte(s)) {
						t.Errorf("coordinator %s: %s in plaintext in %s", p.ID, what, path)
					}
				}
			})
		}
		if logs, _ := os.ReadFile(p.LogPath()); !bytes.Contains(logs, []byte("oauth")) && p.ID == c.Nodes[leader].ID {
			t.Errorf("the leader's log %s says nothing of OAuth: is it the log?", p.LogPath())
		}
	}
}
