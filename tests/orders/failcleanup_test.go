package orders

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestFailedProvisionFreesItsRoom: a customer's order whose provisioning
// fails on the node (the scripted node fails a server.provision for a
// fail- hostname, as the real agent does when the template is gone) is
// refunded once, and what the server held comes back without anyone
// terminating it (default customer keys cannot): the node's room, and the
// pool's one IPv4 address and the IPv6 /64, after their quarantine as a
// terminate releases them. The customer still sees the server, terminated,
// and why (the failed provisioning action, with the refund). Events: no
// server.created, one server.terminated.
func TestFailedProvisionFreesItsRoom(t *testing.T) {
	const quarantine = 4
	r := newRig(t)
	adm := r.c.AnyAlive(nil).Admin()
	for _, pool := range []api.IPPoolCreateRequest{
		{Name: "pub4", CIDR: "198.51.100.0/30", Gateway: "198.51.100.1", QuarantineSeconds: quarantine}, // .2 is the one address
		{Name: "pub6", CIDR: "2001:db8:1::/63", Gateway: "fe80::1", PrefixLen: 64, QuarantineSeconds: quarantine},
	} {
		if _, err := adm.CreateIPPool(r.ctx, pool); err != nil {
			t.Fatalf("pool %s: %v", pool.Name, err)
		}
	}
	rc, _ := r.hooks(api.WebhookEvent("*"))
	r.credit(2 * price)
	node := "orders-node-1"
	used0, err := adm.AgentNodeDetail(r.ctx, node)
	if err != nil {
		t.Fatal(err)
	}

	req := order(1)
	req.Hostname = "fail-1"
	o, err := r.api(0).OrderServer(r.ctx, req, "")
	if err != nil {
		t.Fatal(err)
	}
	id := o.Server.ID
	if !strings.HasPrefix(o.Server.IPv4, "198.51.100.2") {
		t.Fatalf("the order holds %q, want the pool's one address", o.Server.IPv4)
	}
	// The provisioning fails and is refunded, with the reason.
	framework.WaitFor(t, "the provisioning action failed", 30*time.Second, 100*time.Millisecond, func() bool {
		a, err := r.api(1).Action(r.ctx, o.Action.ID)
		return err == nil && a.Status == api.ActionFailed
	})
	act, err := r.api(1).Action(r.ctx, o.Action.ID)
	if err != nil || act.Error == nil || !strings.Contains(act.Error.Message, "unknown template") || !strings.Contains(act.Error.Message, "900 cents were refunded") {
		t.Fatalf("failed provisioning %+v %v", act, err)
	}

	// Without a terminate from anyone, the server ends terminated and its
	// room is back.
	var s api.Server
	framework.WaitFor(t, "the failed server is cleaned up", 30*time.Second, 100*time.Millisecond, func() bool {
		s, err = r.api(2).Server(r.ctx, id)
		return err == nil && s.Status == api.ServerTerminated
	})
	if s.TerminatedAt == nil || s.PaidUntil != nil || s.ActionID != "" {
		t.Fatalf("cleaned-up server %+v", s)
	}
	found := false
	for _, v := range r.servers() {
		found = found || v.ID == id
	}
	if !found {
		t.Fatalf("the failed server is not in the customer's list")
	}
	if ips, err := r.api(0).ServerIPs(r.ctx, id); err != nil || len(ips.Data) != 0 {
		t.Fatalf("a cleaned-up server lists addresses: %+v %v", ips, err)
	}
	det, err := adm.AgentNodeDetail(r.ctx, node)
	if err != nil || det.Used != used0.Used {
		t.Fatalf("node room after the cleanup: %+v %v, want %+v as before the order", det.Used, err, used0.Used)
	}
	for _, name := range []string{"pub4", "pub6"} {
		if p, err := adm.IPPool(r.ctx, name); err != nil || p.Usage.Used != 0 || p.Usage.Quarantined != 1 {
			t.Fatalf("%s after the cleanup: %+v %v, want its address in quarantine", name, p.Usage, err)
		}
	}
	cleaned := time.Now()

	// Refunded once, the invoice credited once.
	if b := r.balance(); b != 2*price {
		t.Fatalf("balance %d, want %d", b, 2*price)
	}
	if n := perInvoice(firstPage(r, r.api(0).WalletTransactions), api.TxRefund); len(n) != 1 || n[o.Invoice.ID] != 1 {
		t.Fatalf("refunds per invoice %v, want one of %s", n, o.Invoice.ID)
	}
	inv, err := r.api(2).Invoice(r.ctx, o.Invoice.ID)
	if err != nil || len(inv.Payments) != 2 || inv.Payments[1].AmountUsdCents != -price {
		t.Fatalf("refunded invoice %+v %v", inv, err)
	}

	// After the quarantine the next order gets the address and provisions.
	time.Sleep(time.Until(cleaned.Add(quarantine*time.Second + 500*time.Millisecond)))
	next, err := r.api(1).OrderServer(r.ctx, order(2), "")
	if err != nil {
		t.Fatalf("an order after the quarantine: %v", err)
	}
	if !strings.HasPrefix(next.Server.IPv4, "198.51.100.2") {
		t.Fatalf("the next order holds %q, want 198.51.100.2 again", next.Server.IPv4)
	}
	framework.WaitActionSuccess(t, r.api(0), next.Action.ID, 30*time.Second)

	// Events: one server.terminated for the failed server, never a
	// server.created for it; the invoice's two once.
	rc.Wait(t, "server.created", 20*time.Second, func(d map[string]any) bool { return d["serverId"] == next.Server.ID })
	time.Sleep(time.Second) // a late duplicate would be here by now
	count, seen := map[string]int{}, map[string]bool{}
	for _, d := range rc.Deliveries("") {
		if (d.Data["serverId"] == id || d.Data["invoiceId"] == o.Invoice.ID) && !seen[d.ID] { // a retried delivery is the same event
			seen[d.ID] = true
			count[d.Type]++
		}
	}
	if count["server.terminated"] != 1 || count["server.created"] != 0 || count["invoice.created"] != 1 || count["invoice.paid"] != 1 {
		t.Fatalf("events of the failed order %v", count)
	}
}
