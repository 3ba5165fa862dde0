package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// unreachable answers as a follower whose forward to the leader failed
// (httpapi forward.go and forwardmux.go: the same headers and body).
func unreachable(w http.ResponseWriter) { unreachableAsking(w, "1") }

// unreachableAsking is unreachable with Retry-After: retryAfter.
func unreachableAsking(w http.ResponseWriter, retryAfter string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", retryAfter)
	w.Header().Set("X-Request-Id", "req_1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	e := api.NewError(http.StatusServiceUnavailable, "leader_unreachable", "the leader could not be reached; retry shortly")
	e.RequestID = "req_1"
	_ = json.NewEncoder(w).Encode(e)
}

// noLeader answers as a coordinator that knows no leader (httpapi
// forward.go, consistency.go: the same headers and body).
func noLeader(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(api.NewError(http.StatusServiceUnavailable, "no_leader", "the cluster has no leader right now; retry shortly"))
}

// leaderMoving is a coordinator answering its first `refusals` requests
// with refuse (nil: unreachable), then 200 with ok; it records each request.
type leaderMoving struct {
	mu       sync.Mutex
	refusals int
	refuse   func(http.ResponseWriter)
	sent     []string // method, path, Idempotency-Key and body of each request
	ok       string
}

func (l *leaderMoving) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.sent = append(l.sent, r.Method+" "+r.URL.Path+" key="+r.Header.Get("Idempotency-Key")+" "+string(body))
	n := len(l.sent)
	l.mu.Unlock()
	if n <= l.refusals {
		if l.refuse != nil {
			l.refuse(w)
		} else {
			unreachable(w)
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, l.ok)
}

func (l *leaderMoving) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

func leaderMovingClient(t *testing.T, refusals int, ok string) (*Client, *leaderMoving) {
	t.Helper()
	l := &leaderMoving{refusals: refusals, ok: ok}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return New(srv.URL, "k"), l
}

// TestClientSendsAgainWhileTheLeaderIsUnreachable: a request a follower
// answered 503 leader_unreachable (it forwarded it, the leader did not
// answer) is sent again while leadership moves, when that cannot apply a
// change twice: a GET, and a write with an Idempotency-Key (the same body
// and key each time). A write without a key is sent once, its 503 returned.
func TestClientSendsAgainWhileTheLeaderIsUnreachable(t *testing.T) {
	ctx := context.Background()

	c, l := leaderMovingClient(t, 2, `{"id":"acc_1"}`)
	acc, err := c.Account(ctx)
	if err != nil || acc.ID != "acc_1" || len(l.requests()) != 3 {
		t.Fatalf("GET: %+v, %v after %q; want acc_1 after the third request", acc, err, l.requests())
	}

	c, l = leaderMovingClient(t, 2, `{"id":"tkt_1"}`)
	tk, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "idem-1")
	sent := l.requests()
	if err != nil || tk.ID != "tkt_1" || len(sent) != 3 || sent[1] != sent[0] || sent[2] != sent[0] || !strings.Contains(sent[0], "key=idem-1 {") {
		t.Fatalf("keyed POST: %+v, %v after %q; want tkt_1 after the same keyed request three times", tk, err, sent)
	}

	c, l = leaderMovingClient(t, 2, `{"id":"tkt_1"}`)
	_, err = c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "leader_unreachable" || len(l.requests()) != 1 {
		t.Fatalf("POST without a key: %v after %q; want its 503 leader_unreachable after one request", err, l.requests())
	}
}

// TestClientSendsAgainWhileNoLeaderIsKnown: a request a coordinator
// answered 503 no_leader with Retry-After (an election) is sent again as
// Retry-After asks, the same rule as for leader_unreachable: a GET and a
// write with an Idempotency-Key, never a write without one.
func TestClientSendsAgainWhileNoLeaderIsKnown(t *testing.T) {
	ctx := context.Background()
	client := func(refusals int, ok string) (*Client, *leaderMoving) {
		c, l := leaderMovingClient(t, refusals, ok)
		l.refuse = noLeader
		return c, l
	}

	c, l := client(2, `{"id":"acc_1"}`)
	start := time.Now()
	acc, err := c.Account(ctx)
	if err != nil || acc.ID != "acc_1" || len(l.requests()) != 3 {
		t.Fatalf("GET: %+v, %v after %q; want acc_1 after the third request", acc, err, l.requests())
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("GET answered after %v: Retry-After: 1 twice asks for 2 s", d)
	}

	c, l = client(1, `{"id":"tkt_1"}`)
	tk, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "idem-1")
	sent := l.requests()
	if err != nil || tk.ID != "tkt_1" || len(sent) != 2 || sent[1] != sent[0] || !strings.Contains(sent[0], "key=idem-1 {") {
		t.Fatalf("keyed POST: %+v, %v after %q; want tkt_1 after the same keyed request twice", tk, err, sent)
	}

	c, l = client(1, `{"id":"tkt_1"}`)
	_, err = c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "no_leader" || len(l.requests()) != 1 {
		t.Fatalf("POST without a key: %v after %q; want its 503 no_leader after one request", err, l.requests())
	}

	c, l = client(1000, `{}`)
	c.LeaderWait = 1500 * time.Millisecond
	if _, err := c.Account(ctx); !errors.As(err, &ae) || ae.Code != "no_leader" || len(l.requests()) != 2 {
		t.Fatalf("GET with LeaderWait 1.5 s: %v after %d requests; want the 503 after 2 (0, 1 s)", err, len(l.requests()))
	}
}

// TestClientLeaderWaitIsBounded: sending again stops when the request's
// context would end before the next try, or at LeaderWait (below 0: never
// sent again); the last 503 is returned at once, not the context's error.
// What is sent and what Waiting is told are checked, not how long it took:
// the deadlines are seconds away from every try, so that a loaded machine's
// slow answers (a few hundred milliseconds) change nothing.
func TestClientLeaderWaitIsBounded(t *testing.T) {
	c, l := leaderMovingClient(t, 1000, `{}`)
	var refused atomic.Int32
	l.refuse = func(w http.ResponseWriter) {
		if refused.Add(1) == 1 {
			unreachableAsking(w, "1")
		} else {
			unreachableAsking(w, "5")
		}
	}
	var pauses []time.Duration
	c.Waiting = func(_ *api.Error, pause time.Duration) { pauses = append(pauses, pause) }
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	_, err := c.Account(ctx)
	var ae *api.Error
	// Tries at 0 and 1 s (the first answer's Retry-After: 1); the next, 5 s
	// after the second (its Retry-After: 5), is past the 4 s deadline: the
	// second answer is returned without a pause, while the context runs.
	if n := len(l.requests()); !errors.As(err, &ae) || ae.Code != "leader_unreachable" || ctx.Err() != nil || n != 2 ||
		len(pauses) != 1 || pauses[0] != time.Second {
		t.Fatalf("GET within a 4 s context: %v (context: %v) after %d requests and pauses %v; want the second 503 after one pause of 1 s, before the context ends",
			err, ctx.Err(), n, pauses)
	}

	c, l = leaderMovingClient(t, 1000, `{}`)
	c.LeaderWait = 600 * time.Millisecond
	pauses = nil
	c.Waiting = func(_ *api.Error, pause time.Duration) { pauses = append(pauses, pause) }
	if _, err := c.Account(context.Background()); !errors.As(err, &ae) || ae.Code != "leader_unreachable" || len(l.requests()) != 1 || len(pauses) != 0 {
		t.Fatalf("GET with LeaderWait 600 ms: %v after %d requests and pauses %v; want the 503 after 1 and no pause (the next, after Retry-After: 1, is past the wait)",
			err, len(l.requests()), pauses)
	}

	c, l = leaderMovingClient(t, 1, `{}`)
	c.LeaderWait = -1
	if _, err := c.Account(context.Background()); !errors.As(err, &ae) || ae.Code != "leader_unreachable" || len(l.requests()) != 1 {
		t.Fatalf("GET with LeaderWait -1: %v after %d requests; want the 503 after 1", err, len(l.requests()))
	}
}

// TestNodeErrorOfAnotherFormIsOneLine: an agent's error answer that is not
// its JSON error (a proxy's HTML page, a panic's text) is returned on one
// line, its newlines escaped.
func TestNodeErrorOfAnotherFormIsOneLine(t *testing.T) {
	sock := unixServer(t, "agent.sock", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>\n<body>bad gateway</body>\r\n</html>\n")
	}))
	c := NodeNew(sock)
	defer c.Close()
	_, err := c.VMs(context.Background())
	if err == nil || strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), `<body>bad gateway</body>`) {
		t.Fatalf("error %q; want HTTP 502 and the page's text on one line", err)
	}
}
