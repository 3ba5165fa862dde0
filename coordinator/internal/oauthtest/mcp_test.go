package oauthtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
)

// TestTokenOnMCP: an access token whose audience is /mcp works on /mcp (a
// tool call runs its /v1 route as the token's grant) and nowhere else; a
// token for /v1 is refused on /mcp with the resource metadata named.
func TestTokenOnMCP(t *testing.T) {
	e := start(t)
	acc, key := e.account("mcp@example.com", "account:read", "tickets:read")
	clientID := e.register(map[string]any{"client_name": "Claude", "redirect_uris": []string{"http://127.0.0.1:9/callback"}})
	cfg := e.oauthConfig(clientID, "account:read")
	token := func(resource string) string {
		v := oauth2.GenerateVerifier()
		q := e.authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", resource)), key)
		tok, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	mcpTok := token(e.base + "/mcp")
	tr := &mcp.StreamableClientTransport{
		Endpoint:   e.base + "/mcp",
		HTTPClient: oauth2.NewClient(e.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: mcpTok})),
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "oauth-test", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect /mcp with the access token: %v", err)
	}
	defer cs.Close()
	names := framework.ToolNames(t, ctx, cs)
	if !slices.Contains(names, "get_account") || slices.Contains(names, "list_tickets") {
		t.Fatalf("tools for a token granted account:read only: %v", names)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_account"})
	if err != nil || r.IsError || len(r.Content) != 1 || !strings.Contains(r.Content[0].(*mcp.TextContent).Text, acc.ID) {
		t.Fatalf("get_account with an /mcp token: %+v %v", r, err)
	}
	if _, err := bearerT(t, e.base, mcpTok).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("/mcp token on /v1: %v, want 401", err)
	}

	v1Tok := token(e.base + "/v1")
	resp, err := framework.InitializeMCP(e.base, v1Tok, "2025-06-18")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("/v1 token on /mcp: %d %q, want 401 naming the resource metadata", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
