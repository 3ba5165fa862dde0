package audit

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// moneyRig is a rig whose coordinators' clock the test moves (the
// operators' --test-clock-file, README "A test-only clock"), with the
// renewal job sweeping every 200 ms (invoice 7 days before the due date,
// suspension 3 days after it), and a loopback receiver subscribed to every
// event of account A.
type moneyRig struct {
	*rig
	setClock func(time.Duration)
	hooks    *framework.WebhookReceiver
}

func newMoneyRig(t *testing.T, extra ...string) *moneyRig {
	clock, set := framework.TestClock(t)
	flags := append([]string{"--test-clock-file", clock, "--renewal-interval", "200ms",
		"--renewal-invoice-days", "7", "--suspend-after-days", "3"}, extra...)
	m := &moneyRig{rig: newRig(t, flags...), setClock: set}
	m.hooks = framework.NewWebhookReceiver(t)
	if rep := m.call(0, m.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: m.hooks.URL + "/hook", Events: []string{"*"}}, nil); rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	return m
}

// at moves the coordinators' clock to d.
func (m *moneyRig) at(d time.Time) { m.setClock(time.Until(d)) }

// wait polls ok every 100 ms for up to 30 s.
func (m *moneyRig) wait(what string, ok func() bool) {
	m.t.Helper()
	framework.WaitFor(m.t, what, 30*time.Second, 100*time.Millisecond, ok)
}

// get GETs path with key through the leader (reads are the leader's
// unless asked otherwise) and decodes the 200 answer into v.
func (m *moneyRig) get(key, path string, v any) {
	m.t.Helper()
	rep := m.call(m.c.WaitLeader(20*time.Second), key, "GET", path, nil, nil)
	if rep.Status != 200 {
		m.t.Fatalf("%s", rep)
	}
	rep.Decode(m.t, v)
}

// invoices is key's invoices (the first 200).
func (m *moneyRig) invoices(key string) []api.Invoice {
	m.t.Helper()
	var l struct {
		Data []api.Invoice `json:"data"`
	}
	m.get(key, "/v1/billing/invoices?limit=200", &l)
	return l.Data
}

// invoice is one of key's invoices.
func (m *moneyRig) invoice(key, id string) api.Invoice {
	m.t.Helper()
	var inv api.Invoice
	m.get(key, "/v1/billing/invoices/"+id, &inv)
	return inv
}

// txs is key's wallet transactions (the latest 200).
func (m *moneyRig) txs(key string) []api.WalletTransaction {
	m.t.Helper()
	var l struct {
		Data []api.WalletTransaction `json:"data"`
	}
	m.get(key, "/v1/billing/wallet/transactions?limit=200", &l)
	return l.Data
}

func (m *moneyRig) balance(key string) int64 {
	m.t.Helper()
	var w api.Wallet
	m.get(key, "/v1/billing/wallet", &w)
	return w.BalanceUsdCents
}

func (m *moneyRig) server(key, id string) api.Server {
	m.t.Helper()
	var s api.Server
	m.get(key, "/v1/servers/"+id, &s)
	return s
}

func (m *moneyRig) hostingAcc(key, id string) api.HostingAccount {
	m.t.Helper()
	var h api.HostingAccount
	m.get(key, "/v1/hosting/"+id, &h)
	return h
}

// unpaid counts key's unpaid invoices.
func (m *moneyRig) unpaid(key string) int {
	m.t.Helper()
	n := 0
	for _, inv := range m.invoices(key) {
		if inv.Status == api.InvoiceUnpaid {
			n++
		}
	}
	return n
}

// delivered counts the receiver's deliveries of typ whose data[field] is id.
func (m *moneyRig) delivered(typ api.WebhookEvent, field, id string) int {
	n := 0
	for _, d := range m.hooks.Deliveries(string(typ)) {
		if d.Data[field] == id {
			n++
		}
	}
	return n
}

// orderServer buys a vps-a server for A and waits for its provisioning.
func (m *moneyRig) orderServer(label string) api.ServerOrder {
	m.t.Helper()
	var o api.ServerOrder
	rep := m.call(0, m.keyA, "POST", "/v1/servers", serverBody(label), nil)
	if rep.Status != 201 {
		m.t.Fatalf("server order: %s", rep)
	}
	rep.Decode(m.t, &o)
	framework.WaitActionSuccess(m.t, m.apis[0].Client(m.keyA), o.Action.ID, 60*time.Second)
	return o
}

// orderHosting buys a web-a hosting account for A and waits until it is active.
func (m *moneyRig) orderHosting(user string) api.HostingOrder {
	m.t.Helper()
	var o api.HostingOrder
	rep := m.call(0, m.keyA, "POST", "/v1/hosting", hostingBody(user), nil)
	if rep.Status != 201 {
		m.t.Fatalf("hosting order: %s", rep)
	}
	rep.Decode(m.t, &o)
	m.wait("the hosting account active", func() bool { return m.hostingAcc(m.keyA, o.Hosting.ID).Status == api.HostingActive })
	return o
}
