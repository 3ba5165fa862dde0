package mcpserver

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// settledGoroutines is runtime.NumGoroutine once it stops changing.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// openSessions initializes n sessions on h, as a client does (initialize,
// then notifications/initialized), and returns their ids.
func openSessions(t *testing.T, h http.Handler, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, RPCRequest("/mcp", "snc_x", "", InitializeBody))
		id := w.Header().Get("Mcp-Session-Id")
		if w.Code != 200 || id == "" {
			t.Fatalf("initialize: %d %s", w.Code, w.Body)
		}
		w = httptest.NewRecorder()
		h.ServeHTTP(w, RPCRequest("/mcp", "snc_x", id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`))
		if w.Code/100 != 2 {
			t.Fatalf("notifications/initialized: %d %s", w.Code, w.Body)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestSessionGoroutines: an open /mcp session costs the goroutines the
// SDK's own session needs (measured on a bare SDK handler) and one more,
// which waits for its end; when the sessions end (closed as the SDK's idle
// timeout closes them, not by a DELETE through the handler), the fast
// path's table and the per-account session count both drop them, and
// their goroutines are gone. Before, each session had three of its own
// (the fast path's clean-up and the session count's each waited apart).
func TestSessionGoroutines(t *testing.T) {
	const n = 40
	// The SDK's own: a bare server and handler.
	bare := mcp.NewServer(&mcp.Implementation{Name: "bare", Version: "1"}, nil)
	bareH := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return bare },
		&mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
	before := settledGoroutines()
	openSessions(t, bareH, n)
	sdk := settledGoroutines() - before
	for s := range bare.Sessions() {
		_ = s.Close()
	}
	perSession := (sdk + n - 1) / n // rounded up
	t.Logf("the SDK's sessions: %d goroutines for %d (%d each)", sdk, n, perSession)

	h, st := newHTTPHandler(standIn(t), allowAll{}, &fakeAPI{}, HTTPOptions{SessionsPerAccount: 10 * n})
	before = settledGoroutines()
	ids := openSessions(t, h, n)
	grown := settledGoroutines() - before
	if limit := n*(perSession+1) + 5; grown > limit {
		t.Errorf("%d sessions grew the goroutines by %d; want at most %d (the SDK's %d each, one to wait for the end, and 5)", n, grown, limit, perSession)
	}
	if held, fast, watched := st.sessions.count("acc_1"), len(st.fast.sessions), st.ends.watched(); held != n || fast != n || watched != n {
		t.Fatalf("after %d initializes: %d sessions counted, %d in the fast path's table, %d watched; want %d each", n, held, fast, watched, n)
	}

	// End them as the SDK's idle timeout does: ServerSession.Close.
	var sessions []*mcp.ServerSession
	st.fast.mu.Lock()
	for _, id := range ids {
		sessions = append(sessions, st.fast.sessions[id].ss)
	}
	st.fast.mu.Unlock()
	for _, ss := range sessions {
		_ = ss.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st.fast.mu.Lock()
		fast := len(st.fast.sessions)
		st.fast.mu.Unlock()
		held, watched := st.sessions.count("acc_1"), st.ends.watched()
		if held == 0 && fast == 0 && watched == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the %d sessions ended: %d still counted, %d in the fast path's table, %d watched", n, held, fast, watched)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := settledGoroutines() - before; left > 5 {
		t.Errorf("the sessions ended, %d goroutines more than before they opened remain", left)
	}
	for _, id := range ids[:3] {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, RPCRequest("/mcp", "snc_x", id, `{"jsonrpc":"2.0","id":3,"method":"ping"}`))
		if w.Code != http.StatusNotFound {
			t.Errorf("a ping on an ended session: %d %s; want 404", w.Code, w.Body)
		}
	}
}
