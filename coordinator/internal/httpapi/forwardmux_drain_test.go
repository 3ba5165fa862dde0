package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestChannelDrainAnswersWhatItRead: a leader shutting down (drain, as
// CloseForwarding does) still answers the forwarded request a handler is
// serving, then closes the channel; a handler goroutine left idle by an
// earlier request ends with the channel instead of holding the close up for
// its idle time (handlerIdle).
func TestChannelDrainAnswersWhatItRead(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	c, srv := channelEnds(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/slow" {
			close(started)
			<-release
		}
		_, _ = w.Write([]byte(r.URL.Path))
	}))
	type answer struct {
		resp *fwdResponse
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		resp, err := c.roundTrip(context.Background(), "POST", "l", "/v1/slow", http.Header{}, nil)
		slow <- answer{resp, err}
	}()
	<-started
	// Served by a second handler goroutine (the first is busy), which then
	// waits idle for the next request.
	if resp, err := c.roundTrip(context.Background(), "POST", "l", "/v1/fast", http.Header{}, nil); err != nil || string(resp.Body) != "/v1/fast" {
		t.Fatalf("a request beside a busy handler: %+v %v", resp, err)
	}
	srv.drain()
	released := time.Now()
	close(release)
	if a := <-slow; a.err != nil || a.resp.Status != http.StatusOK || string(a.resp.Body) != "/v1/slow" {
		t.Fatalf("the request in flight at the drain: %+v %v, want its answer", a.resp, a.err)
	}
	select {
	case <-srv.finished:
	case <-time.After(handlerIdle / 2):
		t.Fatalf("the drained channel still open %v after its last answer (an idle handler goroutine waits %v)", time.Since(released), handlerIdle)
	}
}
