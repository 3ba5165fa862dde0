package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
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
	got, err := rawExchange(t, base, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 2<<20)+"\r\n\r\n")
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

// rawExchange writes req on a new connection to base (http://host:port)
// and reads until the server closes it, within 10 s: what the server
// answered and the read's error (a timeout: it kept the connection open).
// The write goes on beside the read, since the server may close while a
// long request is still being written.
func rawExchange(t *testing.T, base, req string) ([]byte, error) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = conn.Write([]byte(req)) }()
	return io.ReadAll(conn)
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

// TestOverLongTargetIsAJSON414: through a real listener with the default
// header limit (64 KiB), a request target (path and query) over
// maxTargetBytes is refused as every other refusal is, the JSON error
// envelope with its X-Request-Id: 414 uri_too_long naming the limit, whether
// the length is in the query or the path, and also when the target alone
// passes the header limit (there it was a 431 naming headers the client
// never had). A target just under the limit is served; one past net/http's
// own cut still gets net/http's answer (or the connection closed), and the
// server goes on answering. Over-long headers with a short target are still
// the 431.
func TestOverLongTargetIsAJSON414(t *testing.T) {
	w := newWHAPI(t)
	to := shortTimeouts
	to.MaxHeaderBytes = DefaultTimeouts().MaxHeaderBytes
	base := serveWith(t, to, w.a.Handler(nil))

	get := func(target string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", base+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	query := func(n int) string { // "/v1/servers?cursor=…", n bytes in all
		p := "/v1/servers?cursor="
		return p + strings.Repeat("c", n-len(p))
	}
	for _, c := range []struct {
		name, target string
	}{
		{"a query just over", query(maxTargetBytes + 1)},
		{"a long path", "/v1/servers/" + strings.Repeat("p", 20<<10)},
		{"a target over the header limit", query(70 << 10)},
	} {
		resp, body := get(c.target, nil)
		var e api.Error
		if resp.StatusCode != http.StatusRequestURITooLong || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &e) != nil || e.StatusCode != 414 || e.Code != "uri_too_long" || e.Err != http.StatusText(http.StatusRequestURITooLong) {
			t.Errorf("%s (%d bytes): %s %q %.300s\nwant the JSON 414 uri_too_long", c.name, len(c.target), resp.Status, resp.Header.Get("Content-Type"), body)
			continue
		}
		if rid := resp.Header.Get("X-Request-Id"); rid == "" || e.RequestID != rid {
			t.Fatalf("%s: X-Request-Id %q, request_id %q: want both, the same", c.name, rid, e.RequestID)
		}
		if want := fmt.Sprintf("takes %d bytes, more than the %d accepted", len(c.target), maxTargetBytes); !strings.Contains(e.Message, want) ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: message %q (want %q), nosniff %q, cache %q", c.name, e.Message, want,
				resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Cache-Control"))
		}
	}

	// At the limit: served (here the route's 401, no key). The route reads
	// (a linearizable GET): a 503 with Retry-After (read_unconfirmed, the
	// read barrier not confirmed in time, as on a loaded machine) is sent
	// again, as README's retry policy says of a GET (client.Resend).
	var resp *http.Response
	var body []byte
	_ = client.Resend{Codes: []string{"read_unconfirmed"}}.Do(context.Background(), http.MethodGet, nil, nil, func() (http.Header, error) {
		resp, body = get(query(maxTargetBytes), nil)
		var e api.Error
		if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil {
			return resp.Header, nil
		}
		e.StatusCode = resp.StatusCode
		return resp.Header, &e
	})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a target of %d bytes: %s %.300s, want the route's 401", maxTargetBytes, resp.Status, body)
	}
	// A short target with too much header is still the 431.
	if resp, body := get("/v1/servers", map[string]string{"X-Big": strings.Repeat("a", 70<<10)}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge ||
		!strings.Contains(string(body), `"headers_too_large"`) {
		t.Fatalf("70 KiB of headers: %s %.300s, want the JSON 431", resp.Status, body)
	}

	// Past net/http's own cut (twice the header limit): its answer, not ours.
	got, err := rawExchange(t, base, "GET "+query(200<<10)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a 200 KiB target: the connection is still open after 10 s (read %.300q)", got)
	}
	if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 431 ") {
		t.Fatalf("a 200 KiB target answered:\n%.300s", got)
	}
	if resp, _ := get("/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the 200 KiB target, /healthz: %s", resp.Status)
	}
}
