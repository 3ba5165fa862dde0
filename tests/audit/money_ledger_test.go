package audit

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestMoneyLedgerUnderRaces, as two customers and an auditor see it:
// A owns two servers and B one, each bought with the wallet's last cents
// but B's, which holds one renewal more. B cancels its server (DELETE with
// an Idempotency-Key) just as the clock reaches its due date, racing the
// renewal job's payment: either the renewal is paid and its unused days
// come back, or it is void and nothing is paid; B's balance is what its
// wallet history says either way, and the DELETE replayed with the same key
// gives the first answer and refunds nothing more; a cancel of the
// cancelled server refunds nothing. A's two servers are suspended for
// non-payment (power-on a 409 naming the unpaid invoice), then two top-ups
// race through two coordinators: each renewal is paid once, each server
// lifted once (server.unsuspended once each). Throughout: invoice numbers
// are one gap-free sequence over both accounts, invoice.created and
// invoice.paid reach A's webhook once per invoice, every wallet balance
// after a transaction is the previous one plus its amount and never
// negative, and B sees none of A's invoices.
func TestMoneyLedgerUnderRaces(t *testing.T) {
	m := newMoneyRig(t)
	m.c.Credit(m.ctx, m.accA.ID, 2*serverPrice)
	var sA [2]api.ServerOrder
	for i := range sA {
		sA[i] = m.orderServer("a" + strconv.Itoa(i))
	}
	m.c.Credit(m.ctx, m.accB.ID, 2*serverPrice)
	var sb api.ServerOrder
	if rep := m.write(1, m.keyB, "POST", "/v1/servers", serverBody("b0")); rep.Status != 201 {
		t.Fatalf("B's order: %s", rep)
	} else {
		rep.Decode(t, &sb)
	}
	framework.WaitActionSuccess(t, m.apis[0].Client(m.keyB), sb.Action.ID, 60*time.Second)
	due := *sb.Server.PaidUntil // the latest of the three

	// The renewal invoices a week before; B's cancel races the due date's
	// payment.
	m.at(due.AddDate(0, 0, -7).Add(time.Hour))
	m.wait("the renewal invoices", func() bool { return m.unpaid(m.keyA) == 2 && m.unpaid(m.keyB) == 1 })
	cancelKey := map[string]string{"Idempotency-Key": "cancel-b0"}
	m.at(due.Add(time.Second))
	time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond) // before or after the next sweeps
	first := m.call(2, m.keyB, "DELETE", "/v1/servers/"+sb.Server.ID, nil, cancelKey)
	acc := m.accepted(t, "B's cancel", m.keyB, first, 60*time.Second)
	m.wait("B's renewal paid or void", func() bool { return m.unpaid(m.keyB) == 0 })
	var renewal api.Invoice
	for _, inv := range m.invoices(m.keyB) {
		if inv.ID != sb.Invoice.ID {
			renewal = inv
		}
	}
	refundsB := m.refunds(m.keyB)
	switch renewal.Status {
	case api.InvoicePaid: // paid first, then cancelled within its first day
		want := proRata(serverPrice, due, due.AddDate(0, 1, 0), due.Add(time.Minute))
		if len(refundsB) != 1 || refundsB[renewal.ID] != want || m.balance(m.keyB) != want {
			t.Fatalf("B cancelled after paying the renewal: refunds %v, balance %d; want %d back", refundsB, m.balance(m.keyB), want)
		}
	case api.InvoiceVoid: // cancelled first: nothing paid, nothing to refund
		if len(refundsB) != 0 || m.balance(m.keyB) != serverPrice {
			t.Fatalf("B cancelled before the renewal's payment: refunds %v, balance %d; want none and %d", refundsB, m.balance(m.keyB), serverPrice)
		}
	default:
		t.Fatalf("B's renewal after the cancel: %+v", renewal)
	}
	t.Logf("the race's renewal ended %s", renewal.Status)
	balB := m.balance(m.keyB)
	replay := m.call(0, m.keyB, "DELETE", "/v1/servers/"+sb.Server.ID, nil, cancelKey)
	if replay.Status != 202 || replay.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(replay.Body), acc.Action.ID) {
		t.Fatalf("the cancel replayed with its key: %s, want the first answer", replay)
	}
	if again := m.call(1, m.keyB, "DELETE", "/v1/servers/"+sb.Server.ID, nil, nil); again.Status != 409 && again.Status != 404 {
		t.Fatalf("a cancel of the cancelled server: %s, want 409 or 404", again)
	}
	time.Sleep(time.Second)
	if b := m.balance(m.keyB); b != balB {
		t.Fatalf("B's balance moved from %d to %d after the replayed and repeated cancels", balB, b)
	}

	// A's servers, unpaid, are suspended 3 days on.
	m.at(due.AddDate(0, 0, 3).Add(time.Hour))
	for _, o := range sA {
		m.wait("server.suspended", func() bool { return m.delivered(api.EventServerSuspended, "serverId", o.Server.ID) == 1 })
		m.wait("the server stopped", func() bool { return m.server(m.keyA, o.Server.ID).Status == api.ServerStopped })
		if rep := m.call(1, m.keyA, "POST", "/v1/servers/"+o.Server.ID+"/power/start", nil, nil); rep.Status != 409 || rep.Code() != "suspended" || !strings.Contains(string(rep.Body), "unpaid") {
			t.Fatalf("start of a server suspended for non-payment: %s", rep)
		}
	}
	// Two top-ups at once, through two coordinators.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if _, err := m.c.Admin(i).CreditWallet(m.ctx, m.accA.ID, api.WalletCreditRequest{AmountUsdCents: serverPrice, Gateway: "test"}); err != nil {
				t.Errorf("top-up %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	m.wait("A's renewals paid", func() bool { return m.unpaid(m.keyA) == 0 })
	for _, o := range sA {
		m.wait("server.unsuspended", func() bool { return m.delivered(api.EventServerUnsuspended, "serverId", o.Server.ID) == 1 })
		if rep := m.call(1, m.keyA, "POST", "/v1/servers/"+o.Server.ID+"/power/start", nil, nil); rep.Status != 202 {
			t.Fatalf("start after paying: %s", rep)
		}
	}
	time.Sleep(2 * time.Second) // ten sweeps; a repeated event would come within the 1 s retry
	if b := m.balance(m.keyA); b != 0 {
		t.Fatalf("A's balance %d, want 0", b)
	}

	// The auditor's checks.
	invA, invB := m.invoices(m.keyA), m.invoices(m.keyB)
	if len(invA) != 4 || len(invB) != 2 {
		t.Fatalf("%d invoices for A, %d for B; want 4 and 2", len(invA), len(invB))
	}
	var numbers []int
	for _, inv := range slices.Concat(invA, invB) {
		n, err := strconv.Atoi(inv.Number[strings.LastIndex(inv.Number, "-")+1:])
		if err != nil || !strings.HasPrefix(inv.Number, "INV-") {
			t.Fatalf("invoice number %q", inv.Number)
		}
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	for i, n := range numbers {
		if n != numbers[0]+i {
			t.Fatalf("invoice numbers %v are not one gap-free sequence", numbers)
		}
	}
	for _, inv := range invA {
		created, paid := m.delivered(api.EventInvoiceCreated, "invoiceId", inv.ID), m.delivered(api.EventInvoicePaid, "invoiceId", inv.ID)
		if created != 1 || (inv.Status == api.InvoicePaid) != (paid == 1) || paid > 1 {
			t.Errorf("invoice %s (%s): invoice.created %d, invoice.paid %d", inv.Number, inv.Status, created, paid)
		}
		var payments int
		for _, p := range inv.Payments {
			if p.AmountUsdCents > 0 {
				payments++
			}
		}
		if payments != 1 {
			t.Errorf("invoice %s paid %d times: %+v", inv.Number, payments, inv.Payments)
		}
	}
	for who, key := range map[string]string{"A": m.keyA, "B": m.keyB} {
		txs := m.txs(key)
		slices.Reverse(txs) // oldest first
		var bal int64
		for _, tx := range txs {
			bal += tx.AmountUsdCents
			if tx.BalanceAfterUsdCents != bal || bal < 0 {
				t.Fatalf("%s's wallet: %+v after a balance of %d; history: %+v", who, tx, bal-tx.AmountUsdCents, txs)
			}
		}
		if b := m.balance(key); b != bal {
			t.Fatalf("%s's balance %d, its history adds up to %d", who, b, bal)
		}
	}
	for _, inv := range invA {
		if rep := m.call(0, m.keyB, "GET", "/v1/billing/invoices/"+inv.ID, nil, nil); rep.Status != 404 {
			t.Fatalf("B reads A's invoice: %s", rep)
		}
		for _, b := range invB {
			if b.ID == inv.ID {
				t.Fatalf("B's list holds A's invoice %s", inv.ID)
			}
		}
	}
}
