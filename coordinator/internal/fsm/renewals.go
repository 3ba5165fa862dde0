package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// Renewal commands use type numbers 220-229 (append-only).
const (
	CmdRenewalSweep CommandType = 220
)

var renewalHandlers = map[CommandType]handlerFunc{
	CmdRenewalSweep: typed(applyRenewalSweep),
}

// MaxRenewalBatch bounds the servers of one RenewalSweep (a sweep over
// 100,000 services is 100 entries).
const MaxRenewalBatch = 1000

// RenewalPolicy is the leader's renewal settings, carried in each sweep so
// every replica decides alike.
type RenewalPolicy struct {
	// InvoiceDays: the renewal invoice is issued this many days before
	// paid_until.
	InvoiceDays int `json:"invoice_days"`
	// SuspendDays: unpaid this many days after paid_until, the server is
	// suspended (0: on the due date).
	SuspendDays int `json:"suspend_days"`
	// TerminateDays: unpaid this many days after paid_until, the server is
	// terminated (0: never).
	TerminateDays int `json:"terminate_days"`
	// ActionDeadlineSeconds is the deadline of the stop and terminate
	// actions the sweep opens (0: 10 minutes).
	ActionDeadlineSeconds int `json:"action_deadline_seconds,omitempty"`
}

// RenewalSweep runs one step of the renewal lifecycle on each listed server
// at the command's time: the FSM decides what is due (the proposer's list is
// only a hint), so a sweep repeated, or proposed by two leaders, changes
// nothing twice.
type RenewalSweep struct {
	Policy  RenewalPolicy `json:"policy"`
	Servers []ServiceRef  `json:"servers"`
}

// ServiceRef names an account's server.
type ServiceRef struct {
	AccountID string `json:"a"`
	ServerID  string `json:"s"`
}

// RenewalSweepResult counts what a sweep did.
type RenewalSweepResult struct {
	Invoiced    int `json:"invoiced"`
	Paid        int `json:"paid"`
	Suspended   int `json:"suspended"`
	Stopped     int `json:"stopped"`
	Terminating int `json:"terminating"`
}

// SuspendedError refuses a power-on of a suspended server; it is an
// ErrConflict that says why (the API's 409 suspended).
type SuspendedError struct {
	ServerID string
	Reason   string
}

func (e *SuspendedError) Error() string {
	return fmt.Sprintf("server %s is suspended: %s", e.ServerID, e.Reason)
}

// Is makes a SuspendedError an ErrConflict.
func (e *SuspendedError) Is(target error) bool { return target == ErrConflict }

// RenewalDue reports whether the server is worth listing in a sweep at now:
// a bought, live server whose renewal window opened.
func RenewalDue(s store.Server, p RenewalPolicy, now time.Time) bool {
	if s.PaidUntil == nil || s.Status == api.ServerTerminated || s.Status == api.ServerError {
		return false
	}
	return !now.Before(s.PaidUntil.AddDate(0, 0, -p.InvoiceDays)) || s.Suspension != nil
}

// CheckRenewalPolicy validates renewal settings.
func CheckRenewalPolicy(p RenewalPolicy) error {
	switch {
	case p.InvoiceDays < 0 || p.InvoiceDays > 60:
		return fmt.Errorf("%w: invoice_days must be 0 to 60", ErrInvalid)
	case p.SuspendDays < 0 || p.SuspendDays > 365:
		return fmt.Errorf("%w: suspend_days must be 0 to 365", ErrInvalid)
	case p.TerminateDays < 0 || p.TerminateDays > 3650 || (p.TerminateDays > 0 && p.TerminateDays < p.SuspendDays):
		return fmt.Errorf("%w: terminate_days must be 0 (off) or suspend_days to 3650", ErrInvalid)
	case p.ActionDeadlineSeconds < 0:
		return fmt.Errorf("%w: action_deadline_seconds must not be negative", ErrInvalid)
	}
	return nil
}

// sweepIDs hands out the ids of one sweep's records: derived from the
// entry, so every replica makes the same ones.
type sweepIDs struct {
	c   *applyCtx
	seq uint16
}

// next is a new invoice ("inv") or action ("act") id, probed past ids taken
// by earlier commands of the same entry (a batch shares its index).
func (g *sweepIDs) next(prefix string) string {
	bucket := map[string][]byte{"inv": store.BucketInvoiceIDs, "act": store.BucketActions}[prefix]
	for {
		g.seq++
		id := ids.Derived(prefix, g.c.at, g.c.index, g.seq)
		if g.c.tx.Bucket(bucket).Get([]byte(id)) == nil {
			return id
		}
	}
}

// payment is the ids of a wallet payment of accountID's: the payment and
// its wallet transaction.
func (g *sweepIDs) payment(accountID string) (string, string) {
	for {
		g.seq++
		tx := ids.Derived("wtx", g.c.at, g.c.index, g.seq)
		if g.c.tx.Bucket(store.BucketWalletTx).Get(store.OwnedKey(accountID, tx)) == nil {
			return ids.Derived("pay", g.c.at, g.c.index, g.seq), tx
		}
	}
}

func applyRenewalSweep(c *applyCtx, p RenewalSweep) (any, error) {
	if err := CheckRenewalPolicy(p.Policy); err != nil {
		return nil, err
	}
	if len(p.Servers) > MaxRenewalBatch {
		return nil, fmt.Errorf("%w: at most %d servers per sweep", ErrInvalid, MaxRenewalBatch)
	}
	var res RenewalSweepResult
	g := &sweepIDs{c: c}
	for _, ref := range p.Servers {
		s, err := c.r.OwnedServer(ref.AccountID, ref.ServerID)
		if errors.Is(err, store.ErrNotFound) {
			continue // gone: nothing to renew
		} else if err != nil {
			return nil, err
		}
		if err := renewOne(c, g, p.Policy, &s, &res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// renewOne takes one server through whatever step is due at c.at.
func renewOne(c *applyCtx, g *sweepIDs, p RenewalPolicy, s *store.Server, res *RenewalSweepResult) error {
	if s.PaidUntil == nil || s.Status == api.ServerError || terminating(c, s) {
		return nil
	}
	changed := false
	due := *s.PaidUntil
	if (s.Renewal == nil || !s.Renewal.PeriodStart.Equal(due)) && !c.at.Before(due.AddDate(0, 0, -p.InvoiceDays)) {
		if err := issueRenewal(c, g, s); err != nil {
			return err
		}
		res.Invoiced++
		changed = true
	}
	if s.Renewal != nil && s.Renewal.PeriodStart.Equal(due) && !c.at.Before(due) {
		inv, err := renewalInvoice(c, s)
		if err != nil {
			return err
		}
		if inv.Status != api.InvoicePaid {
			acc, err := getAccount(c.tx, s.AccountID)
			if err != nil {
				return err
			}
			switch {
			case acc.BalanceUsdCents >= inv.TotalUsdCents:
				pid, tid := g.payment(acc.ID)
				if err := payFromWallet(c, &acc, &inv, pid, tid); err != nil {
					return err
				}
				if err := store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(acc.ID, inv.ID), inv); err != nil {
					return err
				}
				settleRenewal(c, s, inv)
				res.Paid++
				changed = true
			case s.Suspension == nil && !c.at.Before(due.AddDate(0, 0, p.SuspendDays)):
				s.Suspension = &store.Suspension{
					By: store.SuspendNonPayment, InvoiceID: inv.ID, At: c.at,
					Reason: fmt.Sprintf("invoice %s (%d cents) is unpaid since %s; paying it lifts the suspension", inv.Number, inv.TotalUsdCents, due.Format("2006-01-02")),
				}
				if err := c.emit(api.EventServerSuspended, s.AccountID, map[string]any{"serverId": s.ID, "reason": s.Suspension.Reason}); err != nil {
					return err
				}
				res.Suspended++
				changed = true
			}
			if p.TerminateDays > 0 && !c.at.Before(due.AddDate(0, 0, p.TerminateDays)) && s.PaidUntil.Equal(due) {
				ok, err := openSweepAction(c, g, p, s, api.ActionServerTerminate, json.RawMessage(`{}`))
				if err != nil {
					return err
				}
				if ok {
					res.Terminating++
					changed = true
				}
			}
		}
	}
	// A suspended server is stopped through the normal stop action (again
	// on a later sweep if another action held it).
	if s.Suspension != nil && s.Status == api.ServerRunning && !actionBusy(c, s) {
		ok, err := openSweepAction(c, g, p, s, api.ActionServerStop, json.RawMessage(`{"force":true}`))
		if err != nil {
			return err
		}
		if ok {
			res.Stopped++
			changed = true
		}
	}
	if !changed {
		return nil
	}
	s.UpdatedAt = c.at
	return putServer(c.tx, *s)
}

func actionBusy(c *applyCtx, s *store.Server) bool {
	if s.ActionID == "" {
		return false
	}
	cur, err := c.r.Action(s.ActionID)
	return err == nil && !cur.Finished()
}

// terminating: the server is terminated or its terminate action runs (its
// renewal is no longer paid).
func terminating(c *applyCtx, s *store.Server) bool {
	if s.Status == api.ServerTerminated {
		return true
	}
	cur, err := c.r.Action(s.ActionID)
	return s.ActionID != "" && err == nil && !cur.Finished() && cur.Command == api.ActionServerTerminate
}

// openSweepAction opens a stop or terminate action on s unless another
// action is in flight (a later sweep tries again).
func openSweepAction(c *applyCtx, g *sweepIDs, p RenewalPolicy, s *store.Server, command string, params json.RawMessage) (bool, error) {
	if actionBusy(c, s) {
		return false, nil
	}
	deadline := time.Duration(p.ActionDeadlineSeconds) * time.Second
	if deadline <= 0 {
		deadline = 10 * time.Minute
	}
	a := store.Action{
		Action: api.Action{
			ID: g.next("act"), Command: command, Status: api.ActionPending, ResourceType: "server", ResourceID: s.ID, CreatedAt: c.at,
		},
		AccountID: s.AccountID, NodeID: s.NodeID, Target: s.VMName, Params: params, Mutating: true, Deadline: c.at.Add(deadline),
	}
	s.ActionID = a.ID
	return true, putAction(c.tx, a)
}

func renewalInvoice(c *applyCtx, s *store.Server) (store.Invoice, error) {
	var inv store.Invoice
	err := store.GetJSON(c.tx, store.BucketInvoices, store.OwnedKey(s.AccountID, s.Renewal.InvoiceID), &inv)
	return inv, err
}

// issueRenewal issues the unpaid invoice of the period starting at
// s.PaidUntil, due then, at the price the server renews at.
func issueRenewal(c *applyCtx, g *sweepIDs, s *store.Server) error {
	acc, err := getAccount(c.tx, s.AccountID)
	if err != nil {
		return err
	}
	start := *s.PaidUntil
	end := start.AddDate(0, 1, 0)
	inv := store.Invoice{AccountID: acc.ID, ServerID: s.ID, Invoice: api.Invoice{
		ID: g.next("inv"), Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.at, DueAt: start, Payments: []api.Payment{},
		Lines: []api.InvoiceLine{{
			Description: fmt.Sprintf("renewal of server %s (%s), %s to %s", s.ID, s.Plan.Slug,
				start.Format("2006-01-02"), end.Format("2006-01-02")),
			Quantity: 1, UnitPriceUsdCents: s.MonthlyUsdCents, AmountUsdCents: s.MonthlyUsdCents,
		}},
		TotalUsdCents: s.MonthlyUsdCents,
	}}
	if err := recordInvoice(c, &acc, &inv, false, "", "", true); err != nil {
		return err
	}
	s.Renewal = &store.Renewal{InvoiceID: inv.ID, PeriodStart: start, PeriodEnd: end}
	return nil
}

// settleRenewal applies a paid renewal invoice to its server: paid_until
// moves to the period's end (once: only while it is the period's start) and
// a suspension for non-payment is lifted. The caller writes s when it says
// it changed it.
func settleRenewal(c *applyCtx, s *store.Server, inv store.Invoice) bool {
	if s.Renewal == nil || s.Renewal.InvoiceID != inv.ID || s.PaidUntil == nil || !s.PaidUntil.Equal(s.Renewal.PeriodStart) {
		return false
	}
	end := s.Renewal.PeriodEnd
	s.PaidUntil = &end
	if s.Suspension != nil && s.Suspension.By == store.SuspendNonPayment {
		s.Suspension = nil
	}
	s.UpdatedAt = c.at
	return true
}

// settleServerInvoice applies a renewal invoice just paid outside the sweep
// (POST /v1/invoices/:id/pay, an operator's payment) to its server.
func settleServerInvoice(c *applyCtx, inv store.Invoice) error {
	if inv.ServerID == "" {
		return nil
	}
	s, err := c.r.OwnedServer(inv.AccountID, inv.ServerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if !settleRenewal(c, &s, inv) {
		return nil
	}
	return putServer(c.tx, s)
}

// payOverdueRenewals pays, after a wallet top-up, the unpaid renewal
// invoices of the account's servers suspended for non-payment, oldest
// suspension first, while the balance covers them; each lifts its
// server's suspension.
func payOverdueRenewals(c *applyCtx, acc *api.Account) error {
	prefix := store.OwnedPrefix(acc.ID)
	var suspended []store.Server
	cur := c.tx.Bucket(store.BucketServers).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		if !bytes.Contains(v, []byte(`"suspension"`)) {
			continue
		}
		var s store.Server
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("decode server %s: %w", k, err)
		}
		if s.Suspension != nil && s.Suspension.By == store.SuspendNonPayment && s.Renewal != nil && !terminating(c, &s) {
			suspended = append(suspended, s)
		}
	}
	for i := range suspended {
		for j := i; j > 0 && suspended[j].Suspension.At.Before(suspended[j-1].Suspension.At); j-- {
			suspended[j], suspended[j-1] = suspended[j-1], suspended[j]
		}
	}
	g := &sweepIDs{c: c, seq: 0x4000}
	for _, s := range suspended {
		inv, err := renewalInvoice(c, &s)
		if err != nil {
			return err
		}
		if inv.Status == api.InvoicePaid || acc.BalanceUsdCents < inv.TotalUsdCents {
			continue
		}
		pid, tid := g.payment(acc.ID)
		if err := payFromWallet(c, acc, &inv, pid, tid); err != nil {
			return err
		}
		if err := store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(acc.ID, inv.ID), inv); err != nil {
			return err
		}
		if !settleRenewal(c, &s, inv) {
			continue
		}
		if err := putServer(c.tx, s); err != nil {
			return err
		}
	}
	return nil
}

// RenewalCandidates lists the servers a sweep at now would change (the
// leader's hint; the FSM decides again): a renewal window opened without
// the period's invoice, an unpaid invoice past its due date that the wallet
// covers or that reached the suspension or termination day, or a suspended
// server still running.
func RenewalCandidates(tx *bolt.Tx, p RenewalPolicy, now time.Time) ([]ServiceRef, error) {
	r := store.Read(tx)
	var out []ServiceRef
	balances := map[string]int64{}
	cur := tx.Bucket(store.BucketServers).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if !bytes.Contains(v, []byte(`"paid_until"`)) {
			continue
		}
		var s store.Server
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("decode server %s: %w", k, err)
		}
		if s.PaidUntil == nil || s.Status == api.ServerTerminated || s.Status == api.ServerError {
			continue
		}
		due := *s.PaidUntil
		issued := s.Renewal != nil && s.Renewal.PeriodStart.Equal(due)
		want := false
		switch {
		case !issued:
			want = !now.Before(due.AddDate(0, 0, -p.InvoiceDays))
		case !now.Before(due):
			var inv store.Invoice
			if err := store.GetJSON(tx, store.BucketInvoices, store.OwnedKey(s.AccountID, s.Renewal.InvoiceID), &inv); err != nil {
				return nil, err
			}
			if inv.Status == api.InvoicePaid {
				break
			}
			bal, ok := balances[s.AccountID]
			if !ok {
				acc, err := getAccount(tx, s.AccountID)
				if err != nil {
					return nil, err
				}
				bal, balances[s.AccountID] = acc.BalanceUsdCents, acc.BalanceUsdCents
			}
			want = bal >= inv.TotalUsdCents ||
				(s.Suspension == nil && !now.Before(due.AddDate(0, 0, p.SuspendDays))) ||
				(p.TerminateDays > 0 && !now.Before(due.AddDate(0, 0, p.TerminateDays)) && s.ActionID == "")
			if p.TerminateDays > 0 && !now.Before(due.AddDate(0, 0, p.TerminateDays)) && s.ActionID != "" {
				a, err := r.Action(s.ActionID)
				want = want || err != nil || a.Finished()
			}
		}
		if !want && s.Suspension != nil && s.Status == api.ServerRunning {
			a, err := r.Action(s.ActionID)
			want = s.ActionID == "" || err != nil || a.Finished()
		}
		if want {
			out = append(out, ServiceRef{AccountID: s.AccountID, ServerID: s.ID})
		}
	}
	return out, nil
}
