package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkForwardOnChannel: a follower forwards a ticket creation over its
// channel to a leader whose handler answers as the real one does (201, the
// usual headers, a ticket's JSON), and writes the answer; both ends are in this
// process, so the CPU reported (cpu-us/op, getrusage) is the channel's cost on
// both sides together, without the HTTP server's or the FSM's (plus the
// benchmark's own requests and recorders). frames/write-* is how many frames
// each end's writes carried on average.
func BenchmarkForwardOnChannel(b *testing.B) {
	answer := []byte(`{"id":"tkt_0123456789abcdef","account_id":"acc_0123456789abcdef","subject":"bench","status":"open","priority":"low","created_at":"2026-12-01T21:00:00Z","updated_at":"2026-12-01T21:00:00Z","messages":[{"author":"customer","body":"benchmark ticket body","created_at":"2026-12-01T21:00:00Z"}]}`)
	leader := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set(headerRequestID, r.Header.Get(headerRequestID))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Ratelimit-Limit", "1000000")
		h.Set("X-Ratelimit-Remaining", "999999")
		h.Set("X-Ratelimit-Reset", "1796158800")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(answer)
	})
	c, srv := channelEnds(b, leader)
	a := &API{cfg: Config{NodeID: "f1", ClusterSecret: "the-secret", Timeouts: DefaultTimeouts()}, log: slog.New(slog.DiscardHandler)}
	a.fwd = newForwarder(a)
	body := []byte(`{"subject":"bench","message":"benchmark ticket body","priority":"low"}`)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "http://f1:8080/v1/tickets", bytes.NewReader(body))
			r.Header.Set("Authorization", "Bearer snc_0123456789012345678901234567890123456789")
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("User-Agent", "Go-http-client/1.1")
			r.Header.Set("Accept-Encoding", "gzip")
			r.Header.Set(headerRequestID, "req_0123456789abcdef01234567")
			w := httptest.NewRecorder()
			w.Header().Set(headerRequestID, "req_0123456789abcdef01234567")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
			a.fwd.forwardOnChannel(w, r, "req_0123456789abcdef01234567", c, "leader:8080", nil)
			if w.Code != http.StatusCreated || w.Body.Len() != len(answer) {
				b.Fatalf("answer %d %q", w.Code, w.Body.Bytes())
			}
		}
	})
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()) - time.Duration(ru0.Utime.Nano()+ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	for _, end := range []struct {
		name string
		w    *frameWriter
	}{{"follower", c.w}, {"leader", srv.w}} {
		frames, writes := end.w.counts()
		if writes > 0 {
			b.ReportMetric(float64(frames)/float64(writes), "frames/write-"+end.name)
		}
	}
}
