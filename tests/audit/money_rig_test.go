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
	if rep := m.write(0, m.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: m.hooks.URL + "/hook", Events: []string{"*"}}); rep.Status != 201 {
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
	m.rig.get(m.t, m.c.WaitLeader(20*time.Second), key, path, v)
}

// getAs is GET path as key on the leader, decoded as a T.
func getAs[T any](m *moneyRig, key, path string) T {
	m.t.Helper()
	var v T
	m.get(key, path, &v)
	return v
}

// listOf is a list answer's data.
type listOf[T any] struct {
	Data []T `json:"data"`
}

// invoices is key's invoices (the first 200).
func (m *moneyRig) invoices(key string) []api.Invoice {
	m.t.Helper()
	return getAs[listOf[api.Invoice]](m, key, "/v1/billing/invoices?limit=200").Data
}

// invoice is one of key's invoices.
func (m *moneyRig) invoice(key, id string) api.Invoice {
	m.t.Helper()
	return getAs[api.Invoice](m, key, "/v1/billing/invoices/"+id)
}

// txs is key's wallet transactions (the latest 200).
func (m *moneyRig) txs(key string) []api.WalletTransaction {
	m.t.Helper()
	return getAs[listOf[api.WalletTransaction]](m, key, "/v1/billing/wallet/transactions?limit=200").Data
}

func (m *moneyRig) balance(key string) int64 {
	m.t.Helper()
	return getAs[api.Wallet](m, key, "/v1/billing/wallet").BalanceUsdCents
}

func (m *moneyRig) server(key, id string) api.Server {
	m.t.Helper()
	return getAs[api.Server](m, key, "/v1/servers/"+id)
}

func (m *moneyRig) hostingAcc(key, id string) api.HostingAccount {
	m.t.Helper()
	return getAs[api.HostingAccount](m, key, "/v1/hosting/"+id)
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

// created posts body to path as A on coordinator 0 and decodes its 201
// answer into v; what names the request in a failure.
func (m *moneyRig) created(what, path string, body, v any) {
	m.t.Helper()
	rep := m.write(0, m.keyA, "POST", path, body)
	if rep.Status != 201 {
		m.t.Fatalf("%s: %s", what, rep)
	}
	rep.Decode(m.t, v)
}

// orderServer buys a vps-a server for A and waits for its provisioning.
func (m *moneyRig) orderServer(label string) api.ServerOrder {
	m.t.Helper()
	var o api.ServerOrder
	m.created("server order", "/v1/servers", serverBody(label), &o)
	framework.WaitActionSuccess(m.t, m.apis[0].Client(m.keyA), o.Action.ID, 60*time.Second)
	return o
}

// twoMonthsServer credits A two months of a server and orders one
// (orderServer): the order, the server's id and the end of its first month.
func (m *moneyRig) twoMonthsServer(label string) (o api.ServerOrder, id string, first time.Time) {
	m.t.Helper()
	m.c.Credit(m.ctx, m.accA.ID, 2*serverPrice)
	o = m.orderServer(label)
	return o, o.Server.ID, *o.Server.PaidUntil
}

// orderHosting buys a web-a hosting account for A and waits until it is active.
func (m *moneyRig) orderHosting(user string) api.HostingOrder {
	m.t.Helper()
	var o api.HostingOrder
	m.created("hosting order", "/v1/hosting", hostingBody(user), &o)
	m.wait("the hosting account active", func() bool { return m.hostingAcc(m.keyA, o.Hosting.ID).Status == api.HostingActive })
	return o
}
