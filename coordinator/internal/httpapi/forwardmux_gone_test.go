package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestChannelGoneCancelsItsRequests: when a follower's channel closes, the
// leader ends the context of every request it read from it and has not
// answered (as a closed client connection ends an HTTP request's).
func TestChannelGoneCancelsItsRequests(t *testing.T) {
	const n = 5
	started, ended := make(chan struct{}, n), make(chan bool, n)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			ended <- true
		case <-time.After(5 * time.Second): // the test's own bound
			ended <- false
		}
	})
	c, _ := channelEnds(t, h)
	for range n {
		go func() { _, _ = c.roundTrip(context.Background(), "POST", "leader:1", "/v1/wait", http.Header{}, nil) }()
	}
	for range n {
		<-started
	}
	c.fail(errors.New("the follower goes away"))
	for i := range n {
		if !<-ended {
			t.Fatalf("request %d of %d: its context still not done 5 s after its channel closed", i+1, n)
		}
	}
}
