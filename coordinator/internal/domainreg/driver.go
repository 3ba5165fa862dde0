// Package domainreg drives registered domains' registry operations on the
// leader (issue 16): registrations, changes of nameservers, transfer lock and
// WHOIS privacy, child name servers (host objects with glue), and renewals. Each operation was recorded through Raft
// first (fsm.CmdDomainOrder, CmdDomainChange, CmdDomainSweep) with the base
// of its client transaction ids; the driver calls the registry with those
// ids and ends the operation with fsm.CmdDomainOpDone: committed, or rolled
// back with the reason (and the money refunded).
//
// Exactly once: every registry call of an operation has a ClTRID derived
// from the operation's id, and the registry applies a ClTRID at most once
// (registrar package documentation). A leader killed between the call and
// the end leaves the operation open; the next leader's driver repeats the
// call with the same ClTRID, learns the original answer and ends it.
//
// An operation this leadership recorded and whose call got a definite "not
// applied" (registrar.KindUnavailable: the registry could not be reached) is
// rolled back with the reason. An operation another leader may have sent,
// or a call whose outcome is unknown, is repeated until the registry gives a
// definite answer: rolling it back could leave the registry changed behind
// the customer's back.
package domainreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// Failpoint steps (crash tests only: Driver.Failpoint).
const (
	// StepBeforeCall is reached before an operation's first registry call.
	StepBeforeCall = "domainreg:before-call"
	// StepAfterCall is reached after the registry applied every call of
	// an operation, before the end is proposed.
	StepAfterCall = "domainreg:after-call"
)

// Driver runs the open registry operations while its node leads.
type Driver struct {
	Registrar registrar.Registrar
	State     store.Reader
	Apply     func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)
	Now       func() time.Time
	Log       *slog.Logger
	// RetryInitial and RetryMax bound the back-off of repeated calls.
	RetryInitial, RetryMax time.Duration
	// Failpoint, if set, is called at each Step*; a crash test's hook
	// kills the process there.
	Failpoint func(step string)
	// OpenAuthCode unseals a transfer's auth code (SealAuthCodeID of the
	// domain); ClientID is this registrar's account at the registry (a
	// pending transfer is done once the registry names it the sponsor).
	OpenAuthCode func(id, sealed string) (string, error)
	ClientID     string

	once sync.Once
	kick chan struct{}
}

func (d *Driver) init() {
	d.once.Do(func() {
		d.kick = make(chan struct{}, 1)
		if d.RetryInitial <= 0 {
			d.RetryInitial = 500 * time.Millisecond
		}
		if d.RetryMax <= 0 {
			d.RetryMax = 30 * time.Second
		}
		if d.Now == nil {
			d.Now = time.Now
		}
	})
}

// Kick makes a running driver look for open operations now.
func (d *Driver) Kick() {
	d.init()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run drives open operations until ctx ends (leadership lost).
func (d *Driver) Run(ctx context.Context) {
	d.init()
	runStart := d.Now()
	var mu sync.Mutex
	inflight := map[string]bool{}
	later := map[string]time.Time{} // op id → when a pending transfer is asked again
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var open []store.RegDomain
		if err := d.State.Read(func(r store.ReadTx) (err error) { open, err = r.OpenRegDomainOps(); return }); err != nil {
			d.Log.Warn("list open domain operations", "err", err)
		}
		for _, dom := range open {
			mu.Lock()
			retry, wasPending := later[dom.Op.ID]
			busy := inflight[dom.ID] || time.Now().Before(retry)
			if !busy {
				inflight[dom.ID] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { mu.Lock(); delete(inflight, dom.ID); mu.Unlock() }()
				// An operation recorded before this leadership began may
				// have been sent by the previous leader.
				inherited := dom.Op.StartedAt.Before(runStart) || wasPending
				err := d.drive(ctx, dom, inherited)
				switch {
				case errors.Is(err, errTransferPending):
					mu.Lock()
					later[dom.Op.ID] = time.Now().Add(d.RetryMax)
					mu.Unlock()
				case err != nil && ctx.Err() == nil:
					d.Log.Warn("domain operation not ended; will retry", "domain", dom.ID, "op", dom.Op.ID, "kind", dom.Op.Kind, "err", err)
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-tick.C:
		}
	}
}

// outcome is how an operation ended at the registry.
type outcome struct {
	ok      bool
	reason  string
	expires *time.Time
}

// drive runs one operation's registry calls and proposes its end.
func (d *Driver) drive(ctx context.Context, dom store.RegDomain, inherited bool) error {
	op := *dom.Op
	if d.Failpoint != nil {
		d.Failpoint(StepBeforeCall)
	}
	c := &caller{d: d, inherited: inherited}
	var out outcome
	var err error
	switch op.Kind {
	case store.RegOpRegister:
		out, err = d.register(ctx, c, dom, op)
	case store.RegOpChange:
		out, err = d.change(ctx, c, dom, op)
	case store.RegOpRenew:
		out, err = d.renew(ctx, c, dom, op)
	case store.RegOpTransfer:
		out, err = d.transfer(ctx, c, dom, op)
	case store.RegOpHost:
		out, err = d.host(ctx, c, dom, op)
	default:
		out = outcome{reason: "unknown operation " + op.Kind}
	}
	if err != nil {
		return err // ctx ended: the next leader goes on
	}
	if out.ok && d.Failpoint != nil {
		d.Failpoint(StepAfterCall)
	}
	env, err := fsm.NewEnvelope(fsm.CmdDomainOpDone, d.Now(), fsm.DomainOpDone{DomainID: dom.ID, OpID: op.ID, OK: out.ok, Reason: out.reason, Expires: out.expires})
	if err != nil {
		return err
	}
	res, err := d.Apply(ctx, env)
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	d.Log.Info("domain operation ended", "domain", dom.ID, "name", dom.Name, "op", op.ID, "kind", op.Kind, "ok", out.ok, "reason", out.reason)
	return nil
}

// caller makes one operation's calls: a call is repeated (same ClTRID)
// while its outcome is unknown, or while the registry is unreachable after
// the call may have been applied (an earlier attempt's answer was lost, or
// the operation is inherited from another leader); it fails on a definite
// refusal, or on an unreachable registry when the call cannot have been
// applied.
type caller struct {
	d         *Driver
	inherited bool
}

// errGaveUp is a definite failure; its text is the reason the customer sees.
type errGaveUp struct{ reason string }

func (e *errGaveUp) Error() string { return e.reason }

func (c *caller) call(ctx context.Context, what string, f func(ctx context.Context) error) error {
	wait := c.d.RetryInitial
	maybeSent := c.inherited
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch registrar.KindOf(err) {
		case registrar.KindRefused, registrar.KindExists, registrar.KindNotFound:
			return &errGaveUp{reason: what + ": the registry refused: " + reason(err)}
		case registrar.KindUnavailable:
			// Nothing of this call was applied; an earlier call of the
			// operation may have been, so then it must be learned.
			if !maybeSent && attempt >= 2 {
				return &errGaveUp{reason: what + ": the registry could not be reached: " + reason(err)}
			}
		case registrar.KindUnknown:
			maybeSent = true
		}
		c.d.Log.Warn("registry call failed; repeating it with the same transaction id", "call", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, c.d.RetryMax)
	}
}

// reason is a registry error's text for the customer: the registry's
// reason, or the kind when it gave none.
func reason(err error) string {
	var e *registrar.Error
	if errors.As(err, &e) {
		r := e.Reason
		if r == "" {
			r = e.Kind.String()
		}
		if e.Code != 0 {
			r = fmt.Sprintf("%s (%d)", r, e.Code)
		}
		return r
	}
	return err.Error()
}

// gaveUp turns a definite failure into an outcome; other errors (ctx) pass.
func gaveUp(err error) (outcome, error) {
	var g *errGaveUp
	if errors.As(err, &g) {
		return outcome{reason: g.reason}, nil
	}
	return outcome{}, err
}

func (d *Driver) register(ctx context.Context, c *caller, dom store.RegDomain, op store.RegDomainOp) (outcome, error) {
	ct := dom.Contact
	err := c.call(ctx, "contact create", func(ctx context.Context) error {
		_, err := d.Registrar.CreateContact(ctx, registrar.ContactRequest{ClTRID: op.ClTRID + "-c", Contact: registrar.Contact{
			ID: dom.ContactID, Name: ct.Name, Org: ct.Org, Street: ct.Street, City: ct.City, SP: ct.SP, PC: ct.PC, CC: ct.CC,
			Voice: ct.Voice, Email: ct.Email,
		}})
		if registrar.KindOf(err) == registrar.KindExists {
			return nil // ours, from an earlier attempt
		}
		return err
	})
	if err != nil {
		return gaveUp(err)
	}
	var got registrar.Domain
	err = c.call(ctx, "registration", func(ctx context.Context) (err error) {
		got, err = d.Registrar.Register(ctx, registrar.RegisterRequest{ClTRID: op.ClTRID + "-r", Name: dom.Name, Years: op.Years,
			Nameservers: dom.Nameservers, Contacts: registrar.Contacts{Registrant: dom.ContactID}, Privacy: dom.WhoisPrivacy})
		return err
	})
	if err != nil {
		return gaveUp(err)
	}
	return extended(got.Expires, dom.CreatedAt, op.Years), nil
}

func (d *Driver) renew(ctx context.Context, c *caller, dom store.RegDomain, op store.RegDomainOp) (outcome, error) {
	var got registrar.RenewResult
	cur := *dom.ExpiresAt
	if op.CurrentExpiry != nil {
		cur = *op.CurrentExpiry
	}
	err := c.call(ctx, "renewal", func(ctx context.Context) (err error) {
		got, err = d.Registrar.Renew(ctx, registrar.RenewRequest{ClTRID: op.ClTRID, Name: dom.Name, Years: op.Years, CurrentExpiry: cur})
		return err
	})
	if err != nil {
		return gaveUp(err)
	}
	return extended(got.Expires, cur, op.Years), nil
}

// extended is the outcome of a registration or renewal the registry took:
// the expiry it answered (in UTC), or from plus years when it answered none.
func extended(answered, from time.Time, years int) outcome {
	exp := answered.UTC()
	if exp.IsZero() {
		exp = from.AddDate(years, 0, 0)
	}
	return outcome{ok: true, expires: &exp}
}

// changeStep is one setting of a change: apply pushes it to the registry,
// undo sets it back.
type changeStep struct {
	name        string
	apply, undo func(ctx context.Context) error
}

// setting is the step that sets a registry setting to want with
// transaction id clTRID, and back to was with clTRID+"-undo".
func setting[V any](name, clTRID string, want, was V, set func(ctx context.Context, clTRID string, v V) error) changeStep {
	to := func(id string, v V) func(ctx context.Context) error {
		return func(ctx context.Context) error { return set(ctx, id, v) }
	}
	return changeStep{name, to(clTRID, want), to(clTRID+"-undo", was)}
}

// ignoreResult is the error of a registry call whose answer is not needed.
func ignoreResult[R any](_ R, err error) error { return err }

// change pushes a change's settings one call each; when one is refused, the
// ones already applied are set back (with their own transaction ids) so the
// registry holds what the domain holds, and the change fails.
func (d *Driver) change(ctx context.Context, c *caller, dom store.RegDomain, op store.RegDomainOp) (outcome, error) {
	var steps []changeStep
	if op.Nameservers != nil {
		steps = append(steps, setting("nameservers", op.ClTRID+"-ns", op.Nameservers, slices.Clone(dom.Nameservers), func(ctx context.Context, id string, ns []string) error {
			return ignoreResult(d.Registrar.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: id, Name: dom.Name, Nameservers: ns}))
		}))
	}
	if op.TransferLock != nil {
		steps = append(steps, setting("transfer lock", op.ClTRID+"-lock", *op.TransferLock, dom.TransferLock, func(ctx context.Context, id string, on bool) error {
			return ignoreResult(d.Registrar.SetLock(ctx, registrar.LockRequest{ClTRID: id, Name: dom.Name, Locked: on}))
		}))
	}
	if op.WhoisPrivacy != nil {
		steps = append(steps, setting("whois privacy", op.ClTRID+"-priv", *op.WhoisPrivacy, dom.WhoisPrivacy, func(ctx context.Context, id string, on bool) error {
			return ignoreResult(d.Registrar.SetPrivacy(ctx, registrar.PrivacyRequest{ClTRID: id, Name: dom.Name, Enabled: on}))
		}))
	}
	for i, s := range steps {
		err := c.call(ctx, s.name, s.apply)
		if err == nil {
			continue
		}
		var g *errGaveUp
		if !errors.As(err, &g) {
			return outcome{}, err
		}
		var undone []string
		for _, prev := range slices.Backward(steps[:i]) {
			// The undo must reach the registry: it is repeated until it does.
			u := &caller{d: d, inherited: true}
			if err := u.call(ctx, prev.name+" (set back)", prev.undo); err != nil {
				var ug *errGaveUp
				if !errors.As(err, &ug) {
					return outcome{}, err
				}
				return outcome{reason: g.reason + "; setting back " + prev.name + " failed too: " + ug.reason}, nil
			}
			undone = append(undone, prev.name)
		}
		r := g.reason
		if len(undone) > 0 {
			r += "; " + strings.Join(undone, " and ") + " set back"
		}
		return outcome{reason: r}, nil
	}
	return outcome{ok: true}, nil
}

// host creates, changes or deletes a child name server's host object (one
// call, transaction id ClTRID+"-h": a repeat learns the first answer, and
// SetHost/DeleteHost send nothing when the registry holds what is asked).
// A refusal (the registry's host mapping off, the host still delegated to)
// rolls the operation back with the registry's reason.
func (d *Driver) host(ctx context.Context, c *caller, dom store.RegDomain, op store.RegDomainOp) (outcome, error) {
	h := op.Host
	if h == nil {
		return outcome{reason: "host operation without a host"}, nil
	}
	what, id := "child name server "+h.Name, op.ClTRID+"-h"
	err := c.call(ctx, what, func(ctx context.Context) error {
		if h.Delete {
			return ignoreResult(d.Registrar.DeleteHost(ctx, registrar.DeleteRequest{ClTRID: id, Name: h.Name}))
		}
		return ignoreResult(d.Registrar.SetHost(ctx, registrar.HostRequest{ClTRID: id, Name: h.Name, Addrs: h.Addresses}))
	})
	if err != nil {
		return gaveUp(err)
	}
	return outcome{ok: true}, nil
}

// SealAuthCodeID is the associated data a domain's transfer auth code is
// sealed under.
func SealAuthCodeID(domainID string) string { return "domain-auth-code:" + domainID }

// errTransferPending keeps a transfer open while the losing registrar or the
// registry has not completed it.
var errTransferPending = errors.New("the transfer is pending at the registry")

// transfer asks the registry to move the domain here (one year added). A
// transfer the registry completes later stays open; each later drive first
// asks the registry whether this registrar sponsors the domain now.
func (d *Driver) transfer(ctx context.Context, c *caller, dom store.RegDomain, op store.RegDomainOp) (outcome, error) {
	// A transfer asked before (pending, or by another leader) may be done:
	// the registry then names this registrar the sponsor.
	if c.inherited && d.ClientID != "" {
		if info, err := d.Registrar.Info(ctx, dom.Name); err == nil && info.Sponsor == d.ClientID && !info.Expires.IsZero() {
			exp := info.Expires.UTC()
			return outcome{ok: true, expires: &exp}, nil
		}
	}
	if d.OpenAuthCode == nil {
		return outcome{reason: "transfer: this coordinator cannot open auth codes (no key-encryption key)"}, nil
	}
	code, err := d.OpenAuthCode(SealAuthCodeID(dom.ID), op.SealedAuthCode)
	if err != nil {
		return outcome{}, fmt.Errorf("the auth code of %s cannot be unsealed (is the KEK file the same on every coordinator?): %w", dom.ID, err)
	}
	var got registrar.TransferResult
	err = c.call(ctx, "transfer", func(ctx context.Context) (err error) {
		got, err = d.Registrar.Transfer(ctx, registrar.TransferRequest{ClTRID: op.ClTRID + "-t", Name: dom.Name, AuthCode: code, Years: 1})
		return err
	})
	if err != nil {
		return gaveUp(err)
	}
	switch got.Status {
	case "clientRejected", "clientCancelled", "serverCancelled":
		return outcome{reason: "transfer: the registry answered " + got.Status}, nil
	case "pending":
		return outcome{}, errTransferPending
	}
	if got.Pending {
		return outcome{}, errTransferPending
	}
	exp := got.Expires.UTC()
	if exp.IsZero() {
		info, err := d.Registrar.Info(ctx, dom.Name)
		if err != nil {
			return outcome{}, err
		}
		exp = info.Expires.UTC()
	}
	return outcome{ok: true, expires: &exp}, nil
}
