package mcpserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPAmbiguousMessage: a JSON-RPC message that names its tool (or method,
// or anything) twice, or in another case, is a 400 invalid_request before
// anything reads it. The readers of a message disagreed: toolCall's
// encoding/json (the scope check and the count before dispatch) reads
// {"name":"list_tickets","Name":"create_server"} as create_server, the SDK
// and the fast path (case-sensitive) as list_tickets, which ran (200) before
// this check; of two "name"s each takes the last only by its library's
// choice. A plain call still runs.
func TestMCPAmbiguousMessage(t *testing.T) {
	r := newMCPRig(t, "mcp-ambiguous@example.com", []string{api.ScopeTicketsRead})
	post, sess := r.post, r.sess
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets","Name":"create_server","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_tickets","name":"create_server","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list","METHOD":"tools/call","params":{"name":"list_tickets"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_tickets","arguments":{"page":1,"page":2}}}`,
	} {
		w := post(sess, body)
		var e api.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusBadRequest || err != nil || e.Code != "invalid_request" {
			t.Errorf("%s: %d %.300s, want 400 invalid_request", body, w.Code, w.Body)
		}
	}
	w := post(sess, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_tickets","arguments":{}}}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"id":5`) || strings.Contains(w.Body.String(), `"isError":true`) {
		t.Fatalf("a plain call: %d %.300s", w.Code, w.Body)
	}
}
