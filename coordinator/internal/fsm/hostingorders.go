package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
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

// closeBilling ends a bought service's billing when it is deleted (a
// customer's DELETE, an operator, or the renewal sweep's termination), in
// the command recording the deletion. The refund policy: the unused whole
// days of every period paid for are credited back to the wallet, pro rata
// to what that period cost (refunded through the period's invoice: a refund
// transaction and the invoice's credit), a period not begun in full; an
// unpaid renewal invoice becomes void. paid_until is cleared, so nothing
// renews.
func closeBilling(c *applyCtx, s *billed) error {
	if *s.paidUntil == nil {
		return nil
	}
	until := **s.paidUntil
	*s.paidUntil = nil
	if r := *s.renewal; r != nil {
		inv, err := renewalInvoice(c, s)
		if err != nil {
			return err
		}
		if inv.Status == api.InvoiceUnpaid {
			inv.Status = api.InvoiceVoid
			if err := store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(inv.AccountID, inv.ID), inv); err != nil {
				return err
			}
		}
	}
	periods, err := paidPeriods(c, s, until)
	if err != nil {
		return err
	}
	const day = 24 * time.Hour
	for _, inv := range periods {
		// A period's invoice is due at its start and covers a month.
		start := inv.DueAt
		end := start.AddDate(0, 1, 0)
		unused, period := int64(end.Sub(c.at)/day), int64((end.Sub(start)+day/2)/day)
		if unused <= 0 || period <= 0 {
			continue
		}
		unused = min(unused, period)
		amount := inv.TotalUsdCents * unused / period
		if amount <= 0 {
			continue
		}
		if _, err := refundInvoiceUpTo(c, s.ref.AccountID, inv.ID, amount,
			fmt.Sprintf("%s deleted with %d of the period's %d days unused", s.what, unused, period)); err != nil {
			return err
		}
	}
	return nil
}

// paidPeriods is the paid invoices of s's periods up to until, oldest
// first: its order's and its paid renewals'. The order's and the current
// renewal's invoices are read directly; the account's invoices are scanned
// only when the periods left at c.at are not all among them (a renewal
// before the current one).
func paidPeriods(c *applyCtx, s *billed, until time.Time) ([]store.Invoice, error) {
	ours := func(inv store.Invoice) bool {
		return (inv.ID == s.orderInvoice || (inv.ServerID == s.ref.ServerID && inv.HostingID == s.ref.HostingID)) &&
			inv.Status == api.InvoicePaid && !inv.DueAt.AddDate(0, 1, 0).After(until)
	}
	var out []store.Invoice
	known := []string{s.orderInvoice}
	if r := *s.renewal; r != nil && r.InvoiceID != s.orderInvoice {
		known = append(known, r.InvoiceID)
	}
	for _, id := range known {
		var inv store.Invoice
		if id == "" {
			continue
		} else if err := store.GetJSON(c.tx, store.BucketInvoices, store.OwnedKey(s.ref.AccountID, id), &inv); err == store.ErrNotFound {
			continue
		} else if err != nil {
			return nil, err
		}
		if ours(inv) {
			out = append(out, inv)
		}
	}
	byStart := func(x, y store.Invoice) int { return x.DueAt.Compare(y.DueAt) }
	slices.SortStableFunc(out, byStart)
	lo := until // back from until, the periods found end to end
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].DueAt.AddDate(0, 1, 0).Equal(lo) {
			lo = out[i].DueAt
		}
	}
	if !lo.After(c.at) {
		return out, nil
	}
	out = out[:0]
	id := s.ref.ServerID + s.ref.HostingID
	prefix := store.OwnedPrefix(s.ref.AccountID)
	cur := c.tx.Bucket(store.BucketInvoices).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		if string(k[len(prefix):]) != s.orderInvoice && !bytes.Contains(v, []byte(id)) {
			continue
		}
		var inv store.Invoice
		if err := json.Unmarshal(v, &inv); err != nil {
			return nil, fmt.Errorf("decode invoice %s: %w", k, err)
		}
		if ours(inv) {
			out = append(out, inv)
		}
	}
	slices.SortStableFunc(out, byStart)
	return out, nil
}

// ServiceSuspend is an operator's suspension (Suspend) or unsuspension of a
// server or hosting account, paid for or not. A suspension stops a running
// server (a forced server.stop) or suspends a hosting account on its node
// (hosting.suspend), fires server.suspended / hosting.suspended with the
// reason, and refuses the customer's power-on (409 suspended); a payment
// does not lift it. Unsuspending lifts an operator's suspension
// (server.unsuspended / hosting.unsuspended; a hosting account is
// unsuspended on its node); one for non-payment is lifted by paying.
type ServiceSuspend struct {
	Ref     ServiceRef `json:"ref"`
	Suspend bool       `json:"suspend"`
	Reason  string     `json:"reason,omitempty"`
	// ActionDeadlineSeconds is the deadline of the action opened (0: 10
	// minutes).
	ActionDeadlineSeconds int `json:"action_deadline_seconds,omitempty"`
}

// ServiceSuspended answers a ServiceSuspend: the suspension now (nil when
// lifted) and the action opened, if any.
type ServiceSuspended struct {
	Suspension *store.Suspension `json:"suspension"`
	ActionID   string            `json:"action_id,omitempty"`
}

func applyServiceSuspend(c *applyCtx, p ServiceSuspend) (any, error) {
	if (p.Ref.ServerID == "") == (p.Ref.HostingID == "") {
		return nil, fmt.Errorf("%w: name a server or a hosting account", ErrInvalid)
	}
	if p.Suspend && (p.Reason == "" || len(p.Reason) > 500) {
		return nil, fmt.Errorf("%w: reason: a suspension needs a reason of 1-500 characters", ErrInvalid)
	}
	s, err := loadBilled(c, p.Ref)
	if err != nil {
		return nil, err
	}
	if s.gone {
		return nil, fmt.Errorf("%w: %s is deleted or failed", ErrConflict, s.what)
	}
	g := &sweepIDs{c: c, seq: 0x2000}
	cur := *s.suspension
	switch {
	case p.Suspend && cur != nil && cur.By == store.SuspendOperator:
		return ServiceSuspended{Suspension: cur}, nil // already
	case p.Suspend:
		if s.serving && actionBusy(c, s) {
			return nil, &ActionBusyError{ServerID: s.ref.ServerID + s.ref.HostingID, ActionID: *s.actionID, Command: "the current action", Resource: s.what}
		}
		susp := &store.Suspension{By: store.SuspendOperator, Reason: p.Reason, At: c.at}
		if cur != nil {
			susp.InvoiceID = cur.InvoiceID // an unpaid renewal still owed
		} else {
			s.markOwnerSuspended(c)
		}
		*s.suspension = susp
		if s.setResume != nil {
			s.setResume(false)
		}
		if err := s.emitSuspended(c, true, p.Reason); err != nil {
			return nil, err
		}
		if _, err := driveSuspension(c, g, RenewalPolicy{ActionDeadlineSeconds: p.ActionDeadlineSeconds}, s); err != nil {
			return nil, err
		}
	case cur == nil:
		return nil, fmt.Errorf("%w: %s is not suspended", ErrConflict, s.what)
	case cur.By != store.SuspendOperator:
		return nil, &SuspendedError{ServerID: s.ref.ServerID + s.ref.HostingID, Reason: cur.Reason + " (an operator cannot lift a suspension for non-payment)",
			Resource: strings.TrimSuffix(s.what, " "+s.ref.ServerID+s.ref.HostingID)}
	default:
		// The operator lifts their own suspension; one for an unpaid
		// renewal it covered stays until paid (no event: still suspended).
		owed, err := stillOwed(c, s, cur)
		if err != nil {
			return nil, err
		}
		if owed != nil {
			*s.suspension = owed
			break
		}
		if err := liftSuspension(c, g, s); err != nil {
			return nil, err
		}
	}
	*s.updatedAt = c.at
	out := ServiceSuspended{Suspension: *s.suspension}
	if a, err := c.r.Action(*s.actionID); err == nil && !a.Finished() && a.CreatedAt.Equal(c.at) {
		out.ActionID = a.ID
	}
	return out, s.put()
}
