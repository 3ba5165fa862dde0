package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestMCPSessionsPerAccountCap: an account holds at most
// --mcp-sessions-per-account MCP sessions at a coordinator (3 here), as the
// README says. A client that initializes one more gets it, and the session
// of the account used least recently, with no request running, is ended (its
// id a 404 session_not_found, from which an MCP client initializes again);
// the sessions in use keep working. A session ended by its DELETE frees its
// place (nothing else is ended). When every session of the account has a
// request running (here each holds its GET stream), a new initialize is
// refused as a JSON-RPC error naming the cap, and another account is not
// affected; once one of them is idle again, a new initialize ends it.
func TestMCPSessionsPerAccountCap(t *testing.T) {
	r := lightRig(t, "gaps59sessions", "--rate-limit", "100000", "--mcp-sessions-per-account", "3")
	f := r.follower()
	base := r.c.URL(f)
	ep := base + "/mcp"
	open := func(key string) *mcpSession {
		m := &mcpSession{t: t, endpoint: ep, token: key}
		m.initialize()
		return m
	}
	callCode := func(m *mcpSession) int {
		t.Helper()
		st, _, body := rawMCP(t, "POST", ep, m.token, m.session, toolCallGetAccount, nil, 10*time.Second)
		if st == 200 && strings.Contains(body, `"isError":true`) {
			t.Fatalf("get_account on session %s: %.300s", m.session, body)
		}
		if st == 404 && !strings.Contains(body, "session_not_found") {
			t.Errorf("a call on an ended session: 404 %.300s; want session_not_found", body)
		}
		return st
	}
	want := func(what string, m *mcpSession, code int) {
		t.Helper()
		if got := callCode(m); got != code {
			t.Errorf("%s: a tool call on its session answered %d; want %d", what, got, code)
		}
	}

	s1, s2, s3 := open(r.keyA), open(r.keyA), open(r.keyA)
	want("s2", s2, 200)
	want("s3", s3, 200)
	want("s1", s1, 200) // s1 is now the one used last; s2 the one used least recently
	s4 := open(r.keyA)
	want("s2, the account's least recently used session when a 4th was opened (cap 3)", s2, 404)
	want("s1, in use", s1, 200)
	want("s3, in use", s3, 200)
	want("s4, the new session", s4, 200)

	// A session's DELETE frees its place: the next one ends nobody.
	if st, _, body := rawMCP(t, "DELETE", ep, r.keyA, s1.session, "", nil, 10*time.Second); st/100 != 2 {
		t.Fatalf("DELETE of s1: %d %.200s", st, body)
	}
	s5 := open(r.keyA)
	want("s3 after s1's DELETE and a new session", s3, 200)
	want("s4 after s1's DELETE and a new session", s4, 200)
	want("s5", s5, 200)

	// Every session of A holds its stream (a request running): a new one is
	// refused, in JSON-RPC's shape, and ends none of them.
	var held []*heldStream
	for _, m := range []*mcpSession{s3, s4, s5} {
		st := holdMCPStream(t, base, m.token, m.session)
		if st.status != 200 {
			t.Fatalf("the stream of session %s: %d %q", m.session, st.status, st.body)
		}
		held = append(held, st)
	}
	refused := &mcpSession{t: t, endpoint: ep, token: r.keyA}
	resp, out := refused.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "audit", "version": "1"}}, false)
	rpcErr, _ := out["error"].(map[string]any)
	msg, _ := rpcErr["message"].(string)
	data, _ := json.Marshal(rpcErr["data"])
	if resp.StatusCode != 200 || out["result"] != nil || rpcErr == nil || rpcErr["code"] != float64(-32000) ||
		!strings.Contains(msg, "3 MCP sessions") || !strings.Contains(string(data), `"too_many_sessions"`) {
		t.Errorf("initialize while all 3 of the account's sessions have a request running: %d %v; want a JSON-RPC error -32000 naming the cap of 3, data.code too_many_sessions",
			resp.StatusCode, out)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		if st, _, body := rawMCP(t, "POST", ep, r.keyA, id, toolCallGetAccount, nil, 10*time.Second); st != 404 {
			t.Errorf("the refused initialize's session %s: %d %.200s; want 404 (never made)", id, st, body)
		}
	}
	for _, m := range []*mcpSession{s3, s4, s5} {
		want("a session holding its stream, after a refused initialize", m, 200)
	}
	other := open(r.keyB) // another account is not affected
	want("B's session", other, 200)

	// s3's stream closes: once its GET has ended, a new session ends s3.
	held[0].conn.Close()
	var s6 *mcpSession
	framework.WaitFor(t, "an initialize once s3's stream closed", 20*time.Second, 200*time.Millisecond, func() bool {
		m := &mcpSession{t: t, endpoint: ep, token: r.keyA}
		resp, out := m.post("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "audit", "version": "1"}}, false)
		if resp.StatusCode != 200 || out["result"] == nil {
			return false
		}
		m.session = resp.Header.Get("Mcp-Session-Id")
		m.post("notifications/initialized", map[string]any{}, true)
		s6 = m
		return true
	})
	want("s3, idle when a session over the cap was opened", s3, 404)
	want("s4, holding its stream", s4, 200)
	want("s5, holding its stream", s5, 200)
	want("s6", s6, 200)
}
