package fsm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

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

// ServiceRef names an account's server or (HostingID) hosting account.
type ServiceRef struct {
	AccountID string `json:"a"`
	ServerID  string `json:"s"`
	HostingID string `json:"h,omitempty"`
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
	// Resource is what is suspended ("" is a server; "hosting account").
	Resource string
}

func (e *SuspendedError) Error() string {
	return fmt.Sprintf("%s %s is suspended: %s", cmp.Or(e.Resource, "server"), e.ServerID, e.Reason)
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
	// accounts, when set (a RenewalSweep), holds the accounts the sweep
	// read, each decoded once; the ones it debited (dirty, in the order
	// first debited) are written once by flushAccounts instead of after
	// every payment.
	accounts map[string]*api.Account
	dirty    []string
	// after, when set, is a wallet transaction of this command (a top-up)
	// the payments' transactions list right after (ids.Successor); afterN
	// is how far past it the ids went.
	after  string
	afterN uint16
}

// account is the account id, read once per sweep when g caches accounts.
func (g *sweepIDs) account(id string) (*api.Account, error) {
	if g.accounts == nil {
		acc, err := getAccount(g.c.tx, id)
		return &acc, err
	}
	if acc, ok := g.accounts[id]; ok {
		return acc, nil
	}
	acc, err := getAccount(g.c.tx, id)
	if err != nil {
		return nil, err
	}
	g.accounts[id] = &acc
	return &acc, nil
}

// debit pays inv from acc's wallet; the account itself is written now, or
// by flushAccounts when g caches accounts.
func (g *sweepIDs) debit(acc *api.Account, inv *store.Invoice, paymentID, txID string) error {
	if g.accounts == nil {
		return payFromWallet(g.c, acc, inv, paymentID, txID)
	}
	if !slices.Contains(g.dirty, acc.ID) {
		g.dirty = append(g.dirty, acc.ID)
	}
	return debitWallet(g.c, acc, inv, paymentID, txID)
}

// flushAccounts writes the accounts the sweep debited.
func (g *sweepIDs) flushAccounts() error {
	for _, id := range g.dirty {
		if err := store.PutJSON(g.c.tx, store.BucketAccounts, []byte(id), g.accounts[id]); err != nil {
			return err
		}
	}
	g.dirty = nil
	return nil
}

// next is a new invoice ("inv") or action ("act") id, probed past ids taken
// by earlier commands of the same entry (a batch shares its index).
func (g *sweepIDs) next(prefix string) string {
	for {
		g.seq++
		id := g.c.derivedID(prefix, g.seq)
		var taken []byte
		if prefix == "inv" {
			taken = store.OwnerOf(g.c.tx, store.BucketInvoiceIDs, id)
		} else {
			taken = g.c.tx.Bucket(store.BucketActions).Get([]byte(id))
		}
		if taken == nil {
			return id
		}
	}
}

// LevelPaymentIDs is the semantics level (level.go) from which a payment a
// top-up makes (payOverdueRenewals) takes its id from its transaction's:
// pay_<the transaction id's body>. Below it the payment's id was derived
// from the sweep's sequence, which starts at the same place for every
// command of a Raft entry while the transaction ids (after each deposit's)
// differ: two top-ups of one group commit gave their payments one id.
const LevelPaymentIDs = 17

// payment is the ids of a wallet payment of accountID's: the payment and
// its wallet transaction.
func (g *sweepIDs) payment(accountID string) (string, string) {
	for {
		g.seq++
		tx := g.c.derivedID("wtx", g.seq)
		afterDeposit := false
		if g.after != "" {
			g.afterN++
			if next, ok := ids.Successor("wtx", g.after, g.afterN); ok {
				tx, afterDeposit = next, true
			}
		}
		if g.c.tx.Bucket(store.BucketWalletTx).Get(store.OwnedKey(accountID, tx)) == nil {
			if afterDeposit && g.c.level() >= LevelPaymentIDs {
				// As unique as the transaction's id, after a deposit that
				// a handler named (ids.New).
				return "pay" + strings.TrimPrefix(tx, "wtx"), tx
			}
			return g.c.derivedID("pay", g.seq), tx
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
	g := &sweepIDs{c: c, accounts: map[string]*api.Account{}}
	for _, ref := range p.Servers {
		b, err := loadBilled(c, ref)
		if errors.Is(err, store.ErrNotFound) {
			continue // gone: nothing to renew
		} else if err != nil {
			return nil, errors.Join(err, g.flushAccounts())
		}
		b.memoAction = true
		if err := renewOne(c, g, p.Policy, b, &res); err != nil {
			return nil, errors.Join(err, g.flushAccounts())
		}
	}
	return res, g.flushAccounts()
}

// billed is the renewal lifecycle's view of a bought service, a server or a
// hosting account: pointers into the stored record, which put writes back.
type billed struct {
	ref  ServiceRef
	what string // "server srv_…" or "hosting account hst_…"
	// orderInvoice is the paid invoice of the order that bought it.
	orderInvoice string
	slug         string
	monthly      int64
	paidUntil    **time.Time
	renewal      **store.Renewal
	suspension   **store.Suspension
	actionID     *string
	updatedAt    *time.Time
	// gone: terminated, deleted or failed; nothing to renew.
	gone bool
	// serving: running or active, so a suspension still has to stop it;
	// resumable: suspended by the provider and waiting for its unsuspend
	// action (hosting; a server stays stopped until its owner starts it).
	serving, suspendedOnNode, resumable bool
	// resumePending: a lifted suspension still to be undone on the node
	// (hosting.Resume), whatever the account's status.
	resumePending bool
	// The actions that suspend, resume and terminate it, their params, and
	// where they run.
	suspendCmd, resumeCmd, terminateCmd string
	suspendParams                       json.RawMessage
	resourceType, nodeID, target        string
	payload                             map[string]any
	// setResume records that a lifted suspension still has to be undone on
	// the node (hosting); nil for servers.
	setResume func(bool)
	// ownerSuspended is the hosting account's OwnerSuspended (nil for
	// servers).
	ownerSuspended *bool
	put            func() error
	// issued is the renewal invoice this command just issued (read back
	// without decoding it); unwritten until renewOne writes it, once, after
	// it paid it or not.
	issued    *store.Invoice
	unwritten bool
	// memoAction: the service's current action is read once (a sweep, where
	// only the sweep itself writes actions), and only its command and
	// status, which is all actionBusy and terminating look at; act is that
	// read.
	memoAction bool
	act        *memoAct
}

type memoAct struct {
	id  string
	a   store.Action
	err error
}

// action reads the service's current action (with memoAction, only its
// id, command and status).
func (s *billed) action(c *applyCtx) (store.Action, error) {
	if !s.memoAction {
		return c.r.Action(*s.actionID)
	}
	if s.act == nil || s.act.id != *s.actionID {
		s.act = &memoAct{id: *s.actionID}
		var brief struct {
			Command string `json:"command"`
			Status  string `json:"status"`
		}
		if v := c.tx.Bucket(store.BucketActions).Get([]byte(*s.actionID)); v == nil {
			s.act.err = store.ErrNotFound
		} else if err := json.Unmarshal(v, &brief); err != nil {
			s.act.err = fmt.Errorf("decode action %s: %w", *s.actionID, err)
		} else {
			s.act.a.ID, s.act.a.Command, s.act.a.Status = *s.actionID, brief.Command, brief.Status
		}
	}
	return s.act.a, s.act.err
}

func billedServer(c *applyCtx, s *store.Server) *billed {
	return &billed{
		ref: ServiceRef{AccountID: s.AccountID, ServerID: s.ID}, what: "server " + s.ID, orderInvoice: s.InvoiceID, slug: s.Plan.Slug, monthly: s.MonthlyUsdCents,
		paidUntil: &s.PaidUntil, renewal: &s.Renewal, suspension: &s.Suspension, actionID: &s.ActionID, updatedAt: &s.UpdatedAt,
		gone:       s.Status == api.ServerTerminated || s.Status == api.ServerError,
		serving:    s.Status == api.ServerRunning,
		suspendCmd: api.ActionServerStop, terminateCmd: api.ActionServerTerminate, suspendParams: json.RawMessage(`{"force":true}`),
		resourceType: "server", nodeID: s.NodeID, target: s.VMName,
		payload: map[string]any{"serverId": s.ID},
		put:     func() error { return putServer(c.tx, *s) },
	}
}

func billedHosting(c *applyCtx, h *store.HostingAccount) *billed {
	return &billed{
		ref: ServiceRef{AccountID: h.AccountID, HostingID: h.ID}, what: "hosting account " + h.ID, orderInvoice: h.InvoiceID, slug: h.Plan, monthly: h.MonthlyUsdCents,
		paidUntil: &h.PaidUntil, renewal: &h.Renewal, suspension: &h.Suspension, actionID: &h.ActionID, updatedAt: &h.UpdatedAt,
		gone:    h.Status == api.HostingDeleted || h.Status == api.HostingError,
		serving: h.Status == api.HostingActive, suspendedOnNode: h.Status == api.HostingSuspended,
		resumable: h.Resume && h.Status == api.HostingSuspended, resumePending: h.Resume,
		suspendCmd: api.ActionHostingSuspend, resumeCmd: api.ActionHostingUnsuspend, terminateCmd: api.ActionHostingDelete,
		suspendParams: json.RawMessage(`{}`), resourceType: ResourceHosting, nodeID: h.NodeID, target: h.Username,
		payload:        map[string]any{"hostingId": h.ID, "domain": h.Domain},
		setResume:      func(v bool) { h.Resume = v },
		ownerSuspended: &h.OwnerSuspended,
		put:            func() error { return putHosting(c.tx, *h) },
	}
}

// loadBilled loads the service ref names (store.ErrNotFound when gone).
func loadBilled(c *applyCtx, ref ServiceRef) (*billed, error) {
	if ref.HostingID != "" {
		h, err := c.r.OwnedHostingAccount(ref.AccountID, ref.HostingID)
		if err != nil {
			return nil, err
		}
		return billedHosting(c, &h), nil
	}
	s, err := c.r.OwnedServer(ref.AccountID, ref.ServerID)
	if err != nil {
		return nil, err
	}
	return billedServer(c, &s), nil
}

// renewOne takes one service through whatever step is due at c.at.
func renewOne(c *applyCtx, g *sweepIDs, p RenewalPolicy, s *billed, res *RenewalSweepResult) error {
	if *s.paidUntil == nil || s.gone || terminating(c, s) {
		return nil
	}
	changed := false
	due := **s.paidUntil
	if (*s.renewal == nil || !(*s.renewal).PeriodStart.Equal(due)) && !c.at.Before(due.AddDate(0, 0, -p.InvoiceDays)) {
		if err := issueRenewal(c, g, s); err != nil {
			return err
		}
		res.Invoiced++
		changed = true
	}
	if *s.renewal != nil && (*s.renewal).PeriodStart.Equal(due) && !c.at.Before(due) {
		inv, err := renewalInvoice(c, s)
		if err != nil {
			return err
		}
		if inv.Status != api.InvoicePaid {
			acc, err := g.account(s.ref.AccountID)
			if err != nil {
				return err
			}
			switch {
			case acc.BalanceUsdCents >= inv.TotalUsdCents:
				pid, tid := g.payment(acc.ID)
				if err := g.debit(acc, &inv, pid, tid); err != nil {
					return err
				}
				if err := store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(acc.ID, inv.ID), inv); err != nil {
					return err
				}
				s.unwritten = false
				if _, err := settleRenewal(c, g, s, inv); err != nil {
					return err
				}
				res.Paid++
				changed = true
			case *s.suspension == nil && !c.at.Before(due.AddDate(0, 0, p.SuspendDays)):
				s.markOwnerSuspended(c)
				*s.suspension = nonPaymentSuspension(inv, due, c.at)
				if err := s.emitSuspended(c, true, (*s.suspension).Reason); err != nil {
					return err
				}
				res.Suspended++
				changed = true
			case owedUnderOperator(*s.suspension, inv, p, due, c.at):
				// An operator's suspension also covers this unpaid
				// renewal: lifting it leaves the non-payment one.
				(*s.suspension).InvoiceID = inv.ID
				changed = true
			}
			if p.TerminateDays > 0 && !c.at.Before(due.AddDate(0, 0, p.TerminateDays)) && (*s.paidUntil).Equal(due) {
				ok, err := openSweepAction(c, g, p, s, s.terminateCmd, json.RawMessage(`{}`))
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
	// A suspended service is stopped through its normal action (again on a
	// later sweep if another action held it); a lifted one waiting to be
	// resumed is resumed the same way.
	ok, err := driveSuspension(c, g, p, s)
	if err != nil {
		return err
	}
	if ok {
		res.Stopped++
	}
	if s.unwritten {
		if err := store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(s.issued.AccountID, s.issued.ID), *s.issued); err != nil {
			return err
		}
		s.unwritten = false
	}
	if !changed && !ok {
		return nil
	}
	*s.updatedAt = c.at
	return s.put()
}

// nonPaymentSuspension is the suspension for the renewal invoice inv, due
// on due and unpaid at at.
func nonPaymentSuspension(inv store.Invoice, due, at time.Time) *store.Suspension {
	return &store.Suspension{
		By: store.SuspendNonPayment, InvoiceID: inv.ID, At: at,
		Reason: fmt.Sprintf("invoice %s (%d cents) is unpaid since %s; paying it lifts the suspension", inv.Number, inv.TotalUsdCents, due.Format("2006-01-02")),
	}
}

// owedUnderOperator reports whether the operator's suspension cur does not
// yet record the unpaid renewal inv, due on due, that would have suspended
// the service at now.
func owedUnderOperator(cur *store.Suspension, inv store.Invoice, p RenewalPolicy, due, now time.Time) bool {
	return cur != nil && cur.By == store.SuspendOperator && cur.InvoiceID != inv.ID && !now.Before(due.AddDate(0, 0, p.SuspendDays))
}

// stillOwed is the suspension for non-payment that remains when an
// operator lifts their suspension cur of s: the one for the unpaid renewal
// invoice cur recorded (nil when there is none or it is paid).
func stillOwed(c *applyCtx, s *billed, cur *store.Suspension) (*store.Suspension, error) {
	r := *s.renewal
	if cur.InvoiceID == "" || r == nil || r.InvoiceID != cur.InvoiceID {
		return nil, nil
	}
	inv, err := renewalInvoice(c, s)
	if err != nil || inv.Status != api.InvoiceUnpaid {
		return nil, err
	}
	return nonPaymentSuspension(inv, r.PeriodStart, c.at), nil
}

// markOwnerSuspended records, as a provider's suspension of a hosting
// account is set (none was), whether the account is suspended on its node
// by its owner, or being so: lifting the provider's suspension must leave
// that one.
func (s *billed) markOwnerSuspended(c *applyCtx) {
	if s.ownerSuspended == nil {
		return
	}
	held := s.suspendedOnNode && !s.resumable
	if actionBusy(c, s) {
		cur, _ := s.action(c)
		// The owner's suspend in flight; an unsuspend in flight (the
		// owner's, or ours resuming) is not a suspension to keep.
		held = (cur.Command == s.suspendCmd && !s.resumePending) || (held && cur.Command != s.resumeCmd)
	}
	*s.ownerSuspended = held
}

// driveSuspension opens the action a suspension (or its lifting) still
// needs: the stop or hosting.suspend of a suspended service still serving,
// the hosting.unsuspend of one whose suspension was lifted.
func driveSuspension(c *applyCtx, g *sweepIDs, p RenewalPolicy, s *billed) (bool, error) {
	switch {
	case actionBusy(c, s):
		return false, nil
	case *s.suspension != nil && s.serving:
		if s.ownerSuspended != nil {
			*s.ownerSuspended = false // serving: whatever its owner did is undone
		}
		return openSweepAction(c, g, p, s, s.suspendCmd, s.suspendParams)
	case *s.suspension == nil && s.resumable:
		s.setResume(false)
		return openSweepAction(c, g, p, s, s.resumeCmd, json.RawMessage(`{}`))
	}
	return false, nil
}

// emitSuspended queues the service's suspended (with the reason) or
// unsuspended event.
func (s *billed) emitSuspended(c *applyCtx, suspended bool, reason string) error {
	payload := map[string]any{}
	for k, v := range s.payload {
		payload[k] = v
	}
	if suspended {
		payload["reason"] = reason
	}
	switch {
	case s.ref.HostingID != "" && suspended:
		return c.emit(api.EventHostingSuspended, s.ref.AccountID, payload)
	case s.ref.HostingID != "":
		return c.emit(api.EventHostingUnsuspended, s.ref.AccountID, payload)
	case suspended:
		return c.emit(api.EventServerSuspended, s.ref.AccountID, payload)
	}
	return c.emit(api.EventServerUnsuspended, s.ref.AccountID, payload)
}

func actionBusy(c *applyCtx, s *billed) bool {
	if *s.actionID == "" {
		return false
	}
	cur, err := s.action(c)
	return err == nil && !cur.Finished()
}

// terminating: the service is gone or its terminate action runs (its
// renewal is no longer paid).
func terminating(c *applyCtx, s *billed) bool {
	if s.gone {
		return true
	}
	cur, err := s.action(c)
	return *s.actionID != "" && err == nil && !cur.Finished() && cur.Command == s.terminateCmd
}

// openSweepAction opens a stop, suspend, unsuspend or terminate action on s
// unless another action is in flight (a later sweep tries again).
func openSweepAction(c *applyCtx, g *sweepIDs, p RenewalPolicy, s *billed, command string, params json.RawMessage) (bool, error) {
	if actionBusy(c, s) {
		return false, nil
	}
	deadline := time.Duration(p.ActionDeadlineSeconds) * time.Second
	if deadline <= 0 {
		deadline = 10 * time.Minute
	}
	id := s.ref.ServerID + s.ref.HostingID
	a := store.Action{
		Action: api.Action{
			ID: g.next("act"), Command: command, Status: api.ActionPending, ResourceType: s.resourceType, ResourceID: id,
		},
		AccountID: s.ref.AccountID, NodeID: s.nodeID, Target: s.target, Params: params, Mutating: true, Deadline: c.at.Add(deadline),
	}
	a.CreatedAt = c.createdAt(a.ID)
	*s.actionID = a.ID
	if s.memoAction {
		s.act = &memoAct{id: a.ID, a: a}
	}
	return true, putAction(c, a)
}

func renewalInvoice(c *applyCtx, s *billed) (store.Invoice, error) {
	if s.issued != nil && s.issued.ID == (*s.renewal).InvoiceID {
		return *s.issued, nil
	}
	var inv store.Invoice
	err := store.GetJSON(c.tx, store.BucketInvoices, store.OwnedKey(s.ref.AccountID, (*s.renewal).InvoiceID), &inv)
	return inv, err
}

// issueRenewal issues the unpaid invoice of the period starting at
// paid_until, due then, at the price the service renews at.
func issueRenewal(c *applyCtx, g *sweepIDs, s *billed) error {
	acc, err := g.account(s.ref.AccountID)
	if err != nil {
		return err
	}
	start := **s.paidUntil
	end := start.AddDate(0, 1, 0)
	invID := g.next("inv")
	inv := store.Invoice{AccountID: acc.ID, ServerID: s.ref.ServerID, HostingID: s.ref.HostingID, Invoice: api.Invoice{
		ID: invID, Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.createdAt(invID), DueAt: start, Payments: []api.Payment{},
		Lines: []api.InvoiceLine{{
			Description: fmt.Sprintf("renewal of %s (%s), %s to %s", s.what, s.slug,
				start.Format("2006-01-02"), end.Format("2006-01-02")),
			Quantity: 1, UnitPriceUsdCents: s.monthly, AmountUsdCents: s.monthly,
		}},
		TotalUsdCents: s.monthly,
	}}
	if err := numberInvoice(c, acc, &inv, false, "", "", true); err != nil {
		return err
	}
	*s.renewal = &store.Renewal{InvoiceID: inv.ID, PeriodStart: start, PeriodEnd: end}
	s.issued, s.unwritten = &inv, true
	return nil
}

// settleRenewal applies a paid renewal invoice to its service: paid_until
// moves to the period's end (once: only while it is the period's start) and
// a suspension for non-payment is lifted (its unsuspended event; a
// suspended hosting account gets its hosting.unsuspend). The caller writes
// s when it says it changed it.
func settleRenewal(c *applyCtx, g *sweepIDs, s *billed, inv store.Invoice) (bool, error) {
	r := *s.renewal
	if r == nil || r.InvoiceID != inv.ID || *s.paidUntil == nil || !(*s.paidUntil).Equal(r.PeriodStart) {
		return false, nil
	}
	end := r.PeriodEnd
	*s.paidUntil = &end
	*s.updatedAt = c.at
	if *s.suspension == nil || (*s.suspension).By != store.SuspendNonPayment {
		return true, nil
	}
	return true, liftSuspension(c, g, s)
}

// liftSuspension lifts s's suspension (the caller checked who set it) with
// its unsuspended event; on a hosting account the node undoes what reached
// it: an account suspended there, or whose suspend action is still
// running, gets its hosting.unsuspend once it can.
func liftSuspension(c *applyCtx, g *sweepIDs, s *billed) error {
	*s.suspension = nil
	if err := s.emitSuspended(c, false, ""); err != nil {
		return err
	}
	if s.setResume == nil {
		return nil
	}
	if *s.ownerSuspended {
		// Suspended on the node by its owner: theirs to lift.
		*s.ownerSuspended = false
		return nil
	}
	cur, err := c.r.Action(*s.actionID)
	suspending := *s.actionID != "" && err == nil && !cur.Finished() && cur.Command == s.suspendCmd
	if s.suspendedOnNode || suspending {
		s.setResume(true)
		s.resumable = s.suspendedOnNode
		if _, err := driveSuspension(c, g, RenewalPolicy{}, s); err != nil {
			return err
		}
	}
	return nil
}

// settleServiceInvoice applies a renewal invoice just paid outside the
// sweep (POST /v1/invoices/:id/pay, an operator's payment) to its service.
func settleServiceInvoice(c *applyCtx, inv store.Invoice) error {
	if inv.ServerID == "" && inv.HostingID == "" {
		return nil
	}
	s, err := loadBilled(c, ServiceRef{AccountID: inv.AccountID, ServerID: inv.ServerID, HostingID: inv.HostingID})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	ok, err := settleRenewal(c, &sweepIDs{c: c, seq: 0x6000}, s, inv)
	if err != nil || !ok {
		return err
	}
	return s.put()
}

// payOverdueRenewals pays, after a wallet top-up (its transaction
// depositTx, which the payments list after), the unpaid renewal invoices of
// the account's services suspended for non-payment, oldest suspension
// first, while the balance covers them; each lifts its service's
// suspension.
func payOverdueRenewals(c *applyCtx, acc *api.Account, depositTx string) error {
	prefix := store.OwnedPrefix(acc.ID)
	var suspended []*billed
	for _, bucket := range [][]byte{store.BucketServers, store.BucketHosting} {
		cur := c.tx.Bucket(bucket).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			if !bytes.Contains(v, []byte(`"suspension"`)) {
				continue
			}
			b, err := decodeBilled(c, bucket, k, v)
			if err != nil {
				return err
			}
			if s := *b.suspension; s != nil && s.By == store.SuspendNonPayment && *b.renewal != nil && !terminating(c, b) {
				suspended = append(suspended, b)
			}
		}
	}
	slices.SortStableFunc(suspended, func(x, y *billed) int { return (*x.suspension).At.Compare((*y.suspension).At) })
	g := &sweepIDs{c: c, seq: 0x4000, after: depositTx}
	for _, s := range suspended {
		inv, err := renewalInvoice(c, s)
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
		if ok, err := settleRenewal(c, g, s, inv); err != nil {
			return err
		} else if !ok {
			continue
		}
		if err := s.put(); err != nil {
			return err
		}
	}
	return nil
}

// decodeBilled decodes a stored server or hosting account of bucket.
func decodeBilled(c *applyCtx, bucket, k, v []byte) (*billed, error) {
	if bytes.Equal(bucket, store.BucketHosting) {
		var h store.HostingAccount
		if err := json.Unmarshal(v, &h); err != nil {
			return nil, fmt.Errorf("decode hosting account %s: %w", k, err)
		}
		return billedHosting(c, &h), nil
	}
	var s store.Server
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("decode server %s: %w", k, err)
	}
	return billedServer(c, &s), nil
}

// RenewalCandidates lists the services (servers and hosting accounts) a
// sweep at now would change (the leader's hint; the FSM decides again): a
// renewal window opened without the period's invoice, an unpaid invoice
// past its due date that the wallet covers or that reached the suspension
// or termination day, a suspended service still serving, or a lifted one
// still to resume.
func RenewalCandidates(tx *bolt.Tx, p RenewalPolicy, now time.Time) ([]ServiceRef, error) {
	c := &applyCtx{tx: tx, r: store.Read(tx)}
	var out []ServiceRef
	balances := map[string]int64{}
	for _, bucket := range [][]byte{store.BucketServers, store.BucketHosting} {
		cur := tx.Bucket(bucket).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if !bytes.Contains(v, []byte(`"paid_until"`)) {
				continue
			}
			s, err := decodeBilled(c, bucket, k, v)
			if err != nil {
				return nil, err
			}
			want, err := renewalWanted(c, s, p, now, balances)
			if err != nil {
				return nil, err
			}
			if want {
				out = append(out, s.ref)
			}
		}
	}
	return out, nil
}

// renewalWanted reports whether a sweep at now would change s.
func renewalWanted(c *applyCtx, s *billed, p RenewalPolicy, now time.Time, balances map[string]int64) (bool, error) {
	if *s.paidUntil == nil || s.gone {
		return false, nil
	}
	due := **s.paidUntil
	issued := *s.renewal != nil && (*s.renewal).PeriodStart.Equal(due)
	want := false
	switch {
	case !issued:
		want = !now.Before(due.AddDate(0, 0, -p.InvoiceDays))
	case !now.Before(due):
		inv, err := renewalInvoice(c, s)
		if err != nil {
			return false, err
		}
		if inv.Status == api.InvoicePaid {
			break
		}
		bal, ok := balances[s.ref.AccountID]
		if !ok {
			acc, err := getAccount(c.tx, s.ref.AccountID)
			if err != nil {
				return false, err
			}
			bal, balances[s.ref.AccountID] = acc.BalanceUsdCents, acc.BalanceUsdCents
		}
		terminate := p.TerminateDays > 0 && !now.Before(due.AddDate(0, 0, p.TerminateDays))
		want = bal >= inv.TotalUsdCents ||
			(*s.suspension == nil && !now.Before(due.AddDate(0, 0, p.SuspendDays))) ||
			owedUnderOperator(*s.suspension, inv, p, due, now) ||
			(terminate && !actionBusy(c, s))
	}
	if !want && !actionBusy(c, s) {
		want = (*s.suspension != nil && s.serving) || (*s.suspension == nil && s.resumable)
	}
	return want, nil
}
