package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// acquireOK is c.acquire of a call that must be counted.
func acquireOK(t *testing.T, c *statsCaps, account, ip, node string, stream bool) (release func()) {
	t.Helper()
	rel, err := c.acquire(account, ip, node, stream)
	if err != nil {
		t.Fatalf("acquire(%s from %s, %s, stream %v): %v", account, ip, node, stream, err)
	}
	return rel
}

// wantNoCapEntries fails t when c still holds an entry: every call's
// release was called, and a count that drops to zero is deleted.
func wantNoCapEntries(t *testing.T, c *statsCaps) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams.Entries() != 0 || len(c.nodes) != 0 {
		t.Fatalf("entries left after every release: %d accounts and addresses, nodes %v", c.streams.Entries(), c.nodes)
	}
}

// TestStatsCapsCount: streams count against their account and node, one-shot
// calls against their node only; past a cap the call is refused with the
// cap's error and counts nothing; a release frees its place once, however
// often it is called, and leaves no entry behind.
func TestStatsCapsCount(t *testing.T) {
	c := newStatsCaps(2, 100, 3) // each account from an address of its own: the address cap is TestStatsCapsPerAddress's
	refused := func(account, node string, stream bool, status int, code string) {
		t.Helper()
		rel, err := c.acquire(account, "ip-"+account, node, stream)
		var he *httpError
		if rel != nil || !errors.As(err, &he) || he.status != status || he.code != code {
			t.Fatalf("acquire(%s, %s, stream %v): %v; want %d %s", account, node, stream, err, status, code)
		}
	}
	ok := func(account, node string, stream bool) func() {
		t.Helper()
		return acquireOK(t, c, account, "ip-"+account, node, stream)
	}
	a1 := ok("acc_a", "n1", true)
	a2 := ok("acc_a", "n2", true) // the account's cap spans its nodes
	refused("acc_a", "n1", true, 429, "too_many_streams")
	if _, err := c.acquire("acc_a", "ip-acc_a", "n1", true); !strings.Contains(err.Error(), "2 stats streams") {
		t.Errorf("the refusal does not name the cap: %v", err)
	}
	oneShot := ok("acc_a", "n1", false) // one-shot samples are not streams
	b1 := ok("acc_b", "n1", true)
	refused("acc_c", "n1", true, 503, "node_busy") // n1: a1, oneShot, b1
	refused("acc_c", "n1", false, 503, "node_busy")
	if s, n := c.open("acc_a", "n1"); s != 2 || n != 3 {
		t.Fatalf("open: %d streams of acc_a, %d calls on n1; want 2 and 3", s, n)
	}
	oneShot()
	oneShot() // twice: still one place
	if _, n := c.open("acc_a", "n1"); n != 2 {
		t.Fatalf("after one release called twice: %d calls on n1; want 2", n)
	}
	a1()
	x := ok("acc_a", "n1", true) // a1's places are free
	x()
	a2()
	b1()
	a1()
	wantNoCapEntries(t, c)
}

// TestStatsCapsPerAddress: one client address holds at most perIP streams
// whatever the accounts they are of; one more is 429 too_many_streams naming
// the cap and the address, and counts nothing. One-shot calls from it are
// not streams; another address, and an account's other streams, are not
// held back by it; a release frees the address's place once.
func TestStatsCapsPerAddress(t *testing.T) {
	c := newStatsCaps(3, 2, 10)
	ok := func(account, ip string, stream bool) func() {
		t.Helper()
		return acquireOK(t, c, account, ip, "n1", stream)
	}
	a := ok("acc_a", "ip1", true)
	b := ok("acc_b", "ip1", true)
	rel, err := c.acquire("acc_c", "ip1", "n1", true)
	var he *httpError
	if rel != nil || !errors.As(err, &he) || he.status != 429 || he.code != "too_many_streams" ||
		!strings.Contains(he.msg, "2 stats streams") || !strings.Contains(he.msg, "address") {
		t.Fatalf("a third stream from ip1: %v; want 429 too_many_streams naming the address's cap of 2", err)
	}
	if _, err := c.acquire("acc_a", "ip1", "n1", true); err == nil {
		t.Fatal("acc_a's second stream from ip1 passed the address's cap")
	}
	oneShot := ok("acc_c", "ip1", false) // a one-shot sample is not a stream
	c2 := ok("acc_c", "ip2", true)       // another address
	a2 := ok("acc_a", "ip2", true)       // acc_a's own cap (3) is not reached
	if s, n := c.open("acc_c", "n1"); s != 1 || n != 5 {
		t.Fatalf("open: %d streams of acc_c, %d calls on n1; want 1 (the refused one not counted) and 5", s, n)
	}
	a()
	a()                            // twice: still one place
	c1 := ok("acc_c", "ip1", true) // a's place on ip1 is free
	if _, err := c.acquire("acc_d", "ip1", "n1", true); err == nil {
		t.Fatal("a release called twice freed two places of ip1")
	}
	for _, r := range []func(){b, oneShot, c2, a2, c1} {
		r()
	}
	wantNoCapEntries(t, c)
}

// TestStatsCapsReleasedOnEveryExit: through the API, with caps of 2 streams
// per account and 3 calls per node: a third stream is 429 too_many_streams
// (Retry-After, X-RateLimit-*), a call past the node's cap 503 node_busy
// (Retry-After), one-shot ones included; and a call stops counting however
// it ends: its client goes away, the node drops mid-stream (as on a leader
// change, which closes every agent session), the node is offline or fails
// before the first sample, a one-shot sample is answered, times out or
// fails.
func TestStatsCapsReleasedOnEveryExit(t *testing.T) {
	s := newSrvAPI(t)
	s.a.statsCaps = newStatsCaps(2, DefaultStatsStreamsPerIP, 3)
	accA, keyA := s.account(allServerScopes...)
	accB, keyB := s.account(allServerScopes...)
	srvA, srvB := s.server(accA), s.server(accB) // both on hv-secret-node
	const node = "hv-secret-node"
	counts := func() (a, b, n int) {
		a, n = s.a.statsCaps.open(accA, node)
		b, _ = s.a.statsCaps.open(accB, node)
		return
	}
	waitCounts := func(what string, wa, wb, wn int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			a, b, n := counts()
			if a == wa && b == wb && n == wn {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: A holds %d streams, B %d, the node %d calls; want %d, %d, %d", what, a, b, n, wa, wb, wn)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// drop ends every live stream as the node's session ending would.
	drop := make(chan struct{})
	var dropOnce sync.Once
	dropAll := func() { dropOnce.Do(func() { close(drop) }) }
	t.Cleanup(dropAll)
	s.setStats(func(ctx context.Context, _, _ string, stream bool, _ time.Duration, fn func(api.ServerStats) error) error {
		if err := fn(api.ServerStats{Time: time.Now().UTC(), State: "running"}); err != nil || !stream {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drop:
			return ErrNodeOffline
		}
	})
	type live struct {
		resp   *http.Response
		cancel context.CancelFunc
	}
	streamPath := func(id string) string { return "/v1/servers/" + id + "/stats?stream=1&interval=1" }
	// open starts a stream that must be accepted; a refusal is s.call's.
	open := func(key, id string) live {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", s.srv.URL+streamPath(id), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			cancel()
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() }) // a failed test must not leave it open
		if evs := readEvents(t, resp.Body, 1); len(evs) != 1 || evs[0].name != "stats" {
			t.Fatalf("stream: %+v", evs)
		}
		return live{resp: resp, cancel: cancel}
	}
	closeLive := func(l live) { l.cancel(); l.resp.Body.Close() }

	// The account's cap.
	a1 := open(keyA, srvA)
	a2 := open(keyA, srvA)
	waitCounts("A's two streams", 2, 0, 2)
	if r := s.call(keyA, "GET", streamPath(srvA), ""); r.status != 429 || r.code() != "too_many_streams" || !strings.Contains(r.msg(), "2 stats streams") ||
		r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Limit") == "" || r.header.Get("X-RateLimit-Remaining") == "" {
		t.Fatalf("A's third stream: %d %s %v; want 429 too_many_streams naming 2, Retry-After, X-RateLimit-*", r.status, r.body, r.header)
	}
	waitCounts("after the refusal", 2, 0, 2)
	// The node's cap: B's stream is the third call, then nothing more.
	b1 := open(keyB, srvB)
	waitCounts("B's stream", 2, 1, 3)
	if r := s.call(keyB, "GET", streamPath(srvB), ""); r.status != 503 || r.code() != "node_busy" || r.header.Get("Retry-After") == "" || strings.Contains(string(r.body), node) {
		t.Fatalf("B's second stream past the node's cap: %d %s; want 503 node_busy with Retry-After", r.status, r.body)
	}
	if r := s.call(keyB, "GET", "/v1/servers/"+srvB+"/stats", ""); r.status != 503 || r.code() != "node_busy" || r.header.Get("Retry-After") == "" {
		t.Fatalf("B's one-shot past the node's cap: %d %s", r.status, r.body)
	}
	// The client goes away.
	closeLive(a1)
	waitCounts("A's client gone", 1, 1, 2)
	// A one-shot sample answered.
	if r := s.call(keyB, "GET", "/v1/servers/"+srvB+"/stats", ""); r.status != 200 {
		t.Fatalf("B's one-shot: %d %s", r.status, r.body)
	}
	waitCounts("a one-shot answered", 1, 1, 2)
	// The node drops (a leader change closes every session the same way):
	// both streams end with an error event, and count no more.
	dropAll()
	for _, l := range []live{a2, b1} {
		if evs := readEvents(t, l.resp.Body, 1); len(evs) != 1 || evs[0].name != "error" {
			t.Fatalf("after the drop: %+v", evs)
		}
		closeLive(l)
	}
	waitCounts("the node dropped", 0, 0, 0)
	// Offline, or failing, before the first sample; a one-shot that fails
	// or times out.
	for _, f := range []func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error{
		func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
			return ErrNodeOffline
		},
		func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
			return errors.New("agent broke")
		},
		func(ctx context.Context, _, _ string, stream bool, _ time.Duration, _ func(api.ServerStats) error) error {
			if stream {
				return errors.New("agent broke")
			}
			<-ctx.Done() // the one-shot's 3 s
			return ctx.Err()
		},
	} {
		s.setStats(f)
		for range 3 { // more than either cap: each must have been released
			if r := s.call(keyA, "GET", streamPath(srvA), ""); r.status != 503 || r.code() == "node_busy" {
				t.Fatalf("stream of a failing node: %d %s", r.status, r.body)
			}
		}
		if r := s.call(keyA, "GET", "/v1/servers/"+srvA+"/stats", ""); r.status != 503 || r.code() == "node_busy" {
			t.Fatalf("one-shot of a failing node: %d %s", r.status, r.body)
		}
		waitCounts("failed calls", 0, 0, 0)
		if testing.Short() {
			break
		}
	}
}
