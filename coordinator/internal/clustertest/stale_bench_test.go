package clustertest

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
)

// BenchmarkStaleRead measures GET /v1/account?consistency=stale in-process on
// the leader of a 3-node cluster (its own limiter) and on a follower (tokens
// leased from the leader's window; before leases, its own limiter): the
// follower's figure over the leader's, in the same run, is what serving a
// stale read on a follower costs more; leases/op the leader's lease requests
// per read (2 xx answers of POST /internal/ratelimit/lease on its /metrics).
func BenchmarkStaleRead(b *testing.B) {
	c := testcluster.New(b, 3, testcluster.WithRateLimit(100_000_000))
	_, key := c.NewAccount("bench@example.com")
	ld := c.WaitLeader(leaderWait)
	for _, bc := range []struct {
		name string
		node int
	}{{"leader", ld}, {"follower", (ld + 1) % 3}} {
		b.Run(bc.name, func(b *testing.B) {
			h := c.Nodes[bc.node].Server.APIHandler()
			get := func() int {
				req := httptest.NewRequest("GET", "/v1/account?consistency=stale", nil)
				req.Header.Set("Authorization", "Bearer "+key)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w.Code
			}
			for deadline := time.Now().Add(10 * time.Second); get() != http.StatusOK; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("node %d does not serve the key's stale reads", bc.node)
				}
			}
			leases0 := leases(b, c, ld)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if code := get(); code != http.StatusOK {
						b.Errorf("status %d", code)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(leases(b, c, ld)-leases0)/float64(b.N), "leases/op")
		})
	}
}

// leases is the count of leases node i granted (its /metrics).
func leases(b *testing.B, c *testcluster.Cluster, i int) int {
	b.Helper()
	n := 0
	for _, m := range leaseSeries.FindAllSubmatch(metrics(b, c, i), -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n
}

var leaseSeries = regexp.MustCompile(`(?m)^hostplane_http_requests_total\{[^}]*route="POST /internal/ratelimit/lease"[^}]*status="2\d\d"[^}]*\} (\d+)`)
