package audit

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// refunds is what key's wallet shows refunded, per invoice.
func (m *moneyRig) refunds(key string) map[string]int64 {
	m.t.Helper()
	out := map[string]int64{}
	for _, tx := range m.txs(key) {
		if tx.Type == api.TxRefund {
			out[tx.InvoiceID] += tx.AmountUsdCents
		}
	}
	return out
}

// credited is the credits (negative payments) on an invoice.
func credited(inv api.Invoice) int64 {
	var n int64
	for _, p := range inv.Payments {
		if p.AmountUsdCents < 0 {
			n -= p.AmountUsdCents
		}
	}
	return n
}

// proRata is README's refund: the unused whole days of a period
// [start, end) left at now, pro rata to what the period cost.
func proRata(price int64, start, end, now time.Time) int64 {
	const day = 24 * time.Hour
	period := int64((end.Sub(start) + day/2) / day)
	unused := min(int64(end.Sub(now)/day), period)
	return price * unused / period
}

// cancelServer is the customer's DELETE of a server, waited for.
func (m *moneyRig) cancelServer(id string) {
	m.t.Helper()
	m.accepted(m.t, "cancel", m.keyA, m.write(0, m.keyA, "DELETE", "/v1/servers/"+id, nil), 60*time.Second)
}

// TestMoneyCancelRefundsThePeriodPaidFor: a server renewed once from the
// wallet (its second month paid by the renewal invoice), then cancelled a
// week before that month ends, after the next renewal invoice was issued:
// README's refund policy gives back the unused whole days pro rata, as a
// credit on that period's invoice (the renewal that paid it, not the
// order's invoice of a month long used up), and the unpaid renewal becomes
// void. The refund is once: the wallet shows one refund, of that amount.
func TestMoneyCancelRefundsThePeriodPaidFor(t *testing.T) {
	m := newMoneyRig(t)
	o, id, first := m.twoMonthsServer("renewed")

	m.at(first.Add(time.Hour))
	var second time.Time
	m.wait("the first renewal paid", func() bool {
		s := m.server(m.keyA, id)
		second = *s.PaidUntil
		return s.PaidUntil.After(first)
	})
	var renewal api.Invoice
	for _, inv := range m.invoices(m.keyA) {
		if inv.ID != o.Invoice.ID {
			renewal = inv
		}
	}
	if renewal.Status != api.InvoicePaid || renewal.TotalUsdCents != serverPrice || m.balance(m.keyA) != 0 {
		t.Fatalf("after the first renewal: invoice %+v, balance %d", renewal, m.balance(m.keyA))
	}

	now := second.AddDate(0, 0, -7).Add(time.Hour)
	m.at(now)
	m.wait("the next renewal invoice", func() bool { return m.unpaid(m.keyA) == 1 })
	m.cancelServer(id)
	want := proRata(serverPrice, first, second, now.Add(time.Minute)) // the deletion ends within a minute
	if got := m.refunds(m.keyA); len(got) != 1 || got[renewal.ID] != want {
		t.Fatalf("refunds per invoice %v; want %d cents on the renewal %s that paid the month (the order's invoice is %s)", got, want, renewal.ID, o.Invoice.ID)
	}
	if c := credited(m.invoice(m.keyA, renewal.ID)); c != want {
		t.Fatalf("the renewal invoice shows %d cents credited, want %d", c, want)
	}
	if c := credited(m.invoice(m.keyA, o.Invoice.ID)); c != 0 {
		t.Fatalf("the order's invoice, whose month is over, shows %d cents credited", c)
	}
	for _, inv := range m.invoices(m.keyA) {
		if inv.ID != o.Invoice.ID && inv.ID != renewal.ID && inv.Status != api.InvoiceVoid {
			t.Fatalf("the renewal issued before the cancel: %s, want void", inv.Status)
		}
	}
	if b := m.balance(m.keyA); b != want {
		t.Fatalf("balance %d, want the refund %d", b, want)
	}
}

// TestMoneyCancelRefundsEveryPeriodPaidFor: a renewal paid ahead of its due
// date (an operator's payment, POST /admin/invoices/{id}/pay), then the
// server cancelled a week before the current month ends: the customer paid
// for that month and the next, and gets back the unused whole days of
// both — the next month in full on its invoice, the current month's unused
// days on the order's invoice.
func TestMoneyCancelRefundsEveryPeriodPaidFor(t *testing.T) {
	m := newMoneyRig(t)
	o, id, first := m.twoMonthsServer("prepaid")

	now := first.AddDate(0, 0, -7).Add(time.Hour)
	m.at(now)
	m.wait("the renewal invoice", func() bool { return m.unpaid(m.keyA) == 1 })
	var renewal api.Invoice
	for _, inv := range m.invoices(m.keyA) {
		if inv.Status == api.InvoiceUnpaid {
			renewal = inv
		}
	}
	if _, err := m.c.Leader().Admin().PayInvoice(m.ctx, renewal.ID); err != nil {
		t.Fatalf("the operator's payment: %v", err)
	}
	second := *m.server(m.keyA, id).PaidUntil
	if !second.After(first) || m.balance(m.keyA) != 0 {
		t.Fatalf("after paying ahead: paid until %s (was %s), balance %d", second, first, m.balance(m.keyA))
	}
	m.cancelServer(id)
	wantNext := int64(serverPrice)
	wantNow := proRata(serverPrice, o.Invoice.DueAt, first, now.Add(time.Minute))
	if got := m.refunds(m.keyA); len(got) != 2 || got[renewal.ID] != wantNext || got[o.Invoice.ID] != wantNow {
		t.Fatalf("refunds per invoice %v; want %d on the next month's %s and %d on the current month's %s", got, wantNext, renewal.ID, wantNow, o.Invoice.ID)
	}
	if b := m.balance(m.keyA); b != wantNext+wantNow {
		t.Fatalf("balance %d, want %d", b, wantNext+wantNow)
	}
}
