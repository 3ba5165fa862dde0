package mcpserver_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestTransportRefusalsAreTheErrorEnvelope: what the SDK's transport refuses
// (a method /mcp does not serve, an Accept without both types, no or an
// unknown session, a body that is not JSON-RPC) is answered in the error
// envelope /mcp's own refusals and /v1 use, with its status and, for a 405,
// its Allow; a session's answers are unchanged. Before, these were the SDK's
// text/plain lines ("Method Not Allowed", "session not found").
func TestTransportRefusalsAreTheErrorEnvelope(t *testing.T) {
	r := newMCPRig(t, "mcp-refusals@example.com", api.AllScopes)
	h, key, post, sess := r.h, r.key, r.post, r.sess
	for _, tc := range []struct {
		what, method, session, accept, body string
		status                              int
	}{
		{"PUT", "PUT", "", "application/json, text/event-stream", "", 405},
		{"HEAD", "HEAD", "", "application/json, text/event-stream", "", 405},
		{"GET without text/event-stream", "GET", "", "application/json", "", 400},
		{"GET without a session", "GET", "", "text/event-stream", "", 400},
		{"DELETE of an unknown session", "DELETE", "none", "", "", 404},
		{"POST with Accept: text/html", "POST", "", "text/html", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 400},
		{"POST in an unknown session", "POST", "none", "application/json, text/event-stream", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 404},
		{"POST of a body that is not JSON", "POST", sess, "application/json, text/event-stream", `not json`, 400},
	} {
		req := httptest.NewRequest(tc.method, "/mcp", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		if tc.session != "" {
			req.Header.Set("Mcp-Session-Id", tc.session)
			req.Header.Set("MCP-Protocol-Version", "2025-06-18")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var e api.Error
		err := json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != tc.status || err != nil || e.StatusCode != tc.status || e.Err != http.StatusText(tc.status) || e.Message == "" || e.Code == "" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %.300q; want %d in the error envelope", tc.what, w.Code, w.Header().Get("Content-Type"), w.Body, tc.status)
		}
		if tc.status == 405 && (w.Header().Get("Allow") != "GET, POST, DELETE" || e.Message != tc.method+" is not allowed on /mcp; allowed: GET, POST, DELETE") {
			t.Errorf("%s: Allow %q, message %q", tc.what, w.Header().Get("Allow"), e.Message)
		}
	}
	// The session still answers, as an event stream.
	if w := post(sess, `{"jsonrpc":"2.0","id":9,"method":"ping"}`); w.Code != 200 || !strings.Contains(w.Body.String(), `"id":9`) {
		t.Errorf("ping in the session after the refusals: %d %.300s", w.Code, w.Body)
	}
}
