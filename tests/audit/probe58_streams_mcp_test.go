package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// heldStream is an MCP session's GET stream (its server-to-client
// messages) opened on a raw connection by a client that reads the answer's
// status line and headers and then nothing more.
type heldStream struct {
	conn   net.Conn
	status int
	header http.Header
	body   []byte // a refusal's body (a 200's is never read)
}

// holdMCPStream opens the GET stream of session on base's /mcp as token and
// reads no further than the answer's headers (a refusal's body too).
func holdMCPStream(t *testing.T, base, token, session string) *heldStream {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n",
		u.Host, token, session)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	// A reader of one byte at a time: nothing after the headers is taken
	// off the connection.
	resp, err := http.ReadResponse(bufio.NewReaderSize(oneByte{conn}, 16), nil)
	if err != nil {
		t.Fatalf("GET stream of session %s at %s: %v", session, base, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	h := &heldStream{conn: conn, status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		h.body, _ = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	}
	return h
}

// oneByte reads at most one byte per Read.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

// TestProbe58UnreadMCPStreams: MCP clients that open sessions and their GET
// streams and then read nothing (200 of them at a follower, from 10
// accounts) are bounded as the README says: an account holds at most
// --mcp-streams-per-account streams at once (16 by default; beyond, a 429
// too_many_streams with Retry-After), a coordinator at most --mcp-streams
// (120 here; beyond, a 503 too_many_streams with Retry-After, for any
// account); meanwhile another account's tool calls through the same
// coordinator keep working (p99 logged; under 100 ms or within 5 times the
// one measured just before, as TestStalledClientsDoNotStarveOthers
// asserts); and once the clients have gone, the coordinator's goroutines are
// back near where they were within the README's idle time of a session whose
// stream closed or was refused (--mcp-stream-idle, 30 s) and slack, not the
// SDK's 30-minute SessionTimeout: the sessions are ended (their id a 404).
func TestProbe58UnreadMCPStreams(t *testing.T) {
	const total = 120
	// A GET stream also ends at the listener's body timeout (30 s by
	// default; README): 2 min here, so that the streams opened first are
	// still held, at load, when the last are opened and measured.
	// Every client here is 127.0.0.1: the per-address cap (2bfbddff,
	// --mcp-streams-per-ip, 64 by default; its own test is mcpserver's
	// TestStreamLimitsPerAddress) is raised past the total so that the
	// account's and the coordinator's caps are the ones this test meets.
	r := lightRig(t, "probe58streams", "--rate-limit", "100000", "--mcp-streams", fmt.Sprint(total), "--mcp-streams-per-ip", fmt.Sprint(2*total), "--http-body-timeout", "2m")
	f := r.follower()
	base := r.c.URL(f)
	ep := base + "/mcp"
	goroutines := func() float64 { return framework.Metrics(t, r.c.Nodes[f].MetricsURL())["go_goroutines"] }

	// The normal client: B's session, one tools/call at a time.
	normal := &mcpSession{t: t, endpoint: ep, token: r.keyB}
	normal.initialize()
	call := func() time.Duration {
		start := time.Now()
		resp, out := normal.post("tools/call", map[string]any{"name": "get_account", "arguments": map[string]any{}}, false)
		took := time.Since(start)
		if res, _ := out["result"].(map[string]any); resp.StatusCode != 200 || res == nil || res["isError"] == true {
			t.Fatalf("B's get_account: %d %v", resp.StatusCode, out)
		}
		return took
	}
	measure := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for range n {
			lat = append(lat, call())
			time.Sleep(5 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	measure(20) // warm the connection and the key cache
	quiet := measure(200)
	before := goroutines()

	// 10 hostile accounts, 20 sessions each, each session's stream opened
	// and never read.
	const accounts, each, perAccount = 10, 20, 16
	type hostile struct {
		key      string
		sessions []string
	}
	var hs []hostile
	for a := range accounts {
		_, key, err := r.c.NewAccount(r.ctx, fmt.Sprintf("probe58streams-h%d@example.com", a), api.AllScopes...)
		if err != nil {
			t.Fatal(err)
		}
		h := hostile{key: key}
		for range each {
			m := &mcpSession{t: t, endpoint: ep, token: key}
			m.initialize()
			h.sessions = append(h.sessions, m.session)
		}
		hs = append(hs, h)
	}
	var open, all []*heldStream
	var byAccount, overAccount, overTotal int
	for _, h := range hs {
		mine := 0
		for _, s := range h.sessions {
			st := holdMCPStream(t, base, h.key, s)
			all = append(all, st)
			switch {
			case st.status == 200:
				open = append(open, st)
				mine++
			case st.status == 429 || st.status == 503:
				var e api.Error
				_ = json.Unmarshal(st.body, &e)
				if e.Code != "too_many_streams" || e.StatusCode != st.status || st.header.Get("Retry-After") == "" || e.Message == "" {
					t.Errorf("a stream refused: %d %q (Retry-After %q); want the JSON error too_many_streams with Retry-After", st.status, st.body, st.header.Get("Retry-After"))
				}
				if st.status == 429 {
					overAccount++
					if mine < perAccount {
						t.Errorf("an account's stream refused 429 with only %d of its streams open; want %d first", mine, perAccount)
					}
				} else {
					overTotal++
					if len(open) < total {
						t.Errorf("a stream refused 503 with only %d streams open at the coordinator; want %d first", len(open), total)
					}
				}
			default:
				t.Fatalf("a hostile GET stream: %d %q", st.status, st.body)
			}
		}
		byAccount = max(byAccount, mine)
	}
	if len(open) != total || byAccount != perAccount || overAccount == 0 || overTotal == 0 {
		t.Errorf("%d streams open (most by one account %d), %d refused for the account's cap, %d for the coordinator's; want %d open, %d at most by one account, some refused for each cap",
			len(open), byAccount, overAccount, overTotal, total, perAccount)
	}
	// B's own stream is refused while the coordinator is full; its calls are not.
	if st := holdMCPStream(t, base, r.keyB, normal.session); st.status != 503 {
		t.Errorf("B's stream while the coordinator holds %d: %d %q; want 503 too_many_streams", total, st.status, st.body)
	}
	during := goroutines()
	t.Logf("coordinator %d: %v goroutines before the hostile clients, %v with %d streams held", f, before, during, len(open))
	lat := measure(200)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	qp99 := quiet[len(quiet)*99/100]
	t.Logf("B's get_account with %d unread streams held: p50 %v, p99 %v, max %v; just before, without them: p50 %v, p99 %v, max %v",
		len(open), p50, p99, lat[len(lat)-1], quiet[len(quiet)/2], qp99, quiet[len(quiet)-1])
	if p99 >= 100*time.Millisecond && p99 > 5*qp99 {
		t.Errorf("p99 %v ≥ 100 ms and over 5 times the %v without the held streams", p99, qp99)
	}

	// The clients go away (their refused requests' connections too).
	closedAt := time.Now()
	for _, st := range all {
		st.conn.Close()
	}
	var after float64
	const within = 30*time.Second + 20*time.Second
	framework.WaitFor(t, fmt.Sprintf("coordinator %d's goroutines back near %v", f, before), within, time.Second, func() bool {
		after = goroutines()
		return after <= before+20
	})
	t.Logf("coordinator %d: %v goroutines %s after the clients went", f, after, time.Since(closedAt).Round(time.Second))
	// Their sessions are over, those refused a stream too; B's, which it
	// keeps using, is not.
	for _, h := range []hostile{hs[0], hs[len(hs)-1]} {
		for _, s := range []string{h.sessions[0], h.sessions[len(h.sessions)-1]} {
			if st, _, body := rawMCP(t, "POST", ep, h.key, s, toolCallGetAccount, nil, 10*time.Second); st != 404 {
				t.Errorf("a hostile session %s after its client went: %d %.200s; want 404 (ended)", time.Since(closedAt).Round(time.Second), st, body)
			}
		}
	}
	// B's session, refused a stream and idle since the last call, was
	// ended as well: B initializes again, as an MCP client does on a 404,
	// and the streams are free again.
	normal = &mcpSession{t: t, endpoint: ep, token: r.keyB}
	normal.initialize()
	call()
	if st := holdMCPStream(t, base, r.keyB, normal.session); st.status != 200 {
		t.Errorf("B's stream after the hostile clients went: %d %q; want 200", st.status, st.body)
	}
}
