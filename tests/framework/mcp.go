package framework

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ToolNames lists the names of the tools an MCP session offers, in the
// server's order, failing t if the listing fails.
func ToolNames(t testing.TB, ctx context.Context, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tl, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tl.Name)
	}
	return names
}

// MCPHeaders sets on req the headers an MCP streamable-HTTP client sends
// with each request: Accept naming JSON and an event stream, the bearer
// token when there is one and, on a session (when session is set), its id
// and the protocol version the session agreed. It returns req.
func MCPHeaders(req *http.Request, token, session, version string) *http.Request {
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", version)
	}
	return req
}

// InitializeMCP posts a bare MCP initialize request asking for protocol
// version to base+"/mcp" with bearer, as a streamable-HTTP client opens a
// session; the caller reads and closes the answer.
func InitializeMCP(base, bearer, version string) (*http.Response, error) {
	req, err := http.NewRequest("POST", base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+version+`","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(MCPHeaders(req, bearer, "", version))
}
