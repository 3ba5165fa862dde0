package mcpserver_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
)

// inProcessSession initializes an MCP session on handler h with key, as a
// client does (initialize, then notifications/initialized), and returns a
// poster of JSON-RPC bodies to h and the session's id.
func inProcessSession(tb testing.TB, h http.Handler, key string) (post func(sess, body string) *httptest.ResponseRecorder, sess string) {
	tb.Helper()
	post = func(sess, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, mcpserver.RPCRequest("/mcp", key, sess, body))
		return w
	}
	w := post("", mcpserver.InitializeBody)
	sess = w.Header().Get("Mcp-Session-Id")
	if sess == "" {
		tb.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	post(sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return post, sess
}

// remaining is what is left of key's per-minute limit, read from a GET
// /v1/account on handler h (which itself costs one request).
func remaining(tb testing.TB, h http.Handler, key string) int {
	tb.Helper()
	req := httptest.NewRequest("GET", "/v1/account", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	n, err := strconv.Atoi(w.Header().Get("X-RateLimit-Remaining"))
	if w.Code != 200 || err != nil {
		tb.Fatalf("GET /v1/account: %d %q %s", w.Code, w.Header().Get("X-RateLimit-Remaining"), w.Body)
	}
	return n
}
