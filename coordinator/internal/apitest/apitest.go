// Package apitest builds the pkg/api values that tests of several packages
// (fsm among them, so it imports no FSM) use as fixtures.
package apitest

import (
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// PaidServerOrder is what an order of the plan vps-1 paid from the wallet
// answers, as of at: the server "web" (provisioning, paid a month ahead,
// an IPv4 and an IPv6 address in fra-1), its pending provisioning action and
// its paid invoice of 900 cents. Every id ends in id (srv_<id>, act_<id>,
// inv_<id>, pay_<id>, wtx_<id>); there is no root password.
func PaidServerOrder(at time.Time, id string) api.ServerOrder {
	until := at.AddDate(0, 1, 0)
	paid := at
	srv := "srv_" + id
	return api.ServerOrder{
		Server: api.Server{ID: srv, Label: "web", Hostname: "web.example.com", Status: api.ServerProvisioning,
			Plan: api.ServerPlan{Slug: "vps-1", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, OSTemplate: "debian-12", OS: "debian",
			IPv4: "198.51.100.10/24", IPv6: "2001:db8:0:5::1/64", Location: "fra-1", ActionID: "act_" + id, CreatedAt: at, UpdatedAt: at, PaidUntil: &until},
		Action: api.Action{ID: "act_" + id, Command: api.ActionServerProvision, Status: api.ActionPending, ResourceType: "server", ResourceID: srv, CreatedAt: at},
		Invoice: api.Invoice{ID: "inv_" + id, Number: "INV-2026-000001", Status: api.InvoicePaid, Currency: "USD", TotalUsdCents: 900, CreatedAt: at, DueAt: at, PaidAt: &paid,
			Lines: []api.InvoiceLine{{Description: "VPS 1 (vps-1) server " + srv + ", " + at.Format(time.DateOnly) + " to " + until.Format(time.DateOnly),
				Quantity: 1, UnitPriceUsdCents: 900, AmountUsdCents: 900}},
			Payments: []api.Payment{{ID: "pay_" + id, Method: "wallet", AmountUsdCents: 900, TransactionID: "wtx_" + id, CreatedAt: at}}},
	}
}
