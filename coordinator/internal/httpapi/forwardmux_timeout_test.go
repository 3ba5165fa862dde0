package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestChannelWaitEndsAtTheTimeout: a request the leader does not answer in
// time gets the timeout error after the channel's timeout (not before it, and
// long before the default 30 s), the leader's handler sees its request
// cancelled, and the channel goes on carrying other requests, answered as
// before.
func TestChannelWaitEndsAtTheTimeout(t *testing.T) {
	h, cancelled := neverAnswering(http.StatusOK)
	const timeout = 600 * time.Millisecond
	c, _ := channelEndsWaiting(t, h, nil, timeout)

	// Bounded, so a wait the watch never ends fails the test in 10 s with
	// the error it met instead of hanging the package until -timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.roundTrip(ctx, "POST", "l", "/v1/never", http.Header{}, nil)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting the leader's answer") {
		t.Fatalf("unanswered request: %v, want the timeout error", err)
	}
	// Not before the timeout; after it within the watch's tick, but a busy
	// machine (-race, other tests) may run the watch late: 5 s is far
	// from the 30 s of the channel's real timeout.
	if took < timeout || took > 5*time.Second {
		t.Errorf("the wait ended after %v, want %v to 5s", took, timeout)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the leader's handler was not cancelled")
	}
	for _, path := range []string{"/v1/a", "/v1/b"} {
		resp, err := c.roundTrip(context.Background(), "POST", "l", path, http.Header{}, nil)
		if err != nil || resp.Status != http.StatusOK || string(resp.Body) != path {
			t.Fatalf("%s after the timeout: %+v, %v", path, resp, err)
		}
	}
}
