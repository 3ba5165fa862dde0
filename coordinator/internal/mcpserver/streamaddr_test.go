package mcpserver_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// getStreamFrom opens session's GET stream on srv as key over a connection
// of its own and reads only the answer's head (and a refusal's body); with
// addr, as a client at addr behind the trusted proxy the test's connections
// come from (X-Forwarded-For).
func getStreamFrom(t *testing.T, srv *httptest.Server, key, sess, addr string) (net.Conn, int, http.Header, api.Error) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	xff := ""
	if addr != "" {
		xff = "X-Forwarded-For: " + addr + "\r\n"
	}
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n%s\r\n",
		srv.Listener.Addr(), key, sess, xff)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	var e api.Error
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &e)
	}
	return conn, resp.StatusCode, resp.Header, e
}

// TestStreamLimitsPerAddress: one client address (behind a trusted proxy,
// the X-Forwarded-For client) holds at most --mcp-streams-per-ip GET
// streams whatever the accounts: the next, of an account far below its own
// cap, is 429 too_many_streams naming the address cap, with Retry-After (the
// stats streams' shape); another address is still served; a stream closed
// frees its place. Before, /mcp had no per-address cap (only per account
// and per coordinator).
func TestStreamLimitsPerAddress(t *testing.T) {
	trusted, err := httpapi.ParseTrustedProxies([]string{"127.0.0.1/32", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 1, testcluster.WithRateLimit(100000), func(_ int, cfg *server.Config) {
		cfg.MCPStreamsPerAccount, cfg.MCPStreamsPerIP, cfg.MCPStreams = 16, 2, 100
		cfg.TrustedProxies, cfg.TrustedProxyList = "127.0.0.1/32,::1/128", trusted
	})
	_, keyA := c.NewAccount("streams-addr-a@example.com")
	_, keyB := c.NewAccount("streams-addr-b@example.com")
	srv := httptest.NewServer(c.Nodes[0].Server.APIHandler())
	t.Cleanup(srv.Close)
	h := c.Nodes[0].Server.APIHandler()
	_, a1 := inProcessSession(t, h, keyA)
	_, a2 := inProcessSession(t, h, keyA)
	_, b1 := inProcessSession(t, h, keyB)
	_, b2 := inProcessSession(t, h, keyB)
	const here, there = "203.0.113.7", "198.51.100.9"

	conn1, st, _, _ := getStreamFrom(t, srv, keyA, a1, here)
	if st != 200 {
		t.Fatalf("A's stream from %s: %d", here, st)
	}
	if _, st, _, _ := getStreamFrom(t, srv, keyB, b1, here); st != 200 {
		t.Fatalf("B's stream from %s: %d", here, st)
	}
	_, st, hdr, e := getStreamFrom(t, srv, keyA, a2, here)
	if st != 429 || e.Code != "too_many_streams" || hdr.Get("Retry-After") == "" || !strings.Contains(e.Message, "2 MCP session streams") || !strings.Contains(e.Message, "client address") {
		t.Errorf("A's second stream from %s (2 open there, cap 2 per address, 16 per account): %d %+v Retry-After %q; want 429 too_many_streams naming the address cap, with Retry-After",
			here, st, e, hdr.Get("Retry-After"))
	}
	if _, st, _, e := getStreamFrom(t, srv, keyB, b2, there); st != 200 {
		t.Errorf("B's stream from another address %s: %d %+v; want 200", there, st, e)
	}
	// A's first stream closes: its place at the address frees.
	conn1.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, st, _, e := getStreamFrom(t, srv, keyA, a2, here)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's stream from %s after one there closed: %d %+v; want 200", here, st, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
