package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOverLongHeadersAreAJSONError: through a real listener, with a 16 KiB
// header limit, 20 KiB of headers are answered as every other refusal is, the
// JSON error envelope with its X-Request-Id (net/http's own 431, which it
// writes before any handler runs, is text/plain without one); 2 MiB of headers
// are still cut off by net/http, and the server goes on answering.
func TestOverLongHeadersAreAJSONError(t *testing.T) {
	w := newWHAPI(t)
	to := shortTimeouts
	to.MaxHeaderBytes = 16 << 10
	base := serveWith(t, to, w.a.Handler(nil))

	req, _ := http.NewRequest("GET", base+"/v1/servers", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 20<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e api.Error
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &e) != nil || e.StatusCode != 431 || e.Code != "headers_too_large" || e.Err != "Request Header Fields Too Large" {
		t.Fatalf("20 KiB of headers with a 16 KiB limit: %s %q %s\nwant the JSON 431 headers_too_large", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if rid := resp.Header.Get("X-Request-Id"); rid == "" || e.RequestID != rid {
		t.Fatalf("X-Request-Id %q, request_id %q: want both, the same", rid, e.RequestID)
	}
	if !strings.Contains(e.Message, "16384") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("message %q (want the limit named), nosniff %q", e.Message, resp.Header.Get("X-Content-Type-Options"))
	}

	// Just under the limit is served (here: a 401, no key).
	req, _ = http.NewRequest("GET", base+"/v1/servers", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 15<<10))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("15 KiB of headers with a 16 KiB limit: %s, want the route's 401", resp.Status)
	}

	// 2 MiB: net/http stops reading at its own, higher limit.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		// The server may close while this is still being written.
		_, _ = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n"))
	}()
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("2 MiB of headers: the connection is still open after 10 s (read %q)", got)
	}
	if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 431 ") {
		t.Fatalf("2 MiB of headers answered:\n%s", got)
	}

	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the 2 MiB request, /healthz: %s", resp.Status)
	}
}

// TestHeaderBytesCountsTheWire: the size headerLimit compares is the request
// line and headers as sent, within a few bytes.
func TestHeaderBytesCountsTheWire(t *testing.T) {
	raw := "GET /v1/servers?limit=5 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer k\r\nX-Big: " + strings.Repeat("z", 3000) + "\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if n := headerBytes(r); n != len(raw) {
		t.Fatalf("headerBytes %d, sent %d", n, len(raw))
	}
}

// TestForwardedHeadersGetTheFollowersSlack: a request a follower forwards
// carries the follower's own headers (about 300 bytes) on top of the
// client's, which the follower has already held to the limit; at the leader
// it may take forwardedHeaderSlack more, so a client just under the limit is
// not refused by the leader for bytes it never sent. Without the marker the
// same size is refused, and past the slack a forwarded one is too.
func TestForwardedHeadersGetTheFollowersSlack(t *testing.T) {
	const limit = 4 << 10
	h := Timeouts{MaxHeaderBytes: limit}.headerLimit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	status := func(fill int, forwarded bool) int {
		r := httptest.NewRequest("GET", "/v1/servers", nil)
		if forwarded {
			r.Header.Set(headerForwardedBy, "c2")
		}
		r.Header.Set("X-Big", strings.Repeat("a", fill))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	base := headerBytes(httptest.NewRequest("GET", "/v1/servers", nil))
	over := limit - base + 300 // the client's limit plus a follower's headers
	if got := status(over, false); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("%d bytes past the limit, not forwarded: %d, want 431", over-limit+base, got)
	}
	if got := status(over, true); got != http.StatusNoContent {
		t.Fatalf("the same, forwarded by a follower: %d, want it served", got)
	}
	if got := status(limit-base+forwardedHeaderSlack+100, true); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("past the slack, forwarded: %d, want 431", got)
	}
}
