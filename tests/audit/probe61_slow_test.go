package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe61SlowReadersOfALargeList: README's "Slow and hostile clients"
// bounds (set here to --http-header-timeout 2s, --http-body-timeout 2s,
// --http-write-timeout 3s: "the response must be written this long after
// the body was due") against clients that ask for a large answer and then
// do not read it. The largest answer an account can make is a ticket's
// thread (README: at most 200 messages and 1 MiB of bodies; an account
// holds at most 20 webhooks, and a page of 200 tickets' one-line subjects
// is about 90 KiB): A's, of 17 messages, about 330 KiB. 60 clients (30 at the
// leader, 30 at a follower; half read 4 bytes a second, half nothing) each
// open a connection with a 4 KiB receive buffer and a 536-byte MSS (so the
// coordinator's kernel holds about 90 KiB of the answer, not the 2–3 MiB a
// loopback socket takes by default: the coordinator's write really waits
// on the client) and send GET /v1/tickets/{id}, three waves of them, each
// once the last is cut. Each is checked from the coordinator's side of the connection, as
// an operator's `ss` shows it (/proc/net/tcp):
//   - while it lasts, the coordinator's socket holds unsent bytes;
//   - the coordinator closes it (its socket leaves ESTABLISHED) within the
//     header, body and write timeouts of the request's send, and slack;
//   - the slow readers read a 200 status line (the thread, not an error);
//   - while they are held (from a second after each wave was sent: 60
//     answers of 330 KiB to render is load any 60 clients make), B's
//     requests (8 clients at once, each one request at a time: GET
//     /v1/account and B's own ticket list, at the leader and the follower)
//     are answered: the share of them taking 100 ms or more is under 1%
//     (or, on a loaded machine, no more than twice the share measured
//     without the slow clients, before the first wave and for 2 s after
//     each, and one point); in a wave with no election (the coordinators'
//     highest hostplane_raft_term unchanged) none takes over 1.5 s and
//     under 3% are answered by a leadership 503 (in a wave with one, the
//     rig's 1 s Raft timeout on a loaded machine, they are logged);
//   - once the clients have gone, the two coordinators' open file
//     descriptors (/proc/PID/fd) and goroutines are back near where they
//     were (summed: an election may swap the leader's goroutines).
func TestProbe61SlowReadersOfALargeList(t *testing.T) {
	const (
		waves   = 3
		perNode = 30
	)
	r := p61SlowRig(t, "probe61slow")
	ld, f := r.leaderAndFollower()

	// A's large answer: a ticket's thread with 16 replies of 20,000
	// characters (the documented maximum of one), about 330 KiB: over three
	// times what the coordinator's kernel holds for such a client. (README
	// caps a thread at 200 messages and 1 MiB; a list page is smaller: an
	// account holds at most 20 webhooks, and 200 tickets' one-line subjects
	// make about 90 KiB.)
	tk := r.ticket(0, r.keyA, "probe61 slow readers")
	p61Made(t, 16, 3, func(n int) error {
		rep := r.write(0, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/reply",
			api.TicketReplyRequest{Body: fmt.Sprintf("probe61 reply %02d ", n) + strings.Repeat("r", 20000-len("probe61 reply 00 "))})
		if rep.Status != 200 && rep.Status != 201 {
			return fmt.Errorf("reply %d: %s", n, rep)
		}
		return nil
	})
	r.ticket(0, r.keyB, "probe61 B")
	page := "/v1/tickets/" + tk.ID
	p61Page(t, r, f, page, 256, "ticket thread")

	nodes := []int{ld, f}
	b := newP61Normal(t, r, nodes)
	share := func(lat []time.Duration) float64 {
		n := len(lat) - slices.IndexFunc(lat, func(d time.Duration) bool { return d >= 100*time.Millisecond })
		if n > len(lat) {
			n = 0
		}
		return float64(n) / float64(len(lat))
	}
	b.measure(func(n int) bool { return n < 40 })
	quiet := b.measure(func(n int) bool { return n < 600 }).lat
	b.hc.CloseIdleConnections()
	time.Sleep(500 * time.Millisecond)
	// The two coordinators' descriptors and goroutines together: a leader
	// runs more goroutines than a follower, and an election may swap them.
	beforeFDs, beforeG := p61Open(t, r, nodes)

	sl := newP61Slow(t, r, nodes, page, r.keyA, p61Bound, p61Slack)
	defer sl.stop()
	// Waves of the slow clients; B measures while each wave is held, from
	// a second after it was sent (the coordinators rendering 60 answers of
	// 330 KiB is load any 60 clients make) until the last is cut.
	var lat []time.Duration
	elections := 0
	during := 0
	for wave := range waves {
		done := sl.wave(perNode)
		time.Sleep(time.Second)
		if wave == 0 {
			during, _ = p61Open(t, r, nodes)
		}
		before := p61Term(t, r)
		m := b.measure(untilDone(done))
		lat = append(lat, m.lat...)
		elections += m.elections
		// Outside an election (the term unchanged), a leadership 503 is a
		// failure to answer, and no call may wait for seconds.
		switch calls := len(m.lat) + m.elections; {
		case p61Term(t, r) != before:
			t.Logf("wave %d: an election (term %v → %v): %d of B's %d calls answered 503, the longest %v", wave, before, p61Term(t, r), m.elections, calls, m.longest.Round(time.Millisecond))
		case float64(m.elections) > 0.03*float64(calls):
			t.Errorf("wave %d, no election: %d of B's %d calls answered a leadership 503; want under 3%%", wave, m.elections, calls)
		case m.longest > 1500*time.Millisecond:
			t.Errorf("wave %d, no election: B's longest call took %v; want none over 1.5 s", wave, m.longest.Round(time.Millisecond))
		}
		done.Wait()
		if t.Failed() {
			break
		}
		// The control, under the machine's load of the moment: 2 s with no
		// slow client.
		end := time.Now().Add(2 * time.Second)
		quiet = append(quiet, b.measure(func(int) bool { return time.Now().Before(end) }).lat...)
	}
	slices.Sort(lat)
	slices.Sort(quiet)
	b.hc.CloseIdleConnections()
	sl.report()
	if len(b.normalErr) > 0 {
		t.Errorf("B's requests: %d failed: %q", len(b.normalErr), b.normalErr[:min(5, len(b.normalErr))])
	}
	if elections > 0 || sl.slowElections.Load() > 0 {
		t.Logf("answered by a leadership change: %d of B's requests (not timed), %d of the slow readers'", elections, sl.slowElections.Load())
	}
	if len(lat) < 400 {
		t.Errorf("B had %d requests answered while the slow clients were held; want at least 400 to judge", len(lat))
	} else {
		s, qs := share(lat), share(quiet)
		t.Logf("B's requests with the slow clients held: %d, p50 %v, p99 %v, max %v, %.1f%% ≥ 100 ms; without them: %d, p50 %v, p99 %v, %.1f%% ≥ 100 ms",
			len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], 100*s, len(quiet), quiet[len(quiet)/2], quiet[len(quiet)*99/100], 100*qs)
		if len(b.slowCalls) > 0 {
			t.Logf("B's calls of 100 ms or more (with and without the slow clients): %q", b.slowCalls[:min(20, len(b.slowCalls))])
		}
		if s >= 0.01 && s > 2*qs+0.01 {
			t.Errorf("B's requests with the slow clients held: %.1f%% took 100 ms or more (p99 %v); want under 1%%, or no more than twice the %.1f%% without them and a point",
				100*s, lat[len(lat)*99/100], 100*qs)
		}
	}
	// The clients are gone (each closed its connection): the coordinators'
	// descriptors and goroutines come back.
	p61BackNear(t, r, nodes, beforeFDs, beforeG, during)
}

// The slow-reader tests' bounds (p61SlowRig): README's "Slow and hostile
// clients" timeouts, as set on their rigs.
const (
	p61HeaderBound = 2 * time.Second
	p61BodyBound   = 2 * time.Second
	p61WriteBound  = 3 * time.Second
	p61Bound       = p61HeaderBound + p61BodyBound + p61WriteBound // a request's send to its cut
	p61Slack       = 3 * time.Second                               // a loaded machine's scheduling, and the 100 ms polls
)

// p61SlowRig is lightRig (prefix) with the slow-reader tests' timeouts:
// --http-header-timeout 2s, --http-body-timeout 2s, --http-write-timeout 3s
// (p61HeaderBound, p61BodyBound, p61WriteBound) and --http-idle-timeout 3s,
// and extra after them.
func p61SlowRig(t *testing.T, prefix string, extra ...string) *rig {
	return lightRig(t, prefix, append([]string{"--http-header-timeout", p61HeaderBound.String(), "--http-body-timeout", p61BodyBound.String(),
		"--http-write-timeout", p61WriteBound.String(), "--http-idle-timeout", "3s"}, extra...)...)
}

// p61Made runs mk for 0 to n-1, conc at once (framework.Parallel), and
// fails t at the first error, saying how many were made.
func p61Made(t *testing.T, n, conc int, mk func(n int) error) {
	t.Helper()
	var made atomic.Int64
	if err := framework.Parallel(n, conc, func(n int) error {
		if err := mk(n); err != nil {
			return err
		}
		made.Add(1)
		return nil
	}); err != nil {
		t.Fatalf("%v (%d made)", err, made.Load())
	}
}

// p61Page checks that A's GET page at coordinator f (A's what) answers a
// 200 of over minKiB KiB, and logs its size.
func p61Page(t *testing.T, r *rig, f int, page string, minKiB int, what string) {
	t.Helper()
	rep := r.call(f, r.keyA, "GET", page, nil, nil)
	if rep.Status != 200 || len(rep.Body) < minKiB<<10 {
		t.Fatalf("A's %s: %d, %d bytes; want a 200 over %d KiB", what, rep.Status, len(rep.Body), minKiB)
	}
	t.Logf("GET %s: %d bytes", page, len(rep.Body))
}

// p61Open is the open file descriptors (/proc/PID/fd) and goroutines
// (go_goroutines on the metrics listener) of the coordinators nodes,
// summed: an election may swap the leader's goroutines.
func p61Open(t *testing.T, r *rig, nodes []int) (fds int, goroutines float64) {
	t.Helper()
	for _, i := range nodes {
		es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.c.Nodes[i].Pid()))
		if err != nil {
			t.Fatalf("coordinator %d's fds: %v", i, err)
		}
		fds += len(es)
		goroutines += framework.Metrics(t, r.c.Nodes[i].MetricsURL())["go_goroutines"]
	}
	return fds, goroutines
}

// p61BackNear waits up to 15 s for p61Open of nodes to come back near
// beforeFDs and beforeG (5 descriptors, 20 goroutines), and logs them
// (during: the descriptors while the slow clients were held).
func p61BackNear(t *testing.T, r *rig, nodes []int, beforeFDs int, beforeG float64, during int) {
	t.Helper()
	var nf int
	var ng float64
	framework.WaitFor(t, fmt.Sprintf("the coordinators' fds and goroutines back near %d and %v", beforeFDs, beforeG), 15*time.Second, 250*time.Millisecond, func() bool {
		nf, ng = p61Open(t, r, nodes)
		return nf <= beforeFDs+5 && ng <= beforeG+20
	})
	t.Logf("coordinators %v: %d fds before, %d a second into the slow clients, %d after; goroutines %v before, %v after", nodes, beforeFDs, during, nf, beforeG, ng)
}

// p61Term is the highest Raft term of the coordinators: an election in a
// window raises it.
func p61Term(t *testing.T, r *rig) float64 {
	var tm float64
	for i := range r.c.Len() {
		tm = max(tm, framework.Metrics(t, r.c.Nodes[i].MetricsURL())["hostplane_raft_term"])
	}
	return tm
}

// p61Normal is B's clients: p61NormalClients at once, each one request at
// a time, alternating the coordinators nodes and routes (GET /v1/account
// and B's ticket list), on keep-alive connections (so a coordinator's
// stall is a slow call of each, not one sample among hundreds of fast
// ones).
type p61Normal struct {
	t                    *testing.T
	r                    *rig
	nodes                []int
	hc                   *http.Client
	mu                   sync.Mutex
	normalErr, slowCalls []string
}

const p61NormalClients = 8

func newP61Normal(t *testing.T, r *rig, nodes []int) *p61Normal {
	return &p61Normal{t: t, r: r, nodes: nodes,
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: p61NormalClients}}}
}

// call is B's request n: its time, and whether a leadership change
// answered it (503 no_leader and the like).
func (b *p61Normal) call(n int) (time.Duration, bool) {
	i := b.nodes[n%2]
	path := []string{"/v1/account", "/v1/tickets"}[(n/2)%2]
	req, _ := http.NewRequest("GET", b.r.c.URL(i)+path, nil)
	req.Header.Set("Authorization", "Bearer "+b.r.keyB)
	start := time.Now()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.mu.Lock()
		b.normalErr = append(b.normalErr, err.Error())
		b.mu.Unlock()
		return time.Since(start), false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if code := (framework.Reply{Status: resp.StatusCode, Body: body}).Code(); resp.StatusCode == 503 &&
		(code == "no_leader" || code == "leader_unreachable" || slices.Contains(newLeaderCodes, code)) {
		return took, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if took >= 100*time.Millisecond {
		b.slowCalls = append(b.slowCalls, fmt.Sprintf("%s at %d: %s", path, i, took.Round(time.Millisecond)))
	}
	if resp.StatusCode != 200 {
		b.normalErr = append(b.normalErr, fmt.Sprintf("GET %s at %d: %d %.200s", path, i, resp.StatusCode, body))
	}
	return took, false
}

// p61Measured is what p61Normal.measure saw: the times of the calls not
// answered by a leadership change (in the order they ended), how many
// were, and the longest call.
type p61Measured struct {
	lat       []time.Duration
	elections int
	longest   time.Duration
}

// measure runs B's clients until until says stop (n: the calls so far).
func (b *p61Normal) measure(until func(n int) bool) p61Measured {
	var m p61Measured
	var mu sync.Mutex
	var next atomic.Int64
	var cw sync.WaitGroup
	for range p61NormalClients {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for n := int(next.Add(1)) - 1; until(n); n = int(next.Add(1)) - 1 {
				d, election := b.call(n)
				mu.Lock()
				m.longest = max(m.longest, d)
				if election {
					m.elections++
				} else {
					m.lat = append(m.lat, d)
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	cw.Wait()
	return m
}

// p61Slow is slow clients of GET page (with key) at the coordinators
// nodes, each checked from the coordinator's side of its connection, as an
// operator's `ss` shows it (/proc/net/tcp, read every 100 ms): while it
// lasts, whether the coordinator's socket holds unsent bytes; that the
// coordinator closes it within bound (and slack) of the request's send;
// that a reader reads a 200 status line.
type p61Slow struct {
	t                               *testing.T
	hosts                           map[int]string
	ports                           map[int]int
	nodes                           []int
	page, key                       string
	bound, slack                    time.Duration
	tcp                             *p61Sockets
	halt                            chan struct{}
	wg                              sync.WaitGroup
	mu                              sync.Mutex
	cuts                            []time.Duration
	rounds, heldBack, slowElections atomic.Int64
	open                            sync.Map // net.Conn → struct{}: closed at the end whatever happened
}

func newP61Slow(t *testing.T, r *rig, nodes []int, page, key string, bound, slack time.Duration) *p61Slow {
	s := &p61Slow{t: t, hosts: map[int]string{}, ports: map[int]int{}, nodes: nodes, page: page, key: key, bound: bound, slack: slack,
		tcp: &p61Sockets{}, halt: make(chan struct{})}
	for _, i := range nodes {
		u, _ := url.Parse(r.c.URL(i))
		s.hosts[i] = u.Host
		s.ports[i], _ = strconv.Atoi(u.Port())
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.tcp.poll()
			select {
			case <-s.halt:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

// stop closes the clients' connections still open, ends the polling and
// waits for the clients.
func (s *p61Slow) stop() {
	s.open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	close(s.halt)
	s.wg.Wait()
}

func (s *p61Slow) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Errorf(format, args...)
}

// wave starts perNode slow clients at each coordinator (every other one
// reads), and returns what is done when they all have been cut.
func (s *p61Slow) wave(perNode int) *sync.WaitGroup {
	var done sync.WaitGroup
	for _, i := range s.nodes {
		for k := range perNode {
			s.wg.Add(1)
			done.Add(1)
			go func() {
				defer s.wg.Done()
				defer done.Done()
				s.run(i, k%2 == 0)
			}()
		}
	}
	return &done
}

// run is one slow client's request at coordinator i: sent, then read 4
// bytes a second (reads) or not at all, until the coordinator cuts it.
func (s *p61Slow) run(i int, reads bool) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: p61SlowSocket}
	conn, err := d.Dial("tcp", s.hosts[i])
	if err != nil {
		s.errorf("slow client at %d: %v", i, err)
		return
	}
	s.open.Store(conn, struct{}{})
	defer func() { conn.Close(); s.open.Delete(conn) }()
	key := p61Pair{s.ports[i], conn.LocalAddr().(*net.TCPAddr).Port}
	sent := time.Now()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", s.page, s.hosts[i], s.key); err != nil {
		s.errorf("slow client at %d: %v", i, err)
		return
	}
	var got []byte
	var seen, held bool
	for {
		time.Sleep(250 * time.Millisecond)
		if reads && len(got) < 64 {
			b := make([]byte, 1)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			if n, _ := conn.Read(b); n == 1 {
				got = append(got, b[0])
			}
		}
		st, ok := s.tcp.state(key)
		took := time.Since(sent)
		if ok && st.established {
			seen = true
			held = held || st.txQueue > 0
		}
		// Cut: the coordinator's socket closed (FIN_WAIT1 behind the
		// unsent bytes, or gone once seen).
		if (ok && !st.established) || (!ok && seen) {
			s.mu.Lock()
			s.cuts = append(s.cuts, took)
			s.mu.Unlock()
			if took > s.bound+s.slack {
				s.errorf("a slow client (reads: %v) of GET %s at coordinator %d: cut after %s; want within %s", reads, s.page, i, took.Round(time.Millisecond), s.bound)
			}
			break
		}
		if took > s.bound+s.slack+5*time.Second {
			s.errorf("a slow client (reads: %v) of GET %s at coordinator %d: still open after %s (socket seen: %v); want cut within %s", reads, s.page, i, took.Round(time.Millisecond), seen, s.bound)
			break
		}
	}
	s.rounds.Add(1)
	if held {
		s.heldBack.Add(1)
	}
	if reads {
		// What the kernels still hold of the answer reads at once now.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		rest, _ := io.ReadAll(io.LimitReader(conn, 8<<10))
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(append(got, rest...))), nil)
		switch {
		case err == nil && resp.StatusCode == 200:
		case err == nil && resp.StatusCode == 503:
			// An election (the rig's 1 s Raft timeout on a loaded
			// machine): logged, not the slow clients' matter.
			body, _ := io.ReadAll(resp.Body)
			if code := (framework.Reply{Status: 503, Body: body}).Code(); code == "no_leader" || code == "leader_unreachable" || slices.Contains(newLeaderCodes, code) {
				s.slowElections.Add(1)
				break
			}
			fallthrough
		default:
			s.errorf("a slow reader of GET %s at coordinator %d read %.300q (%v); want a 200", s.page, i, append(got, rest...), err)
		}
	}
}

// report logs when the slow clients were cut, and fails the test when
// fewer than half were seen holding unsent bytes at the coordinator (the
// answer fitted in the socket buffers: nothing was measured).
func (s *p61Slow) report() {
	s.mu.Lock()
	cuts := slices.Sorted(slices.Values(s.cuts))
	s.mu.Unlock()
	if len(cuts) > 0 {
		s.t.Logf("%d slow requests (%d seen holding unsent bytes at the coordinator), cut after %v (median) to %v (max)",
			s.rounds.Load(), s.heldBack.Load(), cuts[len(cuts)/2].Round(time.Millisecond), cuts[len(cuts)-1].Round(time.Millisecond))
	}
	if h := s.heldBack.Load(); h < s.rounds.Load()/2 {
		s.t.Errorf("only %d of %d slow requests were seen holding unsent bytes at the coordinator: the page fitted in the socket buffers, the probe measured nothing", h, s.rounds.Load())
	}
}

// p61SlowSocket makes a client socket that holds a large answer back at
// the server: a 4 KiB receive buffer, and a 536-byte MSS announced in the
// SYN (the server sizes its send buffer by the MSS: with loopback's 64 KiB
// one, a server's write of up to about 2.7 MiB returns at once).
func p61SlowSocket(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096); err == nil {
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// p61Pair is a TCP connection seen from the server: its local port and the
// peer's port (every socket here is on loopback).
type p61Pair struct{ local, remote int }

type p61Socket struct {
	established bool
	txQueue     int64
}

// p61Sockets is the latest reading of /proc/net/tcp and /proc/net/tcp6.
type p61Sockets struct {
	mu   sync.Mutex
	seen map[p61Pair]p61Socket
}

func (s *p61Sockets) poll() {
	m := map[p61Pair]p61Socket{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue ...
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 {
				continue
			}
			lp, rp := p61Port(fs[1]), p61Port(fs[2])
			tx, _, _ := strings.Cut(fs[4], ":")
			q, _ := strconv.ParseInt(tx, 16, 64)
			m[p61Pair{lp, rp}] = p61Socket{established: fs[3] == "01", txQueue: q}
		}
	}
	s.mu.Lock()
	s.seen = m
	s.mu.Unlock()
}

func (s *p61Sockets) state(k p61Pair) (p61Socket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.seen[k]
	return st, ok
}

// p61Port is the port of /proc/net/tcp's ADDR:PORT (hex).
func p61Port(a string) int {
	_, p, _ := strings.Cut(a, ":")
	n, _ := strconv.ParseInt(p, 16, 32)
	return int(n)
}
