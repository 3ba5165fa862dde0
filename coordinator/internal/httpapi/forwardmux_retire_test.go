package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestRetiredChannelClosesAfterItsLastWait: a follower's channel retired
// with a request in flight stays open for it, and closes once that last wait
// ends, whether by the leader's answer or by the caller giving up (abandon):
// a retired channel is not left open with nothing to carry.
func TestRetiredChannelClosesAfterItsLastWait(t *testing.T) {
	for _, end := range []string{"answer", "abandon"} {
		t.Run(end, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			c, _ := channelEnds(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = w.Write([]byte("answered"))
			}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type answer struct {
				resp *fwdResponse
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				resp, err := c.roundTrip(ctx, "POST", "l", "/v1/slow", http.Header{}, nil)
				got <- answer{resp, err}
			}()
			<-started
			c.retire()
			closedBy := func() error {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.err
			}
			if err := closedBy(); err != nil {
				t.Fatalf("retired with a request in flight: closed at once (%v)", err)
			}
			if end == "answer" {
				close(release)
				if a := <-got; a.err != nil || a.resp.Status != http.StatusOK || string(a.resp.Body) != "answered" {
					t.Fatalf("the request in flight at the retirement: %+v %v, want its answer", a.resp, a.err)
				}
			} else {
				cancel()
				if a := <-got; !errors.Is(a.err, context.Canceled) {
					t.Fatalf("the request given up: %+v %v, want context.Canceled", a.resp, a.err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for closedBy() == nil {
				if time.Now().After(deadline) {
					t.Fatalf("the retired channel still open 5s after its last wait ended (%s)", end)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := closedBy(); err.Error() != "forward channel retired" {
				t.Errorf("closed by %v, want the retirement", err)
			}
		})
	}
}
