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

// TestMCPRefusedBodiesAreCounted: a POST to /mcp refused for its body (over
// 1 MiB, a member name twice or in another case) costs the key one request of
// its limit, as every refused /v1 request with a valid key does and as /mcp's
// other malformed requests (data after the message, a type other than JSON)
// do: a key could otherwise send such requests past its limit, each read and
// checked.
func TestMCPRefusedBodiesAreCounted(t *testing.T) {
	r := newMCPRig(t, "mcp-refusedcount@example.com", readScopes, testcluster.WithRateLimit(100))
	h, key, sess := r.h, r.key, r.sess
	big := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}}`
	for _, tc := range []struct {
		what, sess, body string
		status           int
		code             string
	}{
		{"a body over 1 MiB", sess, big, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"an id given twice", sess, `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, http.StatusBadRequest, "invalid_request"},
		{"a tool's name in another case", sess, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_account","Name":"list_servers","arguments":{}}}`, http.StatusBadRequest, "invalid_request"},
		{"an initialize with a member twice", "", `{"jsonrpc":"2.0","jsonrpc":"2.0","id":4,"method":"initialize","params":{}}`, http.StatusBadRequest, "invalid_request"},
	} {
		before := remaining(t, h, key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, mcpserver.RPCRequest("/mcp", key, tc.sess, tc.body))
		var e api.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); w.Code != tc.status || err != nil || e.Code != tc.code {
			t.Errorf("%s: %d %.300s, want %d %s", tc.what, w.Code, w.Body, tc.status, tc.code)
		}
		if w.Header().Get("X-RateLimit-Remaining") == "" {
			t.Errorf("%s: no X-RateLimit-Remaining on the refusal", tc.what)
		}
		if used := before - remaining(t, h, key) - 1; used != 1 {
			t.Errorf("%s: cost %d requests of the key's limit, want 1", tc.what, used)
		}
	}
}
