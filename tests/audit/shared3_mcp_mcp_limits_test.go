package audit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPRateLimitAsREST: a key's per-minute limit (SPEC: per key) holds on
// /mcp as on /v1, through a follower: a key limited to 10 a minute gets 10
// tool calls (a tool call is one request of the key's budget, as README
// says), then the 11th call is a 429 (as a tool error or an HTTP 429), and a
// REST call with the same key is a 429 too; the other /mcp requests a
// hostile client can send without end (initialize, ping, tools/list) are
// bounded by the key's limit as well, so one key cannot open sessions
// without end.
func TestMCPRateLimitAsREST(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	f := r.follower()
	// tenAMinute is a new key of A's limited to 10 requests a minute;
	// session an MCP session initialized with a key through the follower.
	tenAMinute := func(name string) string {
		return r.keyOfA(t, api.KeyCreateRequest{Name: name, Scopes: []string{"account:read"}, RateLimitPerMin: 10})
	}
	session := func(key string) *mcpSession {
		m := &mcpSession{t: t, endpoint: r.c.URL(f) + "/mcp", token: key}
		m.initialize()
		return m
	}
	key := tenAMinute("ten")
	m := session(key)
	ok, limited := 0, 0
	for range 14 {
		tr := m.call("get_account", map[string]any{})
		switch {
		case !tr.isError && tr.rpcErr == nil:
			ok++
		case tr.status == 429:
			limited++
		default:
			t.Errorf("get_account: %.300s", tr.raw)
		}
	}
	if ok < 8 || ok > 10 || limited == 0 {
		t.Errorf("14 tool calls with a key of 10 a minute: %d answered, %d rate limited; want 8–10 answered (the session's own requests may count), the rest 429", ok, limited)
	}
	if rep := r.call(f, key, "GET", "/v1/account", nil, nil); rep.Status != 429 {
		t.Errorf("REST after the key's tool calls: %s; want 429", rep)
	}

	// Another key: cheap MCP requests, without tool calls.
	key2 := tenAMinute("ten more")
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`
	sessions, refused := 0, 0
	for range 40 {
		st, hdr, body := rawMCP(t, "POST", r.c.URL(f)+"/mcp", key2, "", init, nil, 10*time.Second)
		switch {
		case st == 200 && hdr.Get("Mcp-Session-Id") != "":
			sessions++
		case st == 429:
			refused++
		default:
			t.Errorf("initialize: %d %.200s", st, body)
		}
	}
	m2 := session(r.keyA)
	pings := 0
	for range 40 {
		st, _, _ := rawMCP(t, "POST", m2.endpoint, key2, m2.session, `{"jsonrpc":"2.0","id":9,"method":"ping"}`, nil, 10*time.Second)
		if st == 200 {
			pings++
		}
	}
	if sessions > 10 || pings > 10 {
		t.Errorf("a key of 10 a minute opened %d MCP sessions of 40 (%d refused) and had %d of 40 pings answered in the same minute; want at most 10 requests", sessions, refused, pings)
	}

	// Notifications (answered 202, nothing sent back) are requests the
	// server reads and handles too: a flood of them counts against the
	// key's limit like any other request.
	key3 := tenAMinute("ten notifications")
	m3 := session(key3)
	accepted, limitedN := 0, 0
	for i := range 30 {
		note := fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"flood"}}`, 1000+i)
		switch st, _, body := rawMCP(t, "POST", m3.endpoint, key3, m3.session, note, nil, 10*time.Second); st {
		case 202:
			accepted++
		case 429:
			limitedN++
		default:
			t.Errorf("notifications/cancelled: %d %.200s", st, body)
		}
	}
	rep := r.call(f, key3, "GET", "/v1/account", nil, nil)
	if accepted > 10 || limitedN == 0 || rep.Status != 429 {
		t.Errorf("a key of 10 a minute sent 30 notifications: %d accepted, %d refused, then REST %d; want at most 10 accepted, the rest and REST 429", accepted, limitedN, rep.Status)
	}

	// Tool calls that dispatch nothing, so no /v1 route counts them: bad
	// arguments on a good session, and a good call on a session this
	// coordinator does not have. Each counts all the same.
	for _, flood := range []struct {
		what string
		body func(sess string) (string, string)
	}{
		{"tools/call with an unknown argument", func(sess string) (string, string) {
			return sess, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get_account","arguments":{"colour":"red"}}}`
		}},
		{"tools/call on an unknown session", func(sess string) (string, string) { return unknown(sess), toolCallGetAccount }},
	} {
		key := tenAMinute("ten calls")
		mk := session(key)
		refusedN := 0
		for range 30 {
			sess, body := flood.body(mk.session)
			st, _, out := rawMCP(t, "POST", mk.endpoint, key, sess, body, nil, 10*time.Second)
			if st == 429 || strings.Contains(out, "rate_limited") {
				refusedN++
			}
		}
		if rep := r.call(f, key, "GET", "/v1/account", nil, nil); refusedN == 0 || rep.Status != 429 {
			t.Errorf("a key of 10 a minute sent 30 of %s: %d rate limited, then REST %d; want the key's limit reached (REST 429)", flood.what, refusedN, rep.Status)
		}
	}
}

// TestMCPSlowStreamsDoNotBlock: clients that open the session's GET stream
// or a tools/call and never read the answer, or that dribble a request body,
// hold nothing another client needs: meanwhile a well-behaved client's
// initialize and tool calls on the same coordinator answer within seconds.
func TestMCPSlowStreamsDoNotBlock(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	f := r.follower()
	ep := r.c.URL(f) + "/mcp"
	host := strings.TrimPrefix(r.c.URL(f), "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// 30 sessions of B, each with a GET stream nobody reads, and 30 tool
	// calls whose answers nobody reads, and 30 bodies dribbled a byte at a
	// time.
	for range 30 {
		mb := &mcpSession{t: t, endpoint: ep, token: r.keyB}
		mb.initialize()
		for _, req := range []string{
			"GET /mcp HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyB + "\r\nAccept: text/event-stream\r\nMcp-Session-Id: " + mb.session + "\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n",
			"POST /mcp HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyB + "\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Session-Id: " + mb.session +
				"\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: " + fmt.Sprint(len(toolCallGetAccount)) + "\r\n\r\n" + toolCallGetAccount,
			"POST /mcp HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyB + "\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Session-Id: " + mb.session +
				"\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: 100000\r\n\r\n{",
		} {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the dribblers
		defer wg.Done()
		for ctx.Err() == nil {
			for i := 2; i < len(conns); i += 3 {
				_, _ = conns[i].Write([]byte(" "))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	defer wg.Wait()
	defer cancel()
	// A well-behaved client beside them, five rounds. An election (the
	// rig's Raft timeout, on a loaded machine) answers its call 503
	// no_leader or leader_unreachable, which says nothing of the stalled
	// clients: the client sends the call again after a second (the REST
	// answer's Retry-After), as clients are told, and that round is not
	// timed. Its REST request is resent likewise (rig.call).
	for rounds, elections := 0, 0; rounds < 5; {
		start := time.Now()
		m := &mcpSession{t: t, endpoint: ep, token: r.keyA}
		m.initialize()
		tr := m.call("get_account", map[string]any{})
		d := time.Since(start)
		if code := tr.leadershipChange(); code != "" && elections < 10 {
			elections++
			t.Logf("A's get_account beside 90 stalled clients: 503 %s after %v (an election): sent again in 1s", code, d)
			time.Sleep(time.Second)
			continue
		}
		if tr.isError || !strings.Contains(tr.text, r.accA.ID) || d > 5*time.Second {
			t.Errorf("A's initialize and get_account beside 90 stalled clients: %v %.200s", d, tr.raw)
		}
		if rep := r.call(f, r.keyA, "GET", "/v1/account", nil, nil); rep.Status != http.StatusOK {
			t.Errorf("A's REST beside them: %s", rep)
		}
		rounds++
		time.Sleep(time.Second)
	}
}
