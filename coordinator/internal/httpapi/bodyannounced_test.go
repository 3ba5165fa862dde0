package httpapi

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestAnnouncedBodyOverLimit: a request whose Content-Length already exceeds
// the route's body limit (1 MiB for JSON) is answered 413 at once, before any
// body byte arrives, not after the body read timeout (408).
func TestAnnouncedBodyOverLimit(t *testing.T) {
	w := newWHAPI(t)
	_, key := w.account(api.ScopeTicketsWrite)
	conn, err := net.Dial("tcp", strings.TrimPrefix(w.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
		"\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 1 s of the headers announcing 2000000 bytes (none sent): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("answer after %v: %s, want 413", time.Since(start), resp.Status)
	}
}
