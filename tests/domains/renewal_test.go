package domains

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// count is how many deliveries of typ for domain id the receiver got.
func count(r *framework.WebhookReceiver, typ, id string) int {
	n := 0
	for _, h := range r.Deliveries(typ) {
		if h.Data["domainId"] == id {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	framework.WaitFor(t, what, 45*time.Second, 100*time.Millisecond, ok)
}

// TestDomainRenewalsThroughProcesses: three coordinator processes whose
// clock the test moves (--test-clock-file, tests only), the leader's renewal
// job sweeping every 200 ms, renewing 30 days before expiry. Of two domains,
// the auto-renewing one is paid from the wallet and renewed at the registry
// once although the leader is SIGKILLed after the registry renewed it and
// before it recorded so (the next leader repeats the call with the same
// clTRID): one payment, one applied domain:renew, one domain.renewed, and the
// expiry moved by a year on both sides. The other (auto-renew off) gets one
// domain.expiring reminder 45 days before and is neither charged nor renewed.
func TestDomainRenewalsThroughProcesses(t *testing.T) {
	clock, setClock := framework.TestClock(t)
	r := newRigFlags(t, []string{"--test-clock-file", clock, "--renewal-interval", "200ms", "--domain-renew-days", "30", "--domain-reminder-days", "45"})
	hooks := framework.NewWebhookReceiver(t)
	if rep := r.call(-1, "POST", "/v1/webhooks", fmt.Sprintf(`{"url":%q,"events":["domain.renewed","domain.expiring"]}`, hooks.URL), nil); rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	r.credit(3 * yearly)
	auto, manual := r.registered("auto.test"), r.registered("manual.test")
	if !auto.AutoRenew {
		t.Fatalf("auto-renew is off by default: %+v", auto)
	}
	if rep := r.call(-1, "PATCH", "/v1/domains/"+manual.ID, `{"auto_renew":false}`, nil); rep.Status != 200 {
		t.Fatalf("auto-renew off: %s", rep)
	}
	if b := r.balance(); b != yearly {
		t.Fatalf("balance %d after two registrations, want %d", b, yearly)
	}
	exp := *auto.ExpiresAt

	// 40 days before expiry: the 45-day reminder of manual.test; nothing
	// renewed yet.
	setClock(time.Until(exp.AddDate(0, 0, -40)))
	waitFor(t, "the reminder of manual.test", func() bool { return count(hooks, "domain.expiring", manual.ID) == 1 })
	if b := r.balance(); b != yearly || r.reg.Applied("domain:renew", "auto.test") != 0 {
		t.Fatalf("renewed 40 days before expiry (renewal window 30 days): balance %d", b)
	}
	renewsBefore := r.reg.Stats()

	// The leader will die after the registry renewed, before the end is
	// recorded.
	li := r.c.WaitLeader(20 * time.Second)
	leader := r.c.Nodes[li]
	if err := os.WriteFile(failpointFile(leader), []byte("domainreg:after-call"), 0o600); err != nil {
		t.Fatal(err)
	}
	// 29 days before expiry: within the renewal window.
	setClock(time.Until(exp.AddDate(0, 0, -29)))
	select {
	case <-leader.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not reach the failpoint after the renewal call")
	}
	r.c.Kill(li)
	t.Logf("leader %s killed after the registry renewed auto.test", leader.ID)

	want := exp.AddDate(1, 0, 0)
	waitFor(t, "auto.test renewed by the next leader", func() bool {
		d := r.domain(auto.ID)
		return d.ExpiresAt != nil && d.ExpiresAt.Equal(want) && d.Status == api.DomainActive
	})
	waitFor(t, "one domain.renewed", func() bool { return count(hooks, "domain.renewed", auto.ID) == 1 })
	time.Sleep(2 * time.Second) // ten more sweeps, on the new leader

	if got := r.registry("auto.test").ExDate; !got.Equal(want) {
		t.Fatalf("registry expiry %s, want %s", got, want)
	}
	if n := r.reg.Applied("domain:renew", "auto.test"); n != 1 {
		t.Fatalf("the registry applied %d renewals of auto.test, want 1: %+v", n, r.reg.Transactions("domain:renew", "auto.test"))
	}
	if st := r.reg.Stats(); st.Applied-renewsBefore.Applied != 1 {
		t.Fatalf("the registry applied %d commands, want 1 (the renewal): %+v", st.Applied-renewsBefore.Applied, st)
	}
	if n := len(r.reg.Transactions("domain:renew", "manual.test")); n != 0 {
		t.Fatalf("manual.test (auto-renew off) sent to the registry for renewal %d times", n)
	}
	if d := r.domain(manual.ID); !d.ExpiresAt.Equal(*manual.ExpiresAt) {
		t.Fatalf("manual.test expiry moved: %+v", d)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d after one renewal, want 0", b)
	}
	if n, m := count(hooks, "domain.renewed", auto.ID), count(hooks, "domain.expiring", manual.ID); n != 1 || m != 1 {
		t.Fatalf("%d domain.renewed, %d domain.expiring; want one each", n, m)
	}
	if n := count(hooks, "domain.expiring", auto.ID) + count(hooks, "domain.renewed", manual.ID); n != 0 {
		t.Fatalf("%d stray events", n)
	}
	var txs api.Page[api.WalletTransaction]
	r.call(-1, "GET", "/v1/billing/wallet/transactions?limit=100", "", nil).Decode(t, &txs)
	paid := 0
	for _, tx := range txs.Data {
		if tx.Type == api.TxInvoicePayment {
			paid++
		}
	}
	if paid != 3 { // two registrations, one renewal
		t.Fatalf("%d invoice payments, want 3: %+v", paid, txs.Data)
	}
}
