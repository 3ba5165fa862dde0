package mcpserver_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
)

// TestSessionSlotsFreed: a session counts against its account's
// --mcp-sessions-per-account from its initialize until it ends, however it
// ends: its DELETE, or the idle end of a session whose stream closed
// (--mcp-stream-idle), or its displacement by a new session past the cap.
func TestSessionSlotsFreed(t *testing.T) {
	const idle = time.Second
	c := testcluster.New(t, 1, testcluster.WithRateLimit(100000), func(_ int, cfg *server.Config) {
		cfg.MCPSessionsPerAccount, cfg.MCPStreamIdle = 2, idle
	})
	acc, key := c.NewAccount("slots@example.com")
	h := c.Nodes[0].Server.APIHandler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post, a := inProcessSession(t, h, key)
	_, b := inProcessSession(t, h, key)
	if n := mcpserver.SessionsHeld(acc.ID); n != 2 {
		t.Fatalf("after two initializes the account holds %d sessions; want 2", n)
	}
	w := httptest.NewRecorder()
	req := mcpserver.RPCRequest("/mcp", key, a, "")
	req.Method = "DELETE"
	h.ServeHTTP(w, req)
	if w.Code != 204 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if n := mcpserver.SessionsHeld(acc.ID); n != 1 {
		t.Errorf("after a DELETE the account holds %d sessions; want 1", n)
	}
	// b's stream opens, then closes: idle, b ends and its place is free.
	conn, st, _, _ := getStream(t, srv, key, b)
	if st != 200 {
		t.Fatalf("b's stream: %d", st)
	}
	// Meanwhile a third session, and a fourth, which ends the third (b's
	// stream is a request running).
	_, d := inProcessSession(t, h, key)
	_, e := inProcessSession(t, h, key)
	if n := mcpserver.SessionsHeld(acc.ID); n != 2 {
		t.Errorf("after a session past the cap the account holds %d; want 2", n)
	}
	if w := post(d, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); w.Code != 404 {
		t.Errorf("d, displaced: %d; want 404", w.Code)
	}
	conn.Close()
	deadline := time.Now().Add(idle + 10*time.Second)
	for mcpserver.SessionsHeld(acc.ID) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the account holds %d sessions %v after b's stream closed; want 1 (b ended idle)", mcpserver.SessionsHeld(acc.ID), idle+10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w := post(b, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); w.Code != 404 {
		t.Errorf("b after its idle end: %d; want 404", w.Code)
	}
	if w := post(e, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); w.Code != 200 {
		t.Errorf("e: %d; want 200", w.Code)
	}
}
