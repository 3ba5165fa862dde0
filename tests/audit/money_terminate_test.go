package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMoneySuspendedThenTerminated: with --terminate-after-days 6, A's two
// servers and a hosting account go unpaid. 3 days after the due date each
// is suspended once (server.suspended / hosting.suspended): a server's
// start, reboot, reinstall and snapshot revert are 409 suspended naming the
// unpaid invoice while a snapshot still works, the hosting account's
// unsuspend is a 409 too. A cancels one suspended server: nothing comes
// back (its paid month is over) and its renewal invoice becomes void. 6
// days after the due date the renewal job terminates the other server
// (server.terminated once) and deletes the hosting account; their renewal
// invoices are void, no refund was made, nothing was charged, and a cancel
// of the terminated server changes nothing.
func TestMoneySuspendedThenTerminated(t *testing.T) {
	m := newMoneyRig(t, "--terminate-after-days", "6")
	m.c.Credit(m.ctx, m.accA.ID, 2*serverPrice+hostingPrice)
	s1, s2 := m.orderServer("t1"), m.orderServer("t2")
	h := m.orderHosting("termd")
	due := *h.Hosting.PaidUntil // the latest

	m.at(due.AddDate(0, 0, 3).Add(time.Hour))
	for _, s := range []api.ServerOrder{s1, s2} {
		m.wait("server.suspended", func() bool { return m.delivered(api.EventServerSuspended, "serverId", s.Server.ID) == 1 })
		m.wait("stopped", func() bool { return m.server(m.keyA, s.Server.ID).Status == api.ServerStopped })
	}
	m.wait("hosting.suspended", func() bool { return m.delivered(api.EventHostingSuspended, "hostingId", h.Hosting.ID) == 1 })
	m.wait("the hosting account suspended", func() bool { return m.hostingAcc(m.keyA, h.Hosting.ID).Status == api.HostingSuspended })
	srv := "/v1/servers/" + s1.Server.ID
	snap := m.call(0, m.keyA, "POST", srv+"/snapshots", map[string]any{"name": "before-paying"}, nil)
	sa := m.accepted(t, "a snapshot of a suspended server", m.keyA, snap, 30*time.Second)
	for _, c := range []struct {
		path string
		body any
	}{
		{srv + "/power/start", nil}, {srv + "/power/reboot", nil},
		{srv + "/reinstall", map[string]any{"osTemplate": "base", "os": "base"}},
		{srv + "/snapshots/" + sa.Snapshot.ID + "/revert", map[string]any{}},
		{"/v1/hosting/" + h.Hosting.ID + "/unsuspend", nil},
	} {
		if rep := m.call(1, m.keyA, "POST", c.path, c.body, nil); rep.Status != 409 || rep.Code() != "suspended" || !strings.Contains(string(rep.Body), "unpaid") {
			t.Errorf("POST %s while suspended: %s, want 409 suspended naming the unpaid invoice", c.path, rep)
		}
	}

	// A cancels s2 while it is suspended.
	m.cancelServer(s2.Server.ID)

	m.at(due.AddDate(0, 0, 6).Add(time.Hour))
	m.wait("server.terminated", func() bool { return m.delivered(api.EventServerTerminated, "serverId", s1.Server.ID) == 1 })
	m.wait("the hosting account deleted", func() bool { return m.hostingAcc(m.keyA, h.Hosting.ID).Status == api.HostingDeleted })
	if rep := m.call(0, m.keyA, "DELETE", srv, nil, nil); rep.Status != 409 && rep.Status != 404 {
		t.Fatalf("a cancel of the terminated server: %s", rep)
	}
	time.Sleep(2 * time.Second) // ten sweeps
	for _, s := range []api.ServerOrder{s1, s2} {
		if n := m.delivered(api.EventServerTerminated, "serverId", s.Server.ID); n != 1 {
			t.Errorf("server.terminated for %s: %d, want 1", s.Server.ID, n)
		}
		if n := m.delivered(api.EventServerSuspended, "serverId", s.Server.ID); n != 1 {
			t.Errorf("server.suspended for %s: %d, want 1", s.Server.ID, n)
		}
	}
	orders := map[string]bool{s1.Invoice.ID: true, s2.Invoice.ID: true, h.Invoice.ID: true}
	invs := m.invoices(m.keyA)
	if len(invs) != 6 {
		t.Fatalf("%d invoices, want 3 orders and 3 renewals", len(invs))
	}
	for _, inv := range invs {
		if want := map[bool]string{true: api.InvoicePaid, false: api.InvoiceVoid}[orders[inv.ID]]; inv.Status != want || credited(inv) != 0 {
			t.Errorf("invoice %s: %s with %d credited; want %s, nothing credited", inv.Number, inv.Status, credited(inv), want)
		}
	}
	if r := m.refunds(m.keyA); len(r) != 0 {
		t.Fatalf("refunds %v, want none (every paid month was used)", r)
	}
	if b := m.balance(m.keyA); b != 0 {
		t.Fatalf("balance %d, want 0", b)
	}
}
