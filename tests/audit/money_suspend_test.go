package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMoneyPaymentKeepsCustomersOwnSuspension: a customer suspends their
// own hosting account (POST /v1/hosting/{id}/suspend), then does not pay
// its renewal, so 3 days after the due date the renewal job suspends it for
// non-payment too (hosting.suspended; the customer's unsuspend is a 409
// naming the unpaid invoice). A top-up pays the renewal and lifts the
// suspension for non-payment (hosting.unsuspended, once) — and only that:
// README says a payment lifts "a suspension for non-payment", so the
// account stays suspended as its owner left it until the owner unsuspends
// it, which then works.
func TestMoneyPaymentKeepsCustomersOwnSuspension(t *testing.T) {
	m := newMoneyRig(t)
	m.c.Credit(m.ctx, m.accA.ID, hostingPrice)
	o := m.orderHosting("ownsusp")
	id := o.Hosting.ID
	if rep := m.write(0, m.keyA, "POST", "/v1/hosting/"+id+"/suspend", nil); rep.Status != 202 {
		t.Fatalf("the customer's suspend: %s", rep)
	}
	m.wait("suspended by its owner", func() bool { return m.hostingAcc(m.keyA, id).Status == api.HostingSuspended })

	m.at(o.Hosting.PaidUntil.AddDate(0, 0, 3).Add(time.Hour))
	m.wait("hosting.suspended for non-payment", func() bool { return m.delivered(api.EventHostingSuspended, "hostingId", id) == 1 })
	rep := m.call(0, m.keyA, "POST", "/v1/hosting/"+id+"/unsuspend", nil, nil)
	if rep.Status != 409 || rep.Code() != "suspended" || !strings.Contains(string(rep.Body), "unpaid") {
		t.Fatalf("the customer's unsuspend while the renewal is unpaid: %s, want 409 suspended naming the unpaid invoice", rep)
	}

	m.c.Credit(m.ctx, m.accA.ID, hostingPrice)
	m.wait("the renewal paid by the top-up", func() bool { return m.unpaid(m.keyA) == 0 })
	m.wait("hosting.unsuspended", func() bool { return m.delivered(api.EventHostingUnsuspended, "hostingId", id) == 1 })
	time.Sleep(2 * time.Second) // ten sweeps, and any action they opened run by the agent
	if h := m.hostingAcc(m.keyA, id); h.Status != api.HostingSuspended {
		t.Fatalf("after the payment the account is %s: the payment lifted the suspension its owner asked for", h.Status)
	}
	if rep := m.call(0, m.keyA, "POST", "/v1/hosting/"+id+"/unsuspend", nil, nil); rep.Status != 202 {
		t.Fatalf("the owner's unsuspend after paying: %s", rep)
	}
	m.wait("active again", func() bool { return m.hostingAcc(m.keyA, id).Status == api.HostingActive })
	if s, u := m.delivered(api.EventHostingSuspended, "hostingId", id), m.delivered(api.EventHostingUnsuspended, "hostingId", id); s != 1 || u != 1 {
		t.Fatalf("hosting.suspended %d, hosting.unsuspended %d; want 1 and 1", s, u)
	}
	if b := m.balance(m.keyA); b != 0 {
		t.Fatalf("balance %d, want 0 (one order, one renewal)", b)
	}
}

// TestMoneyOperatorUnsuspendKeepsNonPayment: two servers go unpaid. One,
// suspended for non-payment, is suspended by an operator too (abuse); the
// other was suspended by the operator before its due date. Each
// operator's unsuspend lifts the operator's suspension only (README: "An
// operator cannot lift a suspension for non-payment (paying does)"): the
// answer says the server is still suspended for non-payment, the
// customer's start stays a 409 naming the unpaid invoice, and no
// server.unsuspended fires until a top-up pays the renewals, which lifts
// each (once) and lets the owner start them.
func TestMoneyOperatorUnsuspendKeepsNonPayment(t *testing.T) {
	m := newMoneyRig(t)
	m.c.Credit(m.ctx, m.accA.ID, 2*serverPrice)
	o, early := m.orderServer("opsusp"), m.orderServer("early")
	id := o.Server.ID
	start := func(id string) (int, string) {
		rep := m.call(0, m.keyA, "POST", "/v1/servers/"+id+"/power/start", nil, nil)
		return rep.Status, string(rep.Body)
	}
	adm := m.c.Leader().Admin()
	if s, err := adm.Suspend(m.ctx, "servers", early.Server.ID, "abuse report 6"); err != nil || !s.Suspended {
		t.Fatalf("the operator's suspend before the due date: %+v %v", s, err)
	}

	m.at(early.Server.PaidUntil.AddDate(0, 0, 3).Add(time.Hour))
	m.wait("server.suspended for non-payment", func() bool { return m.delivered(api.EventServerSuspended, "serverId", id) == 1 })
	m.wait("the server stopped", func() bool { return m.server(m.keyA, id).Status == api.ServerStopped })
	adm = m.c.Leader().Admin()
	if s, err := adm.Suspend(m.ctx, "servers", id, "abuse report 7"); err != nil || !s.Suspended || s.By != "operator" {
		t.Fatalf("the operator's suspend: %+v %v", s, err)
	}
	if st, body := start(id); st != 409 || !strings.Contains(body, "abuse report 7") {
		t.Fatalf("start under the operator's suspension: %d %s", st, body)
	}
	time.Sleep(time.Second) // five sweeps past the early one's due date + 3
	for _, sid := range []string{id, early.Server.ID} {
		s, err := adm.Unsuspend(m.ctx, "servers", sid)
		if err != nil || !s.Suspended || s.By != "non_payment" || !strings.Contains(s.Reason, "unpaid") {
			t.Fatalf("the operator's unsuspend of %s, whose renewal is unpaid: %+v %v, want it still suspended for non-payment", sid, s, err)
		}
		if st, body := start(sid); st != 409 || !strings.Contains(body, "unpaid") {
			t.Fatalf("start after the operator's unsuspend, renewal unpaid: %d %s, want 409 naming the unpaid invoice", st, body)
		}
	}
	time.Sleep(time.Second) // five sweeps
	for _, sid := range []string{id, early.Server.ID} {
		if n := m.delivered(api.EventServerUnsuspended, "serverId", sid); n != 0 {
			t.Fatalf("server.unsuspended delivered %d times while the renewal is unpaid", n)
		}
	}

	m.c.Credit(m.ctx, m.accA.ID, 2*serverPrice)
	m.wait("the renewals paid by the top-up", func() bool { return m.unpaid(m.keyA) == 0 })
	for _, sid := range []string{id, early.Server.ID} {
		m.wait("server.unsuspended", func() bool { return m.delivered(api.EventServerUnsuspended, "serverId", sid) == 1 })
		if st, body := start(sid); st != 202 {
			t.Fatalf("start after paying: %d %s", st, body)
		}
	}
	time.Sleep(time.Second)
	// The non-payment suspension, the operator's, and the lift by payment;
	// for the early one the operator's and the lift.
	if s, u := m.delivered(api.EventServerSuspended, "serverId", id), m.delivered(api.EventServerUnsuspended, "serverId", id); s != 2 || u != 1 {
		t.Fatalf("server.suspended %d, server.unsuspended %d; want 2 and 1", s, u)
	}
	if s, u := m.delivered(api.EventServerSuspended, "serverId", early.Server.ID), m.delivered(api.EventServerUnsuspended, "serverId", early.Server.ID); s != 1 || u != 1 {
		t.Fatalf("the early one: server.suspended %d, server.unsuspended %d; want 1 and 1", s, u)
	}
}
