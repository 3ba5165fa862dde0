package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// scripted answers its n-th request with script[n] (the last one again past
// the end) and records each request.
type scripted struct {
	script []string // "200", or "503 CODE" with Retry-After: 1, or "503 CODE RA" with Retry-After: RA ("-": none)
	mu     sync.Mutex
	sent   []string // method, path, Idempotency-Key and body of each request
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.sent = append(s.sent, r.Method+" "+r.URL.Path+" key="+r.Header.Get("Idempotency-Key")+" "+string(body))
	answer := strings.Fields(s.script[min(len(s.sent), len(s.script))-1])
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if answer[0] == "200" {
		_, _ = io.WriteString(w, `{}`)
		return
	}
	ra := "1"
	if len(answer) > 2 {
		ra = answer[2]
	}
	if ra != "-" {
		w.Header().Set("Retry-After", ra)
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(api.NewError(http.StatusServiceUnavailable, answer[1], "leadership is changing; retry shortly"))
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// resendCaller is Client.Do or Admin.DoWith against a scripted server, with
// the wait (LeaderWait, ElectionWait) and the hook (Waiting) set.
type resendCaller func(t *testing.T, s *scripted, wait time.Duration, hook func(*api.Error, time.Duration)) func(ctx context.Context, method string, body any, hdr http.Header) error

var resendCallers = map[string]resendCaller{
	"Client": func(t *testing.T, s *scripted, wait time.Duration, hook func(*api.Error, time.Duration)) func(context.Context, string, any, http.Header) error {
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		c := New(srv.URL, "k")
		c.LeaderWait, c.Waiting = wait, hook
		return func(ctx context.Context, method string, body any, hdr http.Header) error {
			_, err := c.Do(ctx, method, "/v1/tickets", body, nil, hdr)
			return err
		}
	},
	"Admin": func(t *testing.T, s *scripted, wait time.Duration, hook func(*api.Error, time.Duration)) func(context.Context, string, any, http.Header) error {
		a := NewAdmin(unixServer(t, "admin.sock", s))
		a.ElectionWait, a.Waiting = wait, hook
		return func(ctx context.Context, method string, body any, hdr http.Header) error {
			return a.DoWith(ctx, method, "/admin/tickets", body, nil, hdr)
		}
	},
}

// readerBody in a TestResendPolicy case is a body sent as an io.Reader
// (strings.NewReader of it): each subtest makes its own, as the Client and
// Admin runs of a case run in parallel and a shared reader would be read by
// both (a data race the race detector caught in a CI).
type readerBody string

// TestResendPolicy: Client and Admin send a request again after a
// coordinator's 503 during an election by the one policy (Resend): what is
// sent again, after which pause, until when, and the hook called once for
// each resend with the answer and the pause.
func TestResendPolicy(t *testing.T) {
	key := http.Header{"Idempotency-Key": {"idem-1"}}
	ticket := api.TicketCreateRequest{Subject: "s", Message: "m"}
	for _, c := range []struct {
		name   string
		script []string
		method string
		body   any
		hdr    http.Header
		wait   time.Duration // LeaderWait, ElectionWait
		ctx    time.Duration // the context's timeout; 0 none
		sends  int
		code   string   // the 503 returned; "" an answer
		waits  []string // the hook's calls: code and pause
		least  time.Duration
	}{
		{name: "GET no_leader, Retry-After 1", script: []string{"503 no_leader", "200"}, method: "GET",
			sends: 2, waits: []string{"no_leader 1s"}, least: time.Second},
		{name: "keyed POST no_leader", script: []string{"503 no_leader", "503 no_leader", "200"}, method: "POST", body: ticket, hdr: key,
			sends: 3, waits: []string{"no_leader 1s", "no_leader 1s"}, least: 2 * time.Second},
		{name: "unkeyed POST no_leader", script: []string{"503 no_leader", "200"}, method: "POST", body: ticket,
			sends: 1, code: "no_leader"},
		{name: "keyed POST with an io.Reader body", script: []string{"503 no_leader", "200"}, method: "POST", body: readerBody(`{}`), hdr: key,
			sends: 1, code: "no_leader"},
		{name: "GET leader_unreachable, Retry-After 1", script: []string{"503 leader_unreachable", "200"}, method: "GET",
			sends: 2, waits: []string{"leader_unreachable 1s"}, least: time.Second},
		{name: "unkeyed POST leader_unreachable", script: []string{"503 leader_unreachable", "200"}, method: "POST", body: ticket,
			sends: 1, code: "leader_unreachable"},
		{name: "unkeyed POST not_leader with Retry-After (nothing done)", script: []string{"503 not_leader", "200"}, method: "POST", body: ticket,
			sends: 2, waits: []string{"not_leader 1s"}, least: time.Second},
		{name: "not_leader without Retry-After", script: []string{"503 not_leader -", "200"}, method: "GET",
			sends: 1, code: "not_leader"},
		{name: "another 503", script: []string{"503 node_busy", "200"}, method: "GET",
			sends: 1, code: "node_busy"},
		{name: "no_leader without Retry-After", script: []string{"503 no_leader -", "200"}, method: "GET",
			sends: 1, code: "no_leader"},
		{name: "leader_unreachable without Retry-After", script: []string{"503 leader_unreachable -", "200"}, method: "GET",
			sends: 1, code: "leader_unreachable"},
		{name: "Retry-After 1: the back-off past 1 s", script: []string{"503 no_leader", "503 no_leader", "503 no_leader", "503 no_leader", "200"}, method: "GET",
			sends: 5, waits: []string{"no_leader 1s", "no_leader 1s", "no_leader 1s", "no_leader 2s"}, least: 5 * time.Second},
		{name: "Retry-After 0: the back-off, 250 ms doubling", script: []string{"503 no_leader 0", "503 leader_unreachable 0", "503 no_leader 0", "200"}, method: "GET",
			sends: 4, waits: []string{"no_leader 250ms", "leader_unreachable 500ms", "no_leader 1s"}, least: 1750 * time.Millisecond},
		{name: "Retry-After 9: 5 s at most", script: []string{"503 no_leader 9", "200"}, method: "GET", wait: 8 * time.Second,
			sends: 2, waits: []string{"no_leader 5s"}, least: 5 * time.Second},
		// Retry-After 2: the second send is at 2 s, the third would be at 4 s;
		// a bound of 3 s leaves a second for a slow machine's answers.
		{name: "the wait ends it", script: []string{"503 no_leader 2"}, method: "GET", wait: 3 * time.Second,
			sends: 2, code: "no_leader", waits: []string{"no_leader 2s"}, least: 2 * time.Second},
		{name: "the context's deadline ends it", script: []string{"503 no_leader 2"}, method: "GET", ctx: 3 * time.Second,
			sends: 2, code: "no_leader", waits: []string{"no_leader 2s"}, least: 2 * time.Second},
		{name: "wait below 0: never", script: []string{"503 no_leader", "200"}, method: "GET", wait: -1,
			sends: 1, code: "no_leader"},
	} {
		for name, caller := range resendCallers {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				s := &scripted{script: c.script}
				var mu sync.Mutex
				var waits []string
				do := caller(t, s, c.wait, func(e *api.Error, pause time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					waits = append(waits, fmt.Sprint(e.Code, " ", pause))
				})
				ctx := context.Background()
				if c.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, c.ctx)
					defer cancel()
				}
				body := c.body
				if rb, ok := body.(readerBody); ok {
					body = strings.NewReader(string(rb)) // a reader of its own
				}
				start := time.Now()
				err := do(ctx, c.method, body, c.hdr)
				took := time.Since(start)
				sent := s.requests()
				var ae *api.Error
				switch {
				case c.code == "" && err != nil:
					t.Fatalf("%v after %q: want the answer", err, sent)
				case c.code != "" && (!errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != c.code):
					t.Fatalf("%v after %q: want the 503 %s", err, sent, c.code)
				}
				if len(sent) != c.sends {
					t.Fatalf("%d requests %q: want %d", len(sent), sent, c.sends)
				}
				for _, r := range sent[1:] {
					if r != sent[0] {
						t.Fatalf("requests %q: want the same method, path, key and body each time", sent)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if fmt.Sprint(waits) != fmt.Sprint(c.waits) {
					t.Fatalf("hook called with %q: want %q, once before each resend", waits, c.waits)
				}
				if took < c.least {
					t.Fatalf("done after %v: the pauses were %q", took, waits)
				}
			})
		}
	}
}
