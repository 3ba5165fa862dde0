package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// handleLoops counts srv's handler goroutines (by the receiver in their
// stack traces, so other tests' channels do not count).
func handleLoops(srv *channelServer) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fmt.Sprintf("httpapi.(*channelServer).handleLoop(%p", srv))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestChannelHandlerEndsWhenIdle: a handler goroutine kept for the next
// forwarded request ends once it has waited handlerIdle for one (it does not
// stay for the channel's life), and a request after that is still answered,
// by a goroutine started for it.
func TestChannelHandlerEndsWhenIdle(t *testing.T) {
	c, srv := channelEnds(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.URL.Path))
	}))
	ask := func(path string) {
		t.Helper()
		resp, err := c.roundTrip(context.Background(), "POST", "l", path, http.Header{}, nil)
		if err != nil || resp.Status != http.StatusOK || string(resp.Body) != path {
			t.Fatalf("%s: %+v %v", path, resp, err)
		}
	}
	ask("/v1/first")
	if n := handleLoops(srv); n != 1 {
		t.Fatalf("%d handler goroutines after one answered request, want 1 kept for the next", n)
	}
	deadline := time.Now().Add(handlerIdle + 5*time.Second)
	for handleLoops(srv) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a handler goroutine still waits %v after its last request (it should end after %v idle)", handlerIdle+5*time.Second, handlerIdle)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ask("/v1/after-idle")
	if n := handleLoops(srv); n != 1 {
		t.Fatalf("%d handler goroutines after a request that followed an idle end, want 1", n)
	}
}
