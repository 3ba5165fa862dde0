package orders

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRenewalsThroughProcesses: renewals on three coordinator processes
// whose clock the test moves (--test-clock-file, tests only), the leader's
// renewal job sweeping every 200 ms, the scripted agent answering the
// stops: two bought servers get their renewal invoices 7 days before
// paid_until (one each), the wallet pays one on the due date; the leader is
// SIGKILLed; 3 days after the due date the new leader suspends the unpaid
// one (stopped by the agent, start refused 409 suspended); a top-up pays it
// and lifts the suspension (start works again). One invoice per server and
// period throughout: 4 invoices, no payment twice. A loopback webhook
// receiver gets server.suspended and server.unsuspended exactly once each,
// for that server, though a second leader is SIGKILLed between the two (once
// the suspension's delivery is recorded) and the first killed node restarted.
func TestRenewalsThroughProcesses(t *testing.T) {
	clock, setClock := framework.TestClock(t)
	r := newRig(t, "--test-clock-file", clock, "--renewal-interval", "200ms", "--renewal-invoice-days", "7", "--suspend-after-days", "3")
	hooks, hookID := r.hooks(api.EventServerSuspended, api.EventServerUnsuspended)
	r.credit(3 * price)
	// The customer's writes carry an Idempotency-Key: pkg/client then sends
	// one again after a 503 an election answers (on a loaded machine), as
	// the README's retry policy says.
	var srv [2]api.ServerOrder
	for i := range srv {
		o, err := r.api(i).OrderServer(r.ctx, order(i), fmt.Sprintf("renewal-order-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		r.waitAction(o.Action.ID)
		srv[i] = o
	}
	due := *srv[1].Server.PaidUntil // the later of the two
	at := func(d time.Time) { setClock(time.Until(d)) }
	// Read from the leader (one of the three is killed on the way).
	cl := func() *client.Client { return r.c.Client(r.c.WaitLeader(20*time.Second), r.key) }
	invoices := func() []api.Invoice { t.Helper(); return firstPage(r, cl().Invoices) }
	servers := func() []api.Server { t.Helper(); return r.serversAt(cl()) }
	balance := func() int64 { t.Helper(); return r.balanceAt(cl()) }
	unpaid := func() int {
		n := 0
		for _, inv := range invoices() {
			if inv.Status == api.InvoiceUnpaid {
				n++
			}
		}
		return n
	}

	// 7 days before: the two renewal invoices, once each.
	at(due.AddDate(0, 0, -7).Add(time.Hour))
	waitFor(t, "two renewal invoices", func() bool { return len(invoices()) == 4 })
	time.Sleep(time.Second) // five more sweeps
	if n := len(invoices()); n != 4 || unpaid() != 2 {
		t.Fatalf("%d invoices, %d unpaid; want 4 and 2", n, unpaid())
	}

	// The due date: the wallet (one renewal's worth) pays one.
	at(due.Add(time.Hour))
	waitFor(t, "one renewal paid", func() bool { return unpaid() == 1 })
	if b := balance(); b != 0 {
		t.Fatalf("balance %d after the renewal, want 0", b)
	}

	// The leader dies; the new one suspends the unpaid server 3 days on.
	first := r.c.WaitLeader(10 * time.Second)
	r.c.Kill(first)
	at(due.AddDate(0, 0, 3).Add(time.Hour))
	var suspended api.Server
	waitFor(t, "the unpaid server suspended and stopped", func() bool {
		for _, s := range servers() {
			if s.Status == api.ServerStopped {
				suspended = s
				return true
			}
		}
		return false
	})
	_, err := cl().PowerServer(r.ctx, suspended.ID, "start", nil, "renewal-start-suspended")
	if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, "unpaid") {
		t.Fatalf("start of the suspended server: %d %s", st, msg)
	}
	for _, s := range servers() {
		if s.ID != suspended.ID && (s.Status != api.ServerRunning || !s.PaidUntil.After(due.AddDate(0, 0, 20))) {
			t.Fatalf("the paid server %+v", s)
		}
	}

	// server.suspended delivered and its delivery recorded; the first
	// killed node back, then this leader killed too.
	delivered := func(typ api.WebhookEvent) int { t.Helper(); return deliveries(t, hooks, typ, "serverId", suspended.ID) }
	waitFor(t, "server.suspended delivered", func() bool { return delivered(api.EventServerSuspended) == 1 })
	waitFor(t, "server.suspended delivery recorded", func() bool {
		l, err := cl().WebhookDeliveries(r.ctx, hookID, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range l.Data {
			if a.EventType == string(api.EventServerSuspended) && a.DeliveryStatus == api.DeliverySucceeded {
				return true
			}
		}
		return false
	})
	r.c.Restart(first)
	r.c.Kill(r.c.WaitLeader(10 * time.Second))

	// A top-up (retried while the election runs: 503 changes nothing) pays
	// the renewal and lifts the suspension, once.
	waitFor(t, "the top-up", func() bool {
		_, err := r.c.Admin(r.c.WaitLeader(20*time.Second)).CreditWallet(r.ctx, r.acc, api.WalletCreditRequest{AmountUsdCents: price, Gateway: "test"})
		if st, msg := status(err); st != http.StatusCreated && st != http.StatusServiceUnavailable {
			t.Fatalf("top-up: %d %s", st, msg)
		}
		return err == nil
	})
	waitFor(t, "the renewal paid by the top-up", func() bool { return unpaid() == 0 })
	acc, err := cl().PowerServer(r.ctx, suspended.ID, "start", nil, "renewal-start-after-top-up")
	if err != nil {
		t.Fatalf("start after the top-up: %v", err)
	}
	waitFor(t, "the start after the top-up", func() bool {
		a, err := cl().Action(r.ctx, acc.Action.ID)
		return err == nil && a.Status == api.ActionSuccess
	})
	time.Sleep(time.Second)
	if n, b := len(invoices()), balance(); n != 4 || b != 0 {
		t.Fatalf("%d invoices, balance %d at the end; want 4 and 0", n, b)
	}
	paid := perInvoice(firstPage(r, cl().WalletTransactions), api.TxInvoicePayment)
	if len(paid) != 4 {
		t.Fatalf("payments %v, want one for each of 4 invoices", paid)
	}
	waitFor(t, "server.unsuspended delivered", func() bool { return delivered(api.EventServerUnsuspended) >= 1 })
	time.Sleep(2 * time.Second) // a repeat would come within the 1 s retry
	if s, u := delivered(api.EventServerSuspended), delivered(api.EventServerUnsuspended); s != 1 || u != 1 {
		t.Fatalf("deliveries: server.suspended %d, server.unsuspended %d; want 1 and 1: %+v", s, u, hooks.Deliveries(""))
	}
	for inv, n := range paid {
		if n != 1 {
			t.Fatalf("invoice %s paid %d times", inv, n)
		}
	}
}

// TestHostingRenewalWebhooks: a hosting account bought with the wallet's
// last cents is not renewed (nothing left to pay with); 3 days after its due
// date the leader suspends it (status suspended) and a loopback receiver
// gets hosting.suspended once; a top-up pays the renewal, the account is
// active again and hosting.unsuspended arrives once. Both for that account.
func TestHostingRenewalWebhooks(t *testing.T) {
	clock, setClock := framework.TestClock(t)
	r := newRig(t, "--test-clock-file", clock, "--renewal-interval", "200ms", "--renewal-invoice-days", "7", "--suspend-after-days", "3")
	r.hostingProduct()
	hooks, _ := r.hooks(api.EventHostingSuspended, api.EventHostingUnsuspended)
	r.credit(hostingPrice)
	o, err := r.api(0).OrderHosting(r.ctx, hostingOrder("renew"), "renewal-hosting-order")
	if err != nil {
		t.Fatal(err)
	}
	id := o.Hosting.ID
	r.waitHosting(id, "active", func(h api.HostingAccount) bool { return h.Status == api.HostingActive })
	delivered := func(typ api.WebhookEvent) int { t.Helper(); return deliveries(t, hooks, typ, "hostingId", id) }

	setClock(time.Until(o.Hosting.PaidUntil.AddDate(0, 0, 3).Add(time.Hour)))
	r.waitHosting(id, "suspended", func(h api.HostingAccount) bool { return h.Status == api.HostingSuspended })
	waitFor(t, "hosting.suspended delivered", func() bool { return delivered(api.EventHostingSuspended) >= 1 })

	r.credit(hostingPrice)
	r.waitHosting(id, "active after the top-up", func(h api.HostingAccount) bool { return h.Status == api.HostingActive })
	waitFor(t, "hosting.unsuspended delivered", func() bool { return delivered(api.EventHostingUnsuspended) >= 1 })
	time.Sleep(2 * time.Second) // a repeat would come within the 1 s retry
	if s, u := delivered(api.EventHostingSuspended), delivered(api.EventHostingUnsuspended); s != 1 || u != 1 {
		t.Fatalf("deliveries: hosting.suspended %d, hosting.unsuspended %d; want 1 and 1: %+v", s, u, hooks.Deliveries(""))
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d at the end, want 0 (the renewal paid once)", b)
	}
}

// waitFor polls ok every 100 ms for up to 30 s.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	framework.WaitFor(t, what, 30*time.Second, 100*time.Millisecond, ok)
}

// deliveries counts the receiver's deliveries of typ; each must carry
// data[key] == id.
func deliveries(t testing.TB, hooks *framework.WebhookReceiver, typ api.WebhookEvent, key, id string) int {
	t.Helper()
	n := 0
	for _, d := range hooks.Deliveries(string(typ)) {
		if d.Data[key] != id {
			t.Fatalf("%s delivery for another %s: %s", typ, key, d.Body)
		}
		n++
	}
	return n
}
