package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
)

// TestPprofListenerFraming: the --pprof-addr listener closes the
// connection after a request framed by Transfer-Encoding (RFC 9112 §6.3),
// as the other listeners do (Timeouts.Deadlines): a request with both
// Content-Length and Transfer-Encoding: chunked, whose Content-Length
// covers a second request, is answered once, with Connection: close, and
// the second is never read; a plain chunked POST too.
// A CPU profile, which runs past no deadline of its own, still answers.
func TestPprofListenerFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := pprofServer(httpapi.DefaultTimeouts())
	go func() { _ = ps.Serve(ln) }()
	t.Cleanup(func() { _ = ps.Close() })
	addr := ln.Addr().String()

	// answers sends raw on a fresh connection and reads every answer until
	// the server closes it (or 3 s pass): their status lines, each with its
	// Connection header.
	answers := func(raw string) (out []string, closed bool) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return out, err == io.EOF || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset")
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// ReadResponse takes Connection: close out of the header.
			out = append(out, fmt.Sprintf("%d close=%v", resp.StatusCode, resp.Close))
		}
	}
	second := "GET /debug/pprof/heap HTTP/1.1\r\nHost: localhost\r\n\r\n"
	body := "0\r\n\r\n" + second
	clte := "GET /debug/pprof/goroutine?debug=1 HTTP/1.1\r\nHost: localhost\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(body)) + body
	if got, closed := answers(clte); len(got) != 1 || got[0] != "200 close=true" || !closed {
		t.Errorf("CL+TE request: answers %v (closed after: %v); want one 200 with Connection: close, then the connection closed", got, closed)
	}
	chunked := "POST /debug/pprof/allocs HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0x01\r\n0\r\n\r\n" + second
	if got, closed := answers(chunked); len(got) != 1 || got[0] != "200 close=true" || !closed {
		t.Errorf("chunked POST: answers %v (closed after: %v); want one 200 with Connection: close, then the connection closed", got, closed)
	}
	// A plain request keeps its connection.
	if got, _ := answers(second + second); len(got) != 2 {
		t.Errorf("two plain requests on one connection: answers %v; want 2", got)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n == 0 {
		t.Errorf("a 1 s CPU profile: %d, %d bytes", resp.StatusCode, n)
	}
}

// TestPprofTimedProfilesOutliveTheDeadlines: every profile that runs for
// the seconds the client asks (a CPU profile, a trace, and the delta
// profiles the index serves: heap, allocs, block, mutex with ?seconds=)
// answers past the listener's per-request deadlines (here 300 ms). Before,
// a delta profile was cut at the read deadline (default 30 s), which also
// cancels the request's context: 500 "context canceled" (review62's note).
func TestPprofTimedProfilesOutliveTheDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := httpapi.DefaultTimeouts()
	to.Body, to.Write = 300*time.Millisecond, 300*time.Millisecond
	ps := pprofServer(to)
	go func() { _ = ps.Serve(ln) }()
	t.Cleanup(func() { _ = ps.Close() })
	for _, path := range []string{"/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1", "/debug/pprof/heap?seconds=1", "/debug/pprof/allocs?seconds=1"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Errorf("%s: %v; want the profile", path, err)
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 || err != nil {
			t.Errorf("%s: %d, %d bytes, %v; want the profile", path, resp.StatusCode, n, err)
		}
	}
}
