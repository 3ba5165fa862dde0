package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkHandlerOrderVsTicket is issue 14's ratio in one process: POST
// /v1/servers (a server order, as tests/orders' benchmark sends it: its own
// Idempotency-Key, a wallet that pays) against POST /v1/tickets (the cluster
// benchmark's write, with an Idempotency-Key as tests/orders sends it), both
// through the API's whole handler (authentication, rate limit, decoding,
// placement, the command proposed to and applied by a single-node Raft
// member with its log and bbolt state on disk, the answer encoded) without a
// network between (ServeHTTP into a recorder). Each op is one order and one
// ticket, sent in alternating blocks of 16 so load on the machine falls on
// both alike; cpu-µs/order and cpu-µs/ticket are the process's CPU time
// (Raft's and the collector's work included) during each kind's blocks per
// request, user-µs/* its user part (without the kernel's, mostly the log's
// and bbolt's writes and fsyncs: a cut of the handlers' own work shows there
// undiluted; it is no steadier run to run on the shared machine, ±20 %),
// allocs/order and allocs/ticket the heap allocations, order/ticket-cpu and
// order/ticket-user the ratios. The figures grow slowly with -benchtime
// (bbolt's trees deepen: 775 allocs/order at 400x, 825 at 6000x): compare
// runs of the same Nx. No agent runs: the order's action waits, undispatched
// (the agent exchange is not counted).
//
// The sub-benchmarks order and ticket send only that kind, on a rig of
// their own, for profiles to compare: run both with the same -benchtime Nx
// and -cpuprofile, and `go tool pprof -top -diff_base ticket.pprof
// order.pprof` shows what an order costs beyond a ticket (a figure over N:
// per order).
func BenchmarkHandlerOrderVsTicket(b *testing.B) {
	b.Run("ratio", func(b *testing.B) { benchOrderVsTicket(b, true, true) })
	b.Run("order", func(b *testing.B) { benchOrderVsTicket(b, true, false) })
	b.Run("ticket", func(b *testing.B) { benchOrderVsTicket(b, false, true) })
}

// benchOrderVsTicket is BenchmarkHandlerOrderVsTicket's work: orders
// (orders), tickets (tickets) or both, each reporting its own figures.
func benchOrderVsTicket(b *testing.B, orders, tickets bool) {
	s := orderingAPI(b, "vps-b", api.AgentNodeCapacity{VCPUs: 1 << 20, MemoryBytes: 1 << 50, DiskBytes: 1 << 60})
	acc := s.newAccount()
	_, key := s.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeOrdersWrite, api.ScopeTicketsWrite}, RateLimitPerMin: 1 << 30})
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_bench", AccountID: acc, AmountUsdCents: 1_000_000_000_000})
	h := s.srv.Config.Handler
	ticketBody, _ := json.Marshal(api.TicketCreateRequest{Subject: "s", Message: "m", Department: "technical", Priority: "low"})
	post := func(path string, body []byte, idem string) {
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", idem)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.Bytes())
		}
	}
	order := func(n int) {
		body, _ := json.Marshal(api.ServerOrderRequest{PlanSlug: "vps-b", Label: fmt.Sprintf("web-%d", n), Hostname: fmt.Sprintf("web-%d", n), OSTemplate: "debian-12"})
		post("/v1/servers", body, fmt.Sprintf("bench-order-%d", n))
	}
	ticket := func(n int) { post("/v1/tickets", ticketBody, fmt.Sprintf("bench-ticket-%d", n)) }
	// One of each first: the first order's and ticket's one-time work
	// (placement's caches, the first bucket of each kind) is not counted.
	if orders {
		order(-1)
	}
	if tickets {
		ticket(-1)
	}

	var cpu, user [2]time.Duration
	var allocs [2]uint64
	var ms runtime.MemStats
	measure := func(k int, from, to int, f func(int)) {
		runtime.ReadMemStats(&ms)
		a0, c0, u0 := ms.Mallocs, proccpu.Self(), userCPU()
		for n := from; n < to; n++ {
			f(n)
		}
		cpu[k] += proccpu.Self() - c0
		user[k] += userCPU() - u0
		runtime.ReadMemStats(&ms)
		allocs[k] += ms.Mallocs - a0
	}
	const block = 16
	b.ResetTimer()
	for i := 0; i < b.N; i += block {
		to := min(b.N, i+block)
		if orders && (i/block%2 == 0 || !tickets) {
			measure(0, i, to, order)
		}
		if tickets {
			measure(1, i, to, ticket)
		}
		if orders && tickets && i/block%2 == 1 {
			measure(0, i, to, order)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(b.N) }
	if orders {
		b.ReportMetric(per(cpu[0]), "cpu-µs/order")
		b.ReportMetric(per(user[0]), "user-µs/order")
		b.ReportMetric(float64(allocs[0])/float64(b.N), "allocs/order")
	}
	if tickets {
		b.ReportMetric(per(cpu[1]), "cpu-µs/ticket")
		b.ReportMetric(per(user[1]), "user-µs/ticket")
		b.ReportMetric(float64(allocs[1])/float64(b.N), "allocs/ticket")
	}
	if orders && tickets {
		b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "order/ticket-cpu")
		b.ReportMetric(float64(user[0])/float64(user[1]), "order/ticket-user")
	}
}

// userCPU is the user CPU time this process has used so far (getrusage):
// proccpu.Self without the kernel's part.
func userCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano())
}
