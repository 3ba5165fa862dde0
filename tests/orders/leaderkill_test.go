package orders

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// orderAnswered sends order n with its Idempotency-Key until a coordinator
// answers it, as a customer would: a connection error, a 5xx or a 409 (the
// key's first request still in flight) is retried on the next coordinator
// with the same key; any other refusal fails the test.
func (r *rig) orderAnswered(n int, key string, deadline time.Time) (api.ServerOrder, int) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		o, err := r.api(n+attempt).OrderServer(ctx, order(n), key)
		cancel()
		if err == nil {
			return o, attempt
		}
		st, msg := status(err)
		if st == http.StatusBadRequest || st == http.StatusPaymentRequired || st == http.StatusUnprocessableEntity || st == http.StatusForbidden {
			r.t.Errorf("order %d (key %s): %d %s", n, key, st, msg)
			return o, attempt
		}
		if time.Now().After(deadline) {
			r.t.Errorf("order %d (key %s) unanswered: %d %s", n, key, st, msg)
			return o, attempt
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOrdersAcrossLeaderKill: a stream of orders from 6 customers' clients
// (each order with its own Idempotency-Key, retried on another coordinator
// until answered) while the leader is SIGKILLed: every order is answered
// once, each answered order exists once with its paid invoice and its
// single wallet payment, there is no payment without a server nor a server
// without its payment, the balance is the deposit less the answered
// charges, every server is provisioned by the agent (reconnected to the new
// leader), and every key replayed against the new leader answers the same
// server and invoice (without the password).
func TestOrdersAcrossLeaderKill(t *testing.T) {
	r := newRig(t)
	const clients, perClient = 6, 5
	const total = clients * perClient
	deposit := int64(total*price + 123)
	r.credit(deposit)

	oldLeader := r.c.WaitLeader(10 * time.Second)
	var answered atomic.Int32
	var mu sync.Mutex
	orders := map[string]api.ServerOrder{}
	retried := 0
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for k := 0; k < perClient; k++ {
				n := c*perClient + k
				key := fmt.Sprintf("kill-order-%d", n)
				o, attempts := r.orderAnswered(n, key, deadline)
				mu.Lock()
				orders[key] = o
				retried += attempts
				mu.Unlock()
				answered.Add(1)
			}
		})
	}
	// Kill the leader once a third of the stream is answered.
	for answered.Load() < total/3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	killedAt := answered.Load()
	r.c.Kill(oldLeader)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	newLeader := r.c.WaitLeader(20 * time.Second)
	t.Logf("leader %d killed after %d of %d orders were answered; %d retries; new leader %d", oldLeader, killedAt, total, retried, newLeader)
	if killedAt >= total {
		t.Fatal("the stream ended before the kill")
	}

	// Every answered order once: its server, its paid invoice.
	servers := map[string]bool{}
	invoices := map[string]bool{}
	for key, o := range orders {
		if o.Server.ID == "" || o.Invoice.ID == "" || o.Invoice.Status != api.InvoicePaid || o.Invoice.TotalUsdCents != price {
			t.Fatalf("%s answered %+v", key, o)
		}
		if servers[o.Server.ID] || invoices[o.Invoice.ID] {
			t.Fatalf("%s answered server %s / invoice %s, already answered for another key", key, o.Server.ID, o.Invoice.ID)
		}
		servers[o.Server.ID], invoices[o.Invoice.ID] = true, true
	}
	ls, err := r.c.Client(newLeader, r.key).Servers(r.ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Data) != total {
		t.Errorf("%d servers exist, %d orders were answered", len(ls.Data), total)
	}
	for _, s := range ls.Data {
		if !servers[s.ID] {
			t.Errorf("server %s exists but no answered order made it", s.ID)
		}
	}
	invs, err := r.c.Client(newLeader, r.key).Invoices(r.ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if invs.Total != total {
		t.Errorf("%d invoices, %d orders answered", invs.Total, total)
	}
	for _, inv := range invs.Data {
		if !invoices[inv.ID] || inv.Status != api.InvoicePaid || len(inv.Payments) != 1 {
			t.Errorf("invoice %+v", inv)
		}
	}
	// The wallet: one payment per answered order, nothing else but the deposit.
	paid := map[string]int{}
	var sum int64
	for _, tx := range firstPage(r, r.c.Client(newLeader, r.key).WalletTransactions) {
		switch tx.Type {
		case api.TxInvoicePayment:
			paid[tx.InvoiceID]++
			sum -= tx.AmountUsdCents
		case api.TxDeposit:
		default:
			t.Errorf("transaction %+v", tx)
		}
	}
	for inv := range invoices {
		if paid[inv] != 1 {
			t.Errorf("invoice %s paid %d times", inv, paid[inv])
		}
	}
	if len(paid) != total || sum != total*price {
		t.Errorf("%d invoices paid for %d cents; %d orders answered for %d", len(paid), sum, total, total*price)
	}
	w, err := r.c.Client(newLeader, r.key).Wallet(r.ctx)
	if err != nil || w.BalanceUsdCents != deposit-total*price {
		t.Fatalf("balance %d %v, want %d", w.BalanceUsdCents, err, deposit-total*price)
	}

	// Each key replayed against the new leader answers the same order.
	for key, o := range orders {
		var n int
		_, _ = fmt.Sscanf(key, "kill-order-%d", &n)
		again, err := r.c.Client(newLeader, r.key).OrderServer(r.ctx, order(n), key)
		if err != nil || again.Server.ID != o.Server.ID || again.Invoice.ID != o.Invoice.ID || again.RootPassword != "" {
			t.Fatalf("replay of %s on the new leader: %+v %v, want server %s", key, again, err, o.Server.ID)
		}
	}
	if w2, _ := r.c.Client(newLeader, r.key).Wallet(r.ctx); w2.BalanceUsdCents != w.BalanceUsdCents {
		t.Fatalf("the replays moved the balance: %d → %d", w.BalanceUsdCents, w2.BalanceUsdCents)
	}

	// The agent, back on the new leader, provisions every server.
	end := time.Now().Add(60 * time.Second)
	for {
		ls, err = r.c.Client(newLeader, r.key).Servers(r.ctx, 1, 100)
		running := 0
		for _, s := range ls.Data {
			if s.Status == api.ServerRunning {
				running++
			}
		}
		if err == nil && running == total {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %d servers running after the kill: %v", running, total, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
