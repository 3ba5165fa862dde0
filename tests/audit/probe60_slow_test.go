package audit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProbe60SlowClientsOnSubRoutes: README's "Slow and hostile clients"
// bounds (set here to --http-header-timeout 2s, --http-body-timeout 2s,
// --http-idle-timeout 3s) on the sub-routes under an id and the MCP and
// OAuth endpoints, as clients written from README alone meet them, each
// on the leader and a follower, all at once (TestDribblingClientsAreCut
// dribbles the order, MCP and OAuth bodies only, and times no other
// client):
//   - a request whose headers come one byte every 50 ms (never stalling:
//     no per-read timeout fires; 50 s at that rate) is cut within the
//     header timeout (and slack): GET /v1/actions?resource_id=,
//     GET /v1/domains/{id}, POST /v1/servers/{id}/power/reboot,
//     POST /oauth/token, POST /mcp;
//   - one whose body comes so (a body the route would accept, padded with
//     JSON whitespace or a form field) is answered 408 within the body
//     timeout: PATCH /v1/domains/{id}, POST /v1/servers/{id}/snapshots,
//     PUT /v1/servers/{id}/ips/{ip}/ptr, POST /v1/tickets/{id}/reply,
//     PATCH /v1/webhooks/{id}, POST /oauth/device_authorization, and
//     POST /mcp (tools/call reply_ticket); none of it is applied;
//   - a keep-alive connection whose client read its answer and then sends
//     nothing is closed within the idle timeout;
//   - an MCP session's GET stream read one byte every 100 ms ends within
//     the body timeout after it opened (README: "A stream also ends at
//     --http-body-timeout after it opened");
//   - each dribbler starts again when it is cut, for 5 s; meanwhile B's
//     requests (GET /v1/account and the get_account tool, at the leader
//     and the follower) all answer, at a p99 under 100 ms or within 5 times
//     the p99 measured just before without the slow clients
//     (TestProbe58UnreadMCPStreams' bound).
func TestProbe60SlowClientsOnSubRoutes(t *testing.T) {
	const (
		headerBound = 2 * time.Second
		bodyBound   = 2 * time.Second
		idleBound   = 3 * time.Second
		slack       = 3 * time.Second // a loaded machine's scheduling
		gap         = 50 * time.Millisecond
	)
	r := newRig(t, "--http-header-timeout", "2s", "--http-body-timeout", "2s", "--http-idle-timeout", "3s",
		"--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.c.Credit(r.ctx, r.accA.ID, 10*serverPrice)
	own := r.buy()
	reads := []string{"/v1/domains/" + own.domain, "/v1/servers/" + own.server + "/snapshots", "/v1/servers/" + own.server + "/ips",
		"/v1/tickets/" + own.ticket, "/v1/webhooks/" + own.webhook, "/v1/actions?limit=200", "/v1/account/connected-apps"}
	before := p60Settled(t, r, reads)
	ld, f := r.leaderAndFollower()

	// B's client: one request at a time, REST and MCP, at both.
	bm := []*mcpSession{{t: t, endpoint: r.c.URL(ld) + "/mcp", token: r.keyB}, {t: t, endpoint: r.c.URL(f) + "/mcp", token: r.keyB}}
	for _, m := range bm {
		m.initialize()
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	var normalErr []string
	call := func(n int) time.Duration {
		i := []int{ld, f}[n%2]
		start := time.Now()
		if n%4 < 2 {
			req, _ := http.NewRequest("GET", r.c.URL(i)+"/v1/account", nil)
			req.Header.Set("X-API-Key", r.keyB)
			resp, err := hc.Do(req)
			if err != nil {
				normalErr = append(normalErr, err.Error())
				return time.Since(start)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				normalErr = append(normalErr, fmt.Sprintf("GET /v1/account at %d: %d", i, resp.StatusCode))
			}
			return time.Since(start)
		}
		a := p60Call(t, bm[n%2], "get_account", map[string]any{})
		if a.http != 200 || a.isError {
			normalErr = append(normalErr, fmt.Sprintf("get_account at %d: %s", i, a))
		}
		return time.Since(start)
	}
	measure := func(until func(n int) bool) []time.Duration {
		var lat []time.Duration
		for n := 0; until(n); n++ {
			lat = append(lat, call(n))
			time.Sleep(5 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	measure(func(n int) bool { return n < 20 })
	quiet := measure(func(n int) bool { return n < 200 })

	padding := strings.Repeat(" ", 1000)
	type slow struct {
		name, method, path, ctype, body string
	}
	headers := []slow{
		{"actions of A's server", "GET", "/v1/actions?resource_id=" + own.server, "", ""},
		{"A's domain", "GET", "/v1/domains/" + own.domain, "", ""},
		{"power", "POST", "/v1/servers/" + own.server + "/power/reboot", "application/json", "{}"},
		{"oauth token", "POST", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=x"},
		{"mcp", "POST", "/mcp", "application/json", `{"jsonrpc":"2.0","id":1,"method":"ping"}`},
	}
	bodies := []slow{
		{"domain patch", "PATCH", "/v1/domains/" + own.domain, "application/json", `{"auto_renew":false,"transfer_lock":false` + padding + `}`},
		{"snapshot", "POST", "/v1/servers/" + own.server + "/snapshots", "application/json", `{"name":"p60-slow"` + padding + `}`},
		{"ptr", "PUT", "/v1/servers/" + own.server + "/ips/" + own.serverIP + "/ptr", "application/json", `{"ptr":"slow.example.com"` + padding + `}`},
		{"reply", "POST", "/v1/tickets/" + own.ticket + "/reply", "application/json", `{"body":"p60 slow"` + padding + `}`},
		{"webhook patch", "PATCH", "/v1/webhooks/" + own.webhook, "application/json", `{"description":"p60 slow"` + padding + `}`},
		{"device authorization", "POST", "/oauth/device_authorization", "application/x-www-form-urlencoded", "client_id=p60&scope=account%3Aread&x=" + strings.Repeat("p", 1000)},
		{"mcp tools/call", "POST", "/mcp", "application/json",
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"reply_ticket","arguments":{"id":"` + own.ticket + `","body":{"body":"p60 slow mcp"}}}` + padding + `}`},
	}
	// Every goroutine below ends by its own deadline; one still running
	// when the test ends (a t.Fatal of the main goroutine) would fail a
	// finished test and crash the package's binary: waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	errorf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf(format, args...)
	}
	var done sync.WaitGroup // the slow clients: B measures until they end
	start := func(fn func()) {
		wg.Add(1)
		done.Add(1)
		go func() {
			defer wg.Done()
			defer done.Done()
			fn()
		}()
	}
	// Set up at both coordinators before any goroutine starts: A's session
	// for the dribbled /mcp requests, and A's session stream to be read
	// slowly (its answer's headers read; then one byte every 100 ms until
	// the body ends: its last chunk, or the connection cut).
	ms := map[int]*mcpSession{}
	type stream struct {
		opened time.Time
		resp   *http.Response
	}
	streams := map[int]stream{}
	for _, i := range []int{ld, f} {
		ms[i] = &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: r.keyA}
		ms[i].initialize()
		m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: r.keyA}
		m.initialize()
		u, _ := url.Parse(r.c.URL(i))
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		opened := time.Now()
		fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n",
			u.Host, r.keyA, m.session)
		_ = conn.SetReadDeadline(opened.Add(bodyBound + slack + 5*time.Second))
		sr := &p60SlowReader{r: conn}
		resp, err := http.ReadResponse(bufio.NewReaderSize(sr, 16), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("A's MCP stream at %d: %v %v", i, resp, err)
		}
		sr.gap = 100 * time.Millisecond
		streams[i] = stream{opened, resp}
	}
	// The dribblers start again when cut, for window: B measures over it.
	const window = 5 * time.Second
	slowStart := time.Now()
	for _, i := range []int{ld, f} {
		u, _ := url.Parse(r.c.URL(i))
		head := func(s slow) string {
			h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: application/json, text/event-stream\r\n", s.method, s.path, u.Host, r.keyA)
			if s.path == "/mcp" {
				h += "Mcp-Session-Id: " + ms[i].session + "\r\nMcp-Protocol-Version: 2025-06-18\r\n"
			}
			if s.ctype != "" {
				h += fmt.Sprintf("Content-Type: %s\r\nContent-Length: %d\r\n", s.ctype, len(s.body))
			}
			return h
		}
		for _, part := range []string{"headers", "body"} {
			list, bound := headers, headerBound
			if part == "body" {
				list, bound = bodies, bodyBound
			}
			for _, s := range list {
				start(func() {
					for round := 0; round == 0 || time.Since(slowStart) < window; round++ {
						conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
						if err != nil {
							errorf("%v", err)
							return
						}
						prefix, rest := "", head(s)+"X-Slow: "+strings.Repeat("h", 1000)
						if part == "body" {
							prefix, rest = head(s)+"\r\n", s.body
						}
						took, status, err := dribble(conn, prefix, rest, gap, bound+slack+5*time.Second)
						switch {
						case err != nil:
							errorf("%s (%s %s) %s dribbled to coordinator %d: %v", s.name, s.method, s.path, part, i, err)
							return
						case took > bound+slack:
							errorf("%s (%s %s) %s dribbled to coordinator %d: ended after %s; want within %s", s.name, s.method, s.path, part, i, took.Round(time.Millisecond), bound)
							return
						case part == "body" && !strings.Contains(status, " 408 "):
							errorf("%s (%s %s) body dribbled to coordinator %d: answered %q after %s; want 408", s.name, s.method, s.path, i, status, took.Round(time.Millisecond))
							return
						case part == "headers" && status != "" && !strings.Contains(status, " 408 ") && !strings.Contains(status, " 400 "):
							errorf("%s (%s %s) headers dribbled to coordinator %d: answered %q", s.name, s.method, s.path, i, status)
							return
						case round == 0:
							t.Logf("%s %s %s at coordinator %d: ended after %s (%q)", s.name, s.path, part, i, took.Round(time.Millisecond), status)
						}
					}
				})
			}
		}
		// A keep-alive connection left idle after its answer.
		start(func() {
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				errorf("%v", err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /v1/account HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n\r\n", u.Host, r.keyA)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				errorf("an idle client's GET /v1/account at %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered := time.Now()
			_ = conn.SetReadDeadline(answered.Add(idleBound + slack + 5*time.Second))
			_, err = br.ReadByte()
			took := time.Since(answered)
			switch {
			case resp.StatusCode != 200:
				errorf("an idle client's GET /v1/account at %d: %d", i, resp.StatusCode)
			case err == nil:
				errorf("an idle keep-alive connection at %d got a byte it did not ask for", i)
			case took > idleBound+slack:
				errorf("an idle keep-alive connection at %d: closed after %s (%v); want within %s", i, took.Round(time.Millisecond), err, idleBound)
			default:
				t.Logf("an idle keep-alive connection at %d: closed after %s", i, took.Round(time.Millisecond))
			}
		})
		// A's session stream, read slowly.
		opened, resp := streams[i].opened, streams[i].resp
		start(func() {
			n, err := io.Copy(io.Discard, resp.Body)
			if took := time.Since(opened); took > bodyBound+slack {
				errorf("A's MCP stream at %d, read a byte every 100 ms: ended after %s (%d bytes, %v); want within %s", i, took.Round(time.Millisecond), n, err, bodyBound)
			} else {
				t.Logf("A's MCP stream at %d, read slowly: ended after %s (%d bytes, %v)", i, took.Round(time.Millisecond), n, err)
			}
		})
	}
	lat := measure(untilDone(&done))
	wg.Wait()
	if len(normalErr) > 0 {
		t.Errorf("B's requests while the slow clients ran: %d failed: %q", len(normalErr), normalErr[:min(5, len(normalErr))])
	}
	if len(lat) < 20 {
		t.Fatalf("B made %d requests while the slow clients ran", len(lat))
	}
	p99, qp99 := lat[len(lat)*99/100], quiet[len(quiet)*99/100]
	t.Logf("B's requests with the slow clients: %d, p50 %v, p99 %v, max %v; just before: p50 %v, p99 %v, max %v",
		len(lat), lat[len(lat)/2], p99, lat[len(lat)-1], quiet[len(quiet)/2], qp99, quiet[len(quiet)-1])
	if p99 >= 100*time.Millisecond && p99 > 5*qp99 {
		t.Errorf("B's p99 %v with the slow clients: ≥ 100 ms and over 5 times the %v without them", p99, qp99)
	}
	if ch := p60Changed(t, r, reads, before); len(ch) > 0 {
		t.Errorf("A's state changed by requests that were all cut:\n%s", strings.Join(ch, "\n"))
	}
}

// p60SlowReader reads one byte at a time, waiting gap before each read
// once gap is set (after the answer's headers were read).
type p60SlowReader struct {
	r   io.Reader
	gap time.Duration
}

func (s *p60SlowReader) Read(p []byte) (int, error) {
	if s.gap > 0 {
		time.Sleep(s.gap)
	}
	return s.r.Read(p[:min(len(p), 1)])
}

// untilDone is a measuring loop's condition while goroutines run: true
// until done's goroutines have all ended (from the call on).
func untilDone(done *sync.WaitGroup) func(int) bool {
	ended := make(chan struct{})
	go func() { done.Wait(); close(ended) }()
	return func(int) bool {
		select {
		case <-ended:
			return false
		default:
			return true
		}
	}
}
