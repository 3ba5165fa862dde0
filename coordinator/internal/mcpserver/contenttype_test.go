package mcpserver_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPRefusesBodiesNotJSON: a POST to /mcp whose Content-Type is not
// application/json (the MCP streamable HTTP transport's type for a POSTed
// message) is a 415 unsupported_media_type in the JSON error envelope of
// /mcp's other refusals, as /v1 answers such a body, on every path: a tool
// call on a session (which the fast path and the tool's /v1 route would
// otherwise have taken), a ping, an initialize without a session. Each
// costs the key one request, as a malformed request does. A JSON type with
// a charset still runs.
func TestMCPRefusesBodiesNotJSON(t *testing.T) {
	r := newMCPRig(t, "mcp-ctype@example.com", readScopes, testcluster.WithRateLimit(100))
	h, key, post, sess := r.h, r.key, r.post, r.sess
	send := func(sess, ctype, body string) *httptest.ResponseRecorder {
		req := mcpserver.RPCRequest("/mcp", key, sess, body)
		if ctype == "" {
			req.Header.Del("Content-Type")
		} else {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	call := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_account","arguments":{}}}`
	for _, tc := range []struct{ what, sess, ctype, body string }{
		{"tools/call, text/plain", sess, "text/plain", call},
		{"tools/call, text/plain; charset=utf-8", sess, "text/plain; charset=utf-8", call},
		{"ping, form", sess, "application/x-www-form-urlencoded", `{"jsonrpc":"2.0","id":8,"method":"ping"}`},
		{"tools/call, no Content-Type", sess, "", call},
		{"tools/call, application/json-seq", sess, "application/json-seq", call},
		{"initialize, text/plain", "", "text/plain", mcpserver.InitializeBody},
	} {
		before := remaining(t, h, key)
		w := send(tc.sess, tc.ctype, tc.body)
		var e api.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusUnsupportedMediaType || err != nil || e.Code != "unsupported_media_type" ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !strings.Contains(e.Message, "application/json") {
			t.Errorf("%s: %d %q %.300s, want 415 unsupported_media_type (JSON, naming application/json)", tc.what, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if used := before - remaining(t, h, key) - 1; used != 1 {
			t.Errorf("%s: cost %d requests of the key's limit, want 1", tc.what, used)
		}
	}
	if w := send(sess, "application/json; charset=utf-8", call); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "mcp-ctype@example.com") {
		t.Fatalf("tools/call, application/json; charset=utf-8: %d %.300s", w.Code, w.Body)
	}
	if w := post(sess, call); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "mcp-ctype@example.com") {
		t.Fatalf("tools/call after the refusals: %d %.300s", w.Code, w.Body)
	}
}
