package audit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe60MCPSessionCapAcrossKeys: README's --mcp-sessions-per-account
// (2 here) counts an account's sessions "at this coordinator, across its
// keys", and its refusal is exactly "a JSON-RPC error (HTTP 200): code
// -32000, a message naming the cap, data
// {"code":"too_many_sessions","status":429,"retry_after":5}".
// TestMCPSessionsPerAccountCap checks the code, the message and data.code
// with one key; here, through a follower: A's two sessions are made with two
// different keys and each holds its GET stream (a request running), and an
// initialize with a third key of A, and with the first, is that refusal in
// full (jsonrpc 2.0, the request's id, no result, data exactly as README
// writes it) and makes no session; the two sessions keep working; A's
// initialize at another coordinator, and B's at this one, are served.
func TestProbe60MCPSessionCapAcrossKeys(t *testing.T) {
	r := lightRig(t, "p60sessions", "--rate-limit", "100000", "--mcp-sessions-per-account", "2")
	ld, f := r.leaderAndFollower()
	base := r.c.URL(f)
	ep := base + "/mcp"
	key2 := r.keyOfA(t, api.KeyCreateRequest{Name: "p60 second"})
	key3 := r.keyOfA(t, api.KeyCreateRequest{Name: "p60 third"})
	var held []*mcpSession
	for _, k := range []string{r.keyA, key2} {
		m := &mcpSession{t: t, endpoint: ep, token: k}
		m.initialize()
		if st := holdMCPStream(t, base, k, m.session); st.status != 200 {
			t.Fatalf("the stream of A's session %s: %d %q", m.session, st.status, st.body)
		}
		held = append(held, m)
	}
	open := func(endpoint, key string) (*mcpSession, map[string]any, string) {
		t.Helper()
		m := &mcpSession{t: t, endpoint: endpoint, token: key}
		resp, out := m.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "p60", "version": "1"}}, false)
		if resp.StatusCode != 200 {
			t.Fatalf("initialize at %s: HTTP %d; want 200 (a refusal is a JSON-RPC error)", endpoint, resp.StatusCode)
		}
		m.session = resp.Header.Get("Mcp-Session-Id")
		return m, out, m.session
	}
	for what, k := range map[string]string{"a third key of A": key3, "A's first key": r.keyA} {
		m, out, sid := open(ep, k)
		rpcErr, _ := out["error"].(map[string]any)
		msg, _ := rpcErr["message"].(string)
		var data map[string]any
		raw, _ := json.Marshal(rpcErr["data"])
		_ = json.Unmarshal(raw, &data)
		want := map[string]any{"code": "too_many_sessions", "status": float64(429), "retry_after": float64(5)}
		switch {
		case out["jsonrpc"] != "2.0" || out["id"] != float64(m.id) || out["result"] != nil || rpcErr == nil:
			t.Errorf("initialize with %s while A's 2 sessions have a request running: %v; want a JSON-RPC 2.0 error answering id %d", what, out, m.id)
		case rpcErr["code"] != float64(-32000) || !strings.Contains(msg, "2 MCP sessions"):
			t.Errorf("initialize with %s: error %v; want code -32000 and a message naming the cap of 2", what, rpcErr)
		case !reflect.DeepEqual(data, want):
			t.Errorf("initialize with %s: data %s; want README's %v", what, raw, want)
		}
		if sid != "" {
			if st, _, body := rawMCP(t, "POST", ep, k, sid, toolCallGetAccount, nil, 10*time.Second); st != 404 {
				t.Errorf("the session id %s of a refused initialize with %s: %d %.200s; want 404 (never made)", sid, what, st, body)
			}
		}
	}
	for _, m := range held {
		if st, _, body := rawMCP(t, "POST", ep, m.token, m.session, toolCallGetAccount, nil, 10*time.Second); st != 200 || strings.Contains(body, `"isError":true`) {
			t.Errorf("A's session %s holding its stream, after the refusals: %d %.200s; want served", m.session, st, body)
		}
	}
	// The cap is per coordinator, and per account.
	for what, c := range map[string]struct{ endpoint, key string }{
		"A's third key at another coordinator": {r.c.URL(ld) + "/mcp", key3},
		"B's key at this coordinator":          {ep, r.keyB},
	} {
		if _, out, sid := open(c.endpoint, c.key); out["result"] == nil || sid == "" {
			t.Errorf("initialize with %s: %v (session %q); want a session", what, out, sid)
		}
	}
}
