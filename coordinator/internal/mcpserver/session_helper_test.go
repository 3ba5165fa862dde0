package mcpserver_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
)

// mcpRig is where the in-process /mcp tests start: a one-node cluster, the
// key of a new account, the node's API handler h, and an initialized /mcp
// session sess on h with the key's poster of JSON-RPC bodies.
type mcpRig struct {
	c    *testcluster.Cluster
	key  string
	h    http.Handler
	post func(sess, body string) *httptest.ResponseRecorder
	sess string
}

// newMCPRig starts a one-node cluster with opts, opens an account for email
// with scopes and an /mcp session with its key.
func newMCPRig(tb testing.TB, email string, scopes []string, opts ...testcluster.Option) mcpRig {
	tb.Helper()
	c := testcluster.New(tb, 1, opts...)
	_, key := c.NewAccount(email, scopes...)
	h := c.Nodes[0].Server.APIHandler()
	post, sess := inProcessSession(tb, h, key)
	return mcpRig{c: c, key: key, h: h, post: post, sess: sess}
}

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
