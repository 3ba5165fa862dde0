package fsm

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Order commands after the first ones (issue 14) use type numbers 340-359
// (append-only).
const (
	CmdHostingOrder CommandType = 340
)

// HostingOrder is a hosting account bought from the wallet, in one command:
// the account's effective price of the hosting product at apply time, the
// paid invoice, the account placed (Create, as CmdHostingCreate does, with
// the product's quotas) with its first month paid, and its hosting.create
// action. Nothing is written when any of it is refused.
type HostingOrder struct {
	OrderCharge
	Create HostingCreate `json:"create"`
}

// HostingPlanOf is the hosting quotas a hosting product sells.
func HostingPlanOf(p api.AdminProduct) api.HostingPlan {
	if p.Specs.Hosting == nil {
		return api.HostingPlan{}
	}
	return *p.Specs.Hosting
}

func applyHostingOrder(c *applyCtx, p HostingOrder) (any, error) {
	h := &p.Create.Hosting
	var created api.AdminHostingCreated
	inv, err := applyOrder(c, h.AccountID, api.ProductHosting, p.OrderCharge, func(prod api.AdminProduct, price int64, until time.Time) (OrderedService, error) {
		h.Plan, h.Limits, h.PaidUntil, h.MonthlyUsdCents, h.InvoiceID = prod.Slug, HostingPlanOf(prod), &until, price, p.InvoiceID
		h.Renewal, h.Suspension = nil, nil
		v, err := applyHostingCreate(c, p.Create)
		if err != nil {
			return OrderedService{}, err
		}
		var ok bool
		if created, ok = v.(api.AdminHostingCreated); !ok {
			return OrderedService{}, fmt.Errorf("hosting order: unexpected hosting create result %T", v)
		}
		return OrderedService{Line: fmt.Sprintf("hosting %s (%s)", h.ID, h.Domain)}, nil
	})
	if err != nil {
		return nil, err
	}
	return api.HostingOrder{Hosting: created.Hosting, Action: created.Action, Invoice: inv.Invoice}, nil
}

// refundHostingOrder returns a bought hosting account's order to the wallet
// when its hosting.create failed, in the command that records the failure.
func refundHostingOrder(c *applyCtx, h *store.HostingAccount, a *store.Action) error {
	return refundFailedOrder(c, h.AccountID, h.InvoiceID, "hosting account "+h.ID, &h.PaidUntil, a)
}
