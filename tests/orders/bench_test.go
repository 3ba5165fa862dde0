package orders

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkOrdersVsTickets measures POST /v1/servers (debit + invoice +
// server + placement + action in one command) against POST /v1/tickets on
// the same three coordinator processes, in alternating rounds of 20 calls
// from 8 clients spread over the coordinators, and reports both rates and
// their ratio (the issue aims at orders ≥ 0.8× tickets).
//
//	go test ./tests/orders -run '^$' -bench OrdersVsTickets -benchtime 1x
func BenchmarkOrdersVsTickets(b *testing.B) {
	r := newRig(b)
	const rounds, per, clients = 3, 20, 8 // 60 servers of 1 vCPU: the scripted node sells 64
	r.credit(int64(b.N*rounds*per) * price)
	var orders, tickets float64
	n := 0
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for round := 0; round < rounds; round++ {
			t, err := rate(per, clients, func(i int) error {
				_, err := r.api(i).CreateTicket(r.ctx, api.TicketCreateRequest{Subject: "s", Message: "m", Department: "technical", Priority: "low"}, "")
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			o, err := rate(per, clients, func(i int) error {
				_, err := r.api(i).OrderServer(r.ctx, order(n*per+i), "")
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			n++
			orders, tickets = orders+o, tickets+t
		}
	}
	b.ReportMetric(orders/float64(n), "orders/s")
	b.ReportMetric(tickets/float64(n), "tickets/s")
	b.ReportMetric(orders/tickets, "orders/tickets")
	b.Logf("orders %.0f/s, tickets %.0f/s, ratio %.2f", orders/float64(n), tickets/float64(n), orders/tickets)
}

// rate runs n calls of call from clients goroutines and returns calls/s.
func rate(n, clients int, call func(i int) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := call(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), firstErr
}
