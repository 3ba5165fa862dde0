package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// halfConn is the leader's end of a channel whose connection breaks in the
// middle of a write once armed: that write sends only the first half of what
// it was given, then the connection closes.
type halfConn struct {
	net.Conn
	armed atomic.Bool
	cut   chan int // the size of the write that was cut
}

func (c *halfConn) Write(b []byte) (int, error) {
	if !c.armed.Load() {
		return c.Conn.Write(b)
	}
	select {
	case c.cut <- len(b):
	default:
	}
	n, _ := c.Conn.Write(b[:len(b)/2])
	c.Conn.Close()
	return n, net.ErrClosed
}

// TestChannelBrokenMidBatch: with many forwarded writes in flight on one
// channel, the connection breaks in the middle of the leader's write of a
// batch of answers. Every request is answered once, through the follower's
// own path (forwardOnChannel): with its own answer when that arrived whole
// (never another's), else with the retryable 503 leader_unreachable and
// Retry-After at once, not after the 30 s wait for an answer; the broken
// channel takes no new request.
func TestChannelBrokenMidBatch(t *testing.T) {
	const n = 24
	var arrived atomic.Int32
	allIn := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(allIn)
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
	})

	hc := &halfConn{cut: make(chan int, 1)}
	c, _ := channelEndsOver(t, h, func(sc net.Conn) net.Conn { hc.Conn = sc; return hc })

	a := &API{cfg: Config{NodeID: "f1", ClusterSecret: "the-secret", Timeouts: DefaultTimeouts()}, log: slog.New(slog.DiscardHandler)}
	a.fwd = newForwarder(a)
	recs := make([]*httptest.ResponseRecorder, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := httptest.NewRequest("POST", fmt.Sprintf("http://f1/v1/n/%d", i), strings.NewReader(`{"subject":"s"}`))
			r.Header.Set("Content-Type", "application/json")
			recs[i] = httptest.NewRecorder()
			start := time.Now()
			a.fwd.forwardOnChannel(recs[i], r, fmt.Sprintf("req_%d", i), c, "leader:1", nil)
			took[i] = time.Since(start)
		})
	}
	select {
	case <-allIn:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d requests reached the leader", arrived.Load(), n)
	}
	// All n answers are ready at once: the leader sends them in few writes,
	// and the first of those is cut in half.
	hc.armed.Store(true)
	close(release)
	wg.Wait()
	select {
	case size := <-hc.cut:
		t.Logf("the leader's write of %d bytes was cut in half", size)
	default:
		t.Fatal("no write of the leader was cut")
	}

	var answered, failed int
	for i, w := range recs {
		switch w.Code {
		case http.StatusCreated:
			answered++
			if want := `{"path":"/v1/n/` + fmt.Sprint(i) + `"}`; w.Body.String() != want {
				t.Errorf("request %d: answer %q, want its own %q", i, w.Body.String(), want)
			}
		case http.StatusServiceUnavailable:
			failed++
			var e struct{ Code string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != "leader_unreachable" || w.Header().Get("Retry-After") != "1" {
				t.Errorf("request %d: 503 %q (Retry-After %q), want leader_unreachable with Retry-After: 1", i, w.Body.String(), w.Header().Get("Retry-After"))
			}
			if took[i] > 10*time.Second {
				t.Errorf("request %d: failed after %v, not when the channel broke", i, took[i])
			}
		default:
			t.Errorf("request %d: status %d %q", i, w.Code, w.Body.String())
		}
	}
	t.Logf("%d answered, %d failed", answered, failed)
	if failed == 0 {
		t.Error("no request failed although the answers' write was cut")
	}
	if c.usable() {
		t.Error("the broken channel is still offered for new requests")
	}
	if _, err := c.roundTrip(context.Background(), "POST", "l", "/v1/after", http.Header{}, nil); err == nil {
		t.Error("a request on the broken channel did not fail")
	}
}
