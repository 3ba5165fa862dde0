package store

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
)

// checkInvoiceEncoding: whenever EncodeInvoice writes an invoice, it writes
// json.Marshal's bytes.
func checkInvoiceEncoding(t testing.TB, inv Invoice) (fast bool) {
	t.Helper()
	return codectest.Encoding(t, "EncodeInvoice", EncodeInvoice, inv)
}

func TestInvoiceEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	paid := Invoice{AccountID: "acc_1", Invoice: api.Invoice{ID: "inv_1", Number: "INV-2026-000001", Status: api.InvoicePaid, Currency: "USD", TotalUsdCents: 1200,
		CreatedAt: at, DueAt: at, PaidAt: &at,
		Lines:    []api.InvoiceLine{{Description: "VPS 1 (vps-1) server srv_1, 2026-12-01 to 2027-01-01", Quantity: 1, UnitPriceUsdCents: 1200, AmountUsdCents: 1200}},
		Payments: []api.Payment{{ID: "pay_1", Method: "wallet", AmountUsdCents: 1200, TransactionID: "wtx_1", CreatedAt: at}, {ID: "pay_2", Method: "wallet", AmountUsdCents: -1200, CreatedAt: at}}}}
	renewal := Invoice{AccountID: "acc_1", ServerID: "srv_1", HostingID: "h_1", Invoice: api.Invoice{ID: "inv_2", Status: api.InvoiceUnpaid, CreatedAt: at, DueAt: at,
		Lines: []api.InvoiceLine{{Description: "<ünï> \"q\" \u2028 \xff"}}, Payments: []api.Payment{}}}
	later := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	codectest.Paths(t, "invoice", func(inv Invoice) bool { return checkInvoiceEncoding(t, inv) },
		[]Invoice{paid, renewal, {}, {Invoice: api.Invoice{Lines: []api.InvoiceLine{}}}}, // UTC times
		[]Invoice{
			{Invoice: api.Invoice{CreatedAt: at.In(time.FixedZone("x", 3600))}},
			{Invoice: api.Invoice{PaidAt: &later}},
			{Invoice: api.Invoice{Payments: []api.Payment{{CreatedAt: later}}}},
		})
}

func FuzzEncodeInvoice(f *testing.F) {
	f.Add("inv_1", "INV-2026-000001", "paid", int64(1200), "VPS 1 (vps-1) server srv_1", int64(1764608645123456000), "wtx_1", uint8(7))
	f.Add("i<\"\\", "\xff\u2028", "x\x00", int64(-1), "", int64(-62135596800000000), "", uint8(0))
	f.Fuzz(func(t *testing.T, id, number, status string, cents int64, desc string, nanos int64, txID string, opts uint8) {
		at := time.Unix(0, nanos).UTC()
		inv := Invoice{AccountID: id, Invoice: api.Invoice{ID: id, Number: number, Status: status, Currency: txID, TotalUsdCents: cents, CreatedAt: at, DueAt: at.Add(time.Duration(cents))}}
		if opts&1 != 0 {
			inv.PaidAt = &at
		}
		if opts&2 != 0 {
			inv.Lines = []api.InvoiceLine{{Description: desc, Quantity: cents / 3, UnitPriceUsdCents: cents, AmountUsdCents: -cents}}
		}
		if opts&4 != 0 {
			inv.Payments = []api.Payment{{ID: id, Method: status, AmountUsdCents: cents, TransactionID: txID, CreatedAt: at}}
		}
		if opts&8 != 0 {
			inv.ServerID, inv.HostingID = desc, number
		}
		checkInvoiceEncoding(t, inv)
	})
}
