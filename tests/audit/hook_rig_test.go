package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// hookRig is newLightRig with more coordinator flags: three coordinators
// whose webhooks may reach plain-HTTP loopback receivers
// (--webhook-allow-http --webhook-allow-private, the development flags) and
// two accounts with every scope.
func hookRig(t *testing.T, extra ...string) *rig { return lightRig(t, "hook", extra...) }

// sink is a webhook receiver on loopback whose answer is chosen per request
// by answer (nil: 204). It keeps every request, when it came and when the
// handler returned (a hanging answer returns once the sender gives up).
type sink struct {
	URL    string
	mu     sync.Mutex
	hits   []sinkHit
	answer func(n int, w http.ResponseWriter, req *http.Request) // n: 0-based request number
}

// switchedSink is a sink answering code while failing is set, 204
// otherwise.
func switchedSink(t *testing.T, code int, failing *atomic.Bool) *sink {
	return newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(code)
			return
		}
		w.WriteHeader(204)
	})
}

type sinkHit struct {
	body      []byte
	header    http.Header
	at, ended time.Time
}

func newSink(t *testing.T, answer func(n int, w http.ResponseWriter, req *http.Request)) *sink {
	s := &sink{answer: answer}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		s.mu.Lock()
		n := len(s.hits)
		s.hits = append(s.hits, sinkHit{body: body, header: req.Header.Clone(), at: time.Now()})
		s.mu.Unlock()
		if s.answer != nil {
			s.answer(n, w, req)
		} else {
			w.WriteHeader(http.StatusNoContent)
		}
		s.mu.Lock()
		s.hits[n].ended = time.Now()
		s.mu.Unlock()
	}))
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	s.URL = srv.URL + "/hook"
	return s
}

func (s *sink) all() []sinkHit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hits)
}

// sortedEvents waits (up to within) until s has received n distinct events,
// one per id (a delivery is at least once: a repeat carries its first's
// id), and returns them sorted by id, each with its data decoded into D. A
// delivery that is not an event of one of types fails the test.
func sortedEvents[D any](t *testing.T, s *sink, n int, within time.Duration, types ...string) []typedEvent[D] {
	t.Helper()
	var evs []typedEvent[D]
	for deadline := time.Now().Add(within); ; {
		seen := map[string]bool{}
		evs = evs[:0]
		for _, h := range s.all() {
			var ev typedEvent[D]
			if err := json.Unmarshal(h.body, &ev); err != nil || !slices.Contains(types, ev.Type) {
				t.Fatalf("a delivery that is not a %s event: %v %.300s", strings.Join(types, " or "), err, h.body)
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				evs = append(evs, ev)
			}
		}
		if len(evs) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events received within %s, want %d", len(evs), strings.Join(types, "/"), within, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	slices.SortFunc(evs, func(a, b typedEvent[D]) int { return strings.Compare(a.ID, b.ID) })
	return evs
}

// typedEvent is a delivered event with its data as D.
type typedEvent[D any] struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data D      `json:"data"`
}

// about returns the requests whose event data has field = value.
func (s *sink) about(field, value string) []sinkHit {
	var out []sinkHit
	for _, h := range s.all() {
		var ev struct {
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(h.body, &ev) == nil && fmt.Sprint(ev.Data[field]) == value {
			out = append(out, h)
		}
	}
	return out
}

// waitAbout waits until at least n requests are about field = value.
func (s *sink) waitAbout(t *testing.T, field, value string, n int, within time.Duration) []sinkHit {
	t.Helper()
	var got []sinkHit
	framework.WaitFor(t, fmt.Sprintf("%d requests with %s=%s", n, field, value), within, 50*time.Millisecond, func() bool {
		got = s.about(field, value)
		return len(got) >= n
	})
	return got
}

// event is a delivered body as the seed describes it.
type event struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
}

func (h sinkHit) event(t *testing.T) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("delivery body is not the event JSON: %v: %.300s", err, h.body)
	}
	return ev
}

// attempts is a webhook's delivery log (newest first as served), read
// through coordinator i.
func (r *rig) attempts(i int, key, webhook string) []api.WebhookAttempt {
	r.t.Helper()
	var l struct {
		Data []api.WebhookAttempt `json:"data"`
	}
	r.get(r.t, i, key, "/v1/webhooks/"+webhook+"/deliveries?limit=200", &l)
	return l.Data
}

// hook creates a webhook for key and returns it (with its secret).
func (r *rig) hook(key, url string, events ...string) api.Webhook {
	r.t.Helper()
	rep := r.write(0, key, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: url, Events: events})
	if rep.Status != 201 {
		r.t.Fatalf("webhook to %s: %s", url, rep)
	}
	var wh api.Webhook
	rep.Decode(r.t, &wh)
	return wh
}

// ticket opens a ticket for key through coordinator i.
func (r *rig) ticket(i int, key, subject string) api.Ticket {
	r.t.Helper()
	rep := r.write(i, key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: "m"})
	if rep.Status != 201 {
		r.t.Fatalf("ticket: %s", rep)
	}
	var tk api.Ticket
	rep.Decode(r.t, &tk)
	return tk
}

// dripServer is a loopback HTTP/1.1 endpoint written with a raw socket: it
// reads one request and then writes resp one byte every gap, until the
// peer goes away. closed records when each connection's writing stopped and
// how many bytes it got out.
type dripServer struct {
	URL    string
	mu     sync.Mutex
	conns  []dripConn
	ln     net.Listener
	cancel context.CancelFunc
}

type dripConn struct {
	at, stopped time.Time
	written     int
}

func newDripServer(t *testing.T, resp func(i int) []byte, gap time.Duration) *dripServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &dripServer{URL: "http://" + ln.Addr().String() + "/hook", ln: ln, cancel: cancel}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			i := len(d.conns)
			d.conns = append(d.conns, dripConn{at: time.Now()})
			d.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-ctx.Done(); c.Close() }()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					_, _ = io.Copy(io.Discard, req.Body)
				}
				out := resp(i)
				n := 0
				for n < len(out) {
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Write(out[n : n+1]); err != nil {
						break
					}
					n++
					select {
					case <-ctx.Done():
					case <-time.After(gap):
					}
					if ctx.Err() != nil {
						break
					}
				}
				d.mu.Lock()
				d.conns[i].stopped, d.conns[i].written = time.Now(), n
				d.mu.Unlock()
			}()
		}
	})
	return d
}

func (d *dripServer) snapshot() []dripConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.conns)
}

// lastAttemptFor waits until webhook wh's log has an attempt of the delivery
// with event eventType whose attempt number is at least n, and returns the
// log's attempts of that kind, oldest first.
func (r *rig) waitAttempts(key, wh string, n int, within time.Duration, ok func(a api.WebhookAttempt) bool) []api.WebhookAttempt {
	r.t.Helper()
	var got []api.WebhookAttempt
	framework.WaitFor(r.t, fmt.Sprintf("%d logged attempts of %s", n, wh), within, 100*time.Millisecond, func() bool {
		got = got[:0]
		for _, a := range r.attempts(0, key, wh) {
			if a.Outcome != api.AttemptQueued && (ok == nil || ok(a)) { // a queued row is no attempt yet
				got = append(got, a)
			}
		}
		return len(got) >= n
	})
	slices.SortFunc(got, func(a, b api.WebhookAttempt) int { return a.AttemptedAt.Compare(b.AttemptedAt) })
	return got
}

// contains reports whether s holds every one of subs (case-insensitive).
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
			return false
		}
	}
	return true
}
