package httpapi

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// shortTimeouts are far shorter than the streams below last.
var shortTimeouts = Timeouts{ReadHeader: time.Second, Body: 300 * time.Millisecond, Write: 300 * time.Millisecond, Idle: time.Second, MaxHeaderBytes: 8 << 10}

func serveWith(t *testing.T, to Timeouts, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := to.Server(h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestStatsStreamOutlivesListenerDeadlines: the listener's body and write
// deadlines (300 ms here) do not end a stats stream that runs for seconds.
func TestStatsStreamOutlivesListenerDeadlines(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := serveWith(t, shortTimeouts, s.a.Handler(nil))
	s.setStats(runningSamples(400 * time.Millisecond))
	req, _ := http.NewRequest("GET", base+"/v1/servers/"+id+"/stats?stream=1&interval=1", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readEvents(t, resp.Body, 5)
	if len(evs) != 5 || evs[4].name != "stats" {
		t.Fatalf("stream cut after %v: %+v", time.Since(start), evs)
	}
	if el := time.Since(start); el < 4*shortTimeouts.Write {
		t.Fatalf("the stream took %v: it does not show the deadlines were lifted", el)
	}

	// The same listener still answers a body that stalls with a 408.
	_, tkey := s.account(api.ScopeTicketsWrite)
	conn, err := net.Dial("tcp", base[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tkey+"\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp2, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp2.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %v %v", resp2, err)
	}
}

// TestForwardedStreamOutlivesListenerDeadlines: a follower's forwarder passes
// on a stream that lasts longer than its own listener's deadlines; each write
// is bounded instead.
func TestForwardedStreamOutlivesListenerDeadlines(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := 0; i < 5; i++ {
			_, _ = io.WriteString(w, "event: stats\ndata: {}\n\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-time.After(250 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer up.Close()
	a := &API{cfg: Config{NodeID: "n2", Timeouts: shortTimeouts}, log: slog.New(slog.DiscardHandler)}
	f := newForwarder(a)
	u, _ := url.Parse(up.URL)
	base := serveWith(t, shortTimeouts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.proxyTo(w, r, "req_1", u)
	}))
	resp, err := http.Get(base + "/v1/servers/x/stats?stream=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if evs := readEvents(t, resp.Body, 5); len(evs) != 5 {
		t.Fatalf("forwarded stream cut: %+v", evs)
	}
}

// TestHeaderLimitAndDefaults: headers beyond the limit are refused with 431;
// the defaults bound a stalled body to at most 30 s.
func TestHeaderLimitAndDefaults(t *testing.T) {
	d := DefaultTimeouts()
	if d.Body <= 0 || d.Body > 30*time.Second || d.ReadHeader <= 0 || d.ReadHeader > 30*time.Second || d.Write <= 0 || d.Idle <= 0 || d.MaxHeaderBytes <= 0 {
		t.Fatalf("defaults: %+v", d)
	}
	base := serveWith(t, shortTimeouts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 32<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 KiB of headers with an 8 KiB limit: %d", resp.StatusCode)
	}
}

// TestReadLimitedSizes: the body reader /v1, /mcp and OAuth share reads
// what io.ReadAll reads, whether the body ends at Content-Length, goes on past
// it, stops short of it or has none (its first buffer is sized from
// Content-Length, but no bigger than presizeMax before the bytes arrive), and
// a body over the limit is a 413 however it is announced.
// (Was the MCP fast path's TestReadBody, whose reader this one replaced.)
func TestReadLimitedSizes(t *testing.T) {
	big := strings.Repeat("x", MaxBodyBytes+10)
	for _, tc := range []struct {
		name, body string
		length     int64
		status     int
	}{
		{"exact", `{"a":1}`, 7, 0}, {"longer", `{"a":1}tail`, 7, 0}, {"shorter", `{"a"`, 7, 0},
		{"unknown", `{"a":1}`, -1, 0}, {"empty", "", 0, 0}, {"one byte", "x", 1, 0}, {"grows", strings.Repeat("y", 5000), -1, 0},
		{"at the limit", big[:MaxBodyBytes], MaxBodyBytes, 0}, {"announced big, sends little", "x", MaxBodyBytes, 0},
		{"huge", big, 5, http.StatusRequestEntityTooLarge}, {"huge unknown", big, -1, http.StatusRequestEntityTooLarge},
		{"huge announced", big, int64(len(big)), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/tickets", strings.NewReader(tc.body))
			r.ContentLength = tc.length
			got, status, err := readLimited(httptest.NewRecorder(), r, MaxBodyBytes)
			if status != tc.status {
				t.Fatalf("status %d (%v), want %d", status, err, tc.status)
			}
			if tc.status == 0 && (err != nil || string(got) != tc.body) {
				t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(tc.body))
			}
			if c := cap(got); c > presizeMax && c > 2*len(got)+512 {
				t.Errorf("a %d-byte body announced as %d took a %d-byte buffer", len(got), tc.length, c)
			}
		})
	}
}
