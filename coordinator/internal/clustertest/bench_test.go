package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkGetTicketsHandler measures the in-process cost of GET /v1/tickets
// (auth, rate limit, FSM read, encoding) without the network, against encoding
// the same page directly as the baseline.
func BenchmarkGetTicketsHandler(b *testing.B) {
	c := testcluster.New(b, 1, testcluster.WithRateLimit(100_000_000))
	_, key := c.NewAccount("bench@example.com")
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := c.Client(0, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprint("t", i), Message: "m"}, ""); err != nil {
			b.Fatal(err)
		}
	}
	h := c.Nodes[0].Server.APIHandler()
	req := httptest.NewRequest("GET", "/v1/tickets?limit=20", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkCreateTicketHandler measures POST /v1/tickets in-process on a single
// node (one Raft member: the fsync of the log dominates), run in parallel so
// Raft can batch.
func BenchmarkCreateTicketHandler(b *testing.B) {
	c := testcluster.New(b, 1, testcluster.WithRateLimit(100_000_000))
	_, key := c.NewAccount("bench@example.com")
	h := c.Nodes[0].Server.APIHandler()
	body := `{"subject":"bench","message":"benchmark ticket body","priority":"low"}`
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	cpu0 := proccpu.Self()
	defer func() { b.ReportMetric(float64((proccpu.Self()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op") }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/v1/tickets", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusCreated {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}
