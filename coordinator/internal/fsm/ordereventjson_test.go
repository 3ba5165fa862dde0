package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// checkOrderEventData: invoiceEventData and serverCreatedData write the
// bytes json.Marshal writes of the maps emit was given before them.
func checkOrderEventData(t testing.TB, inv store.Invoice, s store.Server) {
	t.Helper()
	for _, c := range []struct {
		name string
		got  []byte
		want any
	}{
		{"invoice.created", invoiceEventData(&inv, true), map[string]any{
			"invoiceId": inv.ID, "invoiceNumber": inv.Number, "status": inv.Status, "totalUsdCents": inv.TotalUsdCents, "currency": inv.Currency}},
		{"invoice.paid", invoiceEventData(&inv, false), map[string]any{
			"invoiceId": inv.ID, "invoiceNumber": inv.Number, "totalUsdCents": inv.TotalUsdCents, "currency": inv.Currency}},
		{"server.created", serverCreatedData(&s), map[string]any{"serverId": s.ID, "status": s.Status, "label": s.Label, "ipv4": primaryIPv4(s),
			"hostname": s.Hostname, "planSlug": s.Plan.Slug}},
	} {
		want, err := json.Marshal(c.want)
		if err != nil || !bytes.Equal(c.got, want) {
			t.Fatalf("%s data\n got %s\nwant %s (%v)", c.name, c.got, want, err)
		}
	}
}

func TestOrderEventDataMatchesEncodingJSON(t *testing.T) {
	inv := store.Invoice{Invoice: api.Invoice{ID: "inv_1", Number: "INV-2026-000001", Status: api.InvoicePaid, Currency: "USD", TotalUsdCents: 1200}}
	s := store.Server{Server: api.Server{ID: "srv_1", Label: "web", Hostname: "web.example.com", Status: api.ServerRunning, IPv4: "192.0.2.7/24",
		Plan: api.ServerPlan{Slug: "vps-1"}}}
	checkOrderEventData(t, inv, s)
	inv = store.Invoice{Invoice: api.Invoice{ID: `<i> "&"`, Number: "\u2028\xff", TotalUsdCents: -1}}
	s.IPv4, s.Label = "2001:db8::1", `<Ça> "x" \`
	checkOrderEventData(t, inv, s)
	checkOrderEventData(t, store.Invoice{}, store.Server{})
}

func FuzzOrderEventData(f *testing.F) {
	f.Add("inv_1", "INV-2026-000001", "paid", "USD", int64(1200), "srv_1", "web", "web.example.com", "running", "192.0.2.7/24", "vps-1")
	f.Add("<\"\\", "\xff\u2028", "", "x\x00", int64(-1), "", "Ça", "", "&", "::1", "")
	f.Fuzz(func(t *testing.T, invID, number, status, currency string, cents int64, srvID, label, hostname, srvStatus, ipv4, plan string) {
		inv := store.Invoice{Invoice: api.Invoice{ID: invID, Number: number, Status: status, Currency: currency, TotalUsdCents: cents}}
		s := store.Server{Server: api.Server{ID: srvID, Label: label, Hostname: hostname, Status: srvStatus, IPv4: ipv4, Plan: api.ServerPlan{Slug: plan}}}
		checkOrderEventData(t, inv, s)
	})
}

// TestInvoiceNumberMatchesSprintf: invoiceNumber writes what numberInvoice's
// fmt.Sprintf formats wrote.
func TestInvoiceNumberMatchesSprintf(t *testing.T) {
	for _, n := range []uint64{0, 1, 9, 10, 99_999, 123_456, 999_999, 1_000_000, 1<<64 - 1} {
		for _, year := range []int{2026, 0, 9, -44, 10_000} {
			if got, want := invoiceNumber(n, year, true), fmt.Sprintf("INV-%d-%06d", year, n); got != want {
				t.Errorf("invoiceNumber(%d, %d, true) = %q, want %q", n, year, got, want)
			}
		}
		if got, want := invoiceNumber(n, 2026, false), fmt.Sprintf("INV-%06d", n); got != want {
			t.Errorf("invoiceNumber(%d, false) = %q, want %q", n, got, want)
		}
	}
}
