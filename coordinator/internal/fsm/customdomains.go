package fsm

import (
	"fmt"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
)

// ACMEAccountInit creates the cluster's ACME account record; a second one
// is a conflict (the first stays: every leader uses the same key).
type ACMEAccountInit struct {
	Directory string `json:"directory"`
	Email     string `json:"email,omitempty"`
	SealedKey string `json:"sealed_key"`
}

// ACMEAccountRegistered sets the account's URI at the ACME server.
type ACMEAccountRegistered struct {
	SealedKey string `json:"sealed_key"` // which key registered (a stale leader's call changes nothing)
	URI       string `json:"uri"`
}

func applyACMEAccountInit(c *applyCtx, p ACMEAccountInit) (any, error) {
	if p.Directory == "" || p.SealedKey == "" {
		return nil, fmt.Errorf("%w: an acme account needs a directory and a sealed key", ErrInvalid)
	}
	if cur, err := c.r.ACMEAccount(); err == nil {
		return cur, fmt.Errorf("%w: the cluster has an acme account", ErrConflict)
	}
	a := store.ACMEAccount{Directory: p.Directory, Email: p.Email, SealedKey: p.SealedKey, CreatedAt: c.at}
	return a, store.PutJSON(c.tx, store.BucketACME, store.ACMEAccountKey, a)
}

func applyACMEAccountRegistered(c *applyCtx, p ACMEAccountRegistered) (any, error) {
	a, err := c.r.ACMEAccount()
	if err != nil {
		return nil, err
	}
	if a.SealedKey != p.SealedKey || p.URI == "" {
		return nil, fmt.Errorf("%w: not the cluster's acme account", ErrConflict)
	}
	a.URI = p.URI
	return a, store.PutJSON(c.tx, store.BucketACME, store.ACMEAccountKey, a)
}

// CustomDomainSet records (or replaces) a hosting account's custom domain.
// Records is the DNS records shown to the customer (computed by the caller:
// the node's addresses are not in the state).
type CustomDomainSet struct {
	HostingID string          `json:"hosting_id"`
	AccountID string          `json:"account_id"`
	Domain    string          `json:"domain"`
	Token     string          `json:"token"`
	Records   []api.DNSRecord `json:"records"`
	// Detach is the hosting.uncert action that takes a replaced domain
	// off the node (detachOnNode).
	Detach *DetachAction `json:"detach,omitempty"`
	// Lapsed: the name is another customer's verified custom domain whose
	// ownership record the proposer found gone from the name's DNS
	// (levelLapsedClaims): recorded pending without the name.
	Lapsed *LapsedClaim `json:"lapsed,omitempty"`
}

// LapsedClaim names the verified custom domain of another customer whose
// ownership TXT record the proposer found gone at the name's authoritative
// nameservers (none of them holds its token): the holding hosting account
// and the token checked. The token is public (it was published in DNS).
type LapsedClaim struct {
	HostingID string `json:"hosting_id"`
	Token     string `json:"token"`
}

// levelLapsedClaims is the semantics level (level.go) from which a verified
// custom domain no longer holds its name for ever: once its ownership
// record (its token at _hostplane-verify.<domain>) is gone from the name's
// DNS — the domain expired, was sold or moved to another DNS — another
// customer may attach the name (recorded pending, the name still held) and,
// when its own DNS records prove control, take it over as from an
// unverified claim (takeOver: the holder's custom domain is dropped and its
// hosting.uncert takes the name's route and certificate off its node). The
// proposer checks the DNS and names the claim (LapsedClaim); apply checks
// it is still the one holding the name, with that token.
const levelLapsedClaims = 2

// lapsed: cl is another customer's verified custom domain that l, checked
// by the proposer, says has lost its DNS proof.
func (c *applyCtx) lapsed(cl domainClaim, l *LapsedClaim, accountID string) bool {
	return l != nil && cl.verified() && c.level() >= levelLapsedClaims && cl.h.AccountID != accountID &&
		cl.h.ID == l.HostingID && cl.custom.Token == l.Token
}

// DetachAction is the id and deadline (chosen by the proposer) of the
// hosting.uncert action a command opens when it drops a custom domain that
// was verified: only such a domain can have been routed on the node and
// have its certificate there. The rest of the action comes from the state.
type DetachAction struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
}

// CustomDomainVerified marks Domain verified, if it is still the account's.
type CustomDomainVerified struct {
	HostingID string `json:"hosting_id"`
	AccountID string `json:"account_id"`
	Domain    string `json:"domain"`
	// Takeover is the id and deadline (chosen by the proposer) of the
	// hosting.uncert action that takes the name off another hosting
	// account whose primary domain held it unverified (from level
	// levelDomainClaims; takeOver), or whose verified custom domain lost
	// its DNS proof (Lapsed).
	Takeover *DetachAction `json:"takeover,omitempty"`
	// Lapsed: the name's holder is another customer's verified custom
	// domain whose ownership record the proposer found gone
	// (levelLapsedClaims): taken over like an unverified claim.
	Lapsed *LapsedClaim `json:"lapsed,omitempty"`
}

// levelDomainClaims is the semantics level (level.go) from which a name's
// unverified claim — a hosting account's primary domain (never verified)
// or a custom domain whose DNS was not verified yet — no longer blocks
// another hosting account's custom domain: the other account's claim is
// recorded pending (without holding the name) and, once its DNS proves
// control, takes the name over (takeOver). A verified custom domain still
// holds its name against everyone. Below it, the first claim of any kind
// holds the name, as before.
const levelDomainClaims = 2

// domainClaim is the hosting account holding a name in
// BucketHostingDomains, and its custom domain when the name is that (nil:
// the account's primary domain).
type domainClaim struct {
	h      store.HostingAccount
	custom *store.CustomDomain
}

// verified: a custom domain whose DNS proved control; a primary domain
// never is.
func (cl domainClaim) verified() bool {
	return cl.custom != nil && cl.custom.Status == api.CustomDomainVerified
}

// claimOf loads who holds domain (ok false: nobody).
func (c *applyCtx) claimOf(domain string) (cl domainClaim, ok bool, err error) {
	id := c.r.HostingDomainTaken(domain)
	if id == "" {
		return cl, false, nil
	}
	if cl.h, err = c.r.HostingAccountByID(id); err != nil {
		return cl, false, err
	}
	if d, err := c.r.CustomDomain(cl.h.AccountID, cl.h.ID); err == nil && d.Domain == domain {
		cl.custom = &d
	}
	return cl, true, nil
}

// takeOver moves the name of cl, an unverified claim, to the hosting
// account newID whose custom domain was just verified: a pending custom
// domain of another account is dropped (never verified, so never routed on
// its node); a primary domain stops being served for its account — its
// hosting.uncert (p) takes the name's route off that account's node in
// this command, and the account shows domain_released_at. The losing
// account gets hosting.domain.released. Refused with nothing changed while
// the losing account has an action under way (its create, say: the name
// would be routed after this), or without p for a primary domain.
func (c *applyCtx) takeOver(cl domainClaim, domain, newID string, p *DetachAction) error {
	kind := "custom_domain"
	if cl.custom != nil {
		if cl.verified() && cl.h.Status != api.HostingError {
			// A verified custom domain whose DNS proof lapsed: it may be
			// routed on its node with its certificate (not for an account
			// whose create failed: nothing of it is on the node, and it
			// takes no action but its delete).
			if p == nil {
				return fmt.Errorf("%w: taking %s over needs the hosting.uncert action of its holder", ErrInvalid, domain)
			}
			if err := c.openUncert(cl.h, domain, p); err != nil {
				return err
			}
		}
		if err := c.tx.Bucket(store.BucketCustomDomains).Delete([]byte(cl.h.ID)); err != nil {
			return err
		}
	} else {
		kind = "primary"
		h := cl.h
		switch {
		case h.ActionID != "":
			return fmt.Errorf("%w: the hosting account holding %s unverified has an action under way; verify again once it is done", ErrConflict, domain)
		case h.Status == api.HostingError:
			// Its create failed and was undone on the node: nothing of the
			// name is routed there.
		case p == nil:
			return fmt.Errorf("%w: taking %s over needs the hosting.uncert action of its holder", ErrInvalid, domain)
		default:
			if err := c.openUncert(h, domain, p); err != nil {
				return err
			}
			var err error
			if h, err = c.r.OwnedHostingAccount(h.AccountID, h.ID); err != nil {
				return err
			}
		}
		at := c.at
		h.DomainReleasedAt, h.UpdatedAt = &at, c.at
		if err := putHosting(c.tx, h); err != nil {
			return err
		}
	}
	if err := c.tx.Bucket(store.BucketHostingDomains).Put([]byte(domain), []byte(newID)); err != nil {
		return err
	}
	return c.emit(api.EventHostingDomainReleased, cl.h.AccountID, map[string]any{"hostingId": cl.h.ID, "domain": domain, "kind": kind})
}

// CustomDomainDelete detaches the account's custom domain; Detach takes it
// off the node (detachOnNode).
type CustomDomainDelete struct {
	HostingID string        `json:"hosting_id"`
	AccountID string        `json:"account_id"`
	Detach    *DetachAction `json:"detach,omitempty"`
}

// liveHosting loads an account's hosting account that is not deleted.
func (c *applyCtx) liveHosting(accountID, id string) (store.HostingAccount, error) {
	h, err := c.r.OwnedHostingAccount(accountID, id)
	return h, liveErr(err, h.Status == api.HostingDeleted, "hosting account", h.ID, "deleted")
}

// liveCustomDomain loads the custom domain of a hosting account that is not
// deleted.
func (c *applyCtx) liveCustomDomain(accountID, hostingID string) (store.CustomDomain, error) {
	if _, err := c.liveHosting(accountID, hostingID); err != nil {
		return store.CustomDomain{}, err
	}
	return c.r.CustomDomain(accountID, hostingID)
}

// levelCustomDomainVsDelete is the semantics level (level.go) from which
// a custom domain's set or verification (CmdCustomDomainSet,
// CmdCustomDomainVerified) is refused at apply while the account's delete
// is under way (HostingDeleteUnderway), as it is refused once the account
// is deleted. Below it only the handler refused it, before proposing: a
// command that passed that check could still apply after the delete was
// committed, recording a custom domain (a 200 with DNS records to create)
// for a site about to go, or a verified one taking a name over.
const levelCustomDomainVsDelete = 6

// settableHosting is liveHosting for a custom domain's set or
// verification: from levelCustomDomainVsDelete not while the account's
// delete is under way.
func (c *applyCtx) settableHosting(accountID, id string) (store.HostingAccount, error) {
	h, err := c.liveHosting(accountID, id)
	if err != nil || c.level() < levelCustomDomainVsDelete {
		return h, err
	}
	return h, HostingDeleteUnderway(c.r, h)
}

// HostingDeleteUnderway is the 409 action_in_progress naming h's delete
// while it is under way (the action h names is an unfinished
// hosting.delete), nil when it is not. An action h names that cannot be
// read is an error of its own (never read as no delete under way, nor as
// the request's 404).
func HostingDeleteUnderway(r store.ReadTx, h store.HostingAccount) error {
	if h.ActionID == "" {
		return nil
	}
	cur, err := r.Action(h.ActionID)
	if err != nil {
		return fmt.Errorf("hosting account %s: reading its action %s: %s", h.ID, h.ActionID, err.Error())
	}
	if cur.Finished() || cur.Command != api.ActionHostingDelete {
		return nil
	}
	return &ActionBusyError{ServerID: h.ID, ActionID: cur.ID, Command: cur.Command, Resource: "hosting account"}
}

// detachOnNode opens the hosting.uncert action of the custom domain d of h
// (p: its id and deadline) when d was verified, so that the node stops
// routing it and removes its certificate; else the node would go on serving
// a name the cluster has freed for another account (whose certificate the
// node would then refuse to install: the name routed to another user). A
// command without p (proposed before detaching existed) opens none.
// Refused, with nothing written, while the account has an action under way.
func (c *applyCtx) detachOnNode(h store.HostingAccount, d store.CustomDomain, p *DetachAction) error {
	if p == nil || d.Status != api.CustomDomainVerified {
		return nil
	}
	return c.openUncert(h, d.Domain, p)
}

// levelUncertRetry is the semantics level (level.go) from which the
// hosting.uncert a command opens (detachOnNode, takeOver) is retried like
// a failed provisioning's cleanup: marked as one (meta cleanup_of: its own
// id), a failure the dispatcher gives a retry wait opens the next attempt
// in the same command, held back by the cleanup back-off, at most
// MaxCleanupAttempts in all (retryCleanup); the node answering that it
// holds no such account counts as done (cleanupGone: nothing of the name
// can be routed to it there). Below it a failed uncert stays failed and
// the node goes on routing the name to that account, so another account
// that proved control of it never gets its certificate installed there.
const levelUncertRetry = 2

// openUncert opens the hosting.uncert (p: id and deadline) that takes domain
// off h's node: its route to h and its certificate. Refused, with nothing
// written, while h has an action under way.
func (c *applyCtx) openUncert(h store.HostingAccount, domain string, p *DetachAction) error {
	params, err := action.Encode(&action.HostingUncert{Domain: domain})
	if err != nil {
		return err
	}
	a := store.Action{Action: api.Action{ID: p.ID, Command: api.ActionHostingUncert, ResourceType: ResourceHosting, ResourceID: h.ID},
		AccountID: h.AccountID, NodeID: h.NodeID, Target: h.Username, Params: params, Mutating: true, Deadline: p.Deadline}
	if c.level() >= levelUncertRetry {
		a.Meta = map[string]string{metaCleanupOf: p.ID}
	}
	_, err = applyHostingAction(c, HostingAction{Action: a})
	return err
}

func (c *applyCtx) dropCustomDomain(d store.CustomDomain) error {
	if string(c.tx.Bucket(store.BucketHostingDomains).Get([]byte(d.Domain))) == d.HostingID {
		if err := c.tx.Bucket(store.BucketHostingDomains).Delete([]byte(d.Domain)); err != nil {
			return err
		}
	}
	return c.tx.Bucket(store.BucketCustomDomains).Delete([]byte(d.HostingID))
}

func applyCustomDomainSet(c *applyCtx, p CustomDomainSet) (any, error) {
	if p.Domain == "" || p.Token == "" {
		return nil, fmt.Errorf("%w: a custom domain needs a domain and a token", ErrInvalid)
	}
	h, err := c.settableHosting(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	old, oldErr := c.r.CustomDomain(p.AccountID, h.ID)
	if oldErr == nil && old.Domain == p.Domain {
		return old.CustomDomain, nil // the same domain again: the same token and records
	}
	holds := true // the new custom domain holds its name in the index
	if owner := c.r.HostingDomainTaken(p.Domain); owner != "" {
		msg := fmt.Sprintf("domain %s is already attached to a hosting account", p.Domain)
		if owner == h.ID {
			msg = fmt.Sprintf("domain %s is this hosting account's own domain", p.Domain)
		} else if c.level() >= levelDomainClaims {
			cl, _, err := c.claimOf(p.Domain)
			if err != nil {
				return nil, err
			}
			// Another hosting account of the same customer keeps it: the
			// customer frees it there (no one to prove control against).
			holds = (cl.verified() && !c.lapsed(cl, p.Lapsed, p.AccountID)) || cl.h.AccountID == p.AccountID
			if cl.verified() {
				msg = fmt.Sprintf("domain %s is the verified custom domain of another hosting account", p.Domain)
				if c.level() >= levelLapsedClaims && cl.h.AccountID != p.AccountID {
					msg += fmt.Sprintf(" whose ownership record _hostplane-verify.%s is still in the domain's DNS", p.Domain)
				}
			}
		}
		if holds {
			return nil, &FieldConflictError{Field: "domain", Msg: msg}
		}
	}
	if oldErr == nil {
		if err := c.detachOnNode(h, old, p.Detach); err != nil {
			return nil, err
		}
		if err := c.dropCustomDomain(old); err != nil {
			return nil, err
		}
	}
	d := store.CustomDomain{AccountID: p.AccountID, Token: p.Token, CustomDomain: api.CustomDomain{
		HostingID: h.ID, Domain: p.Domain, Status: api.CustomDomainPendingDNS, Records: p.Records, CreatedAt: c.at}}
	if holds {
		if err := c.tx.Bucket(store.BucketHostingDomains).Put([]byte(p.Domain), []byte(h.ID)); err != nil {
			return nil, err
		}
	}
	if err := store.PutJSON(c.tx, store.BucketCustomDomains, []byte(h.ID), d); err != nil {
		return nil, err
	}
	return d.CustomDomain, nil
}

func applyCustomDomainVerified(c *applyCtx, p CustomDomainVerified) (any, error) {
	if _, err := c.settableHosting(p.AccountID, p.HostingID); err != nil {
		return nil, err
	}
	d, err := c.r.CustomDomain(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	if d.Domain != p.Domain {
		return nil, fmt.Errorf("%w: the custom domain changed to %s during the check", ErrConflict, d.Domain)
	}
	if c.level() >= levelDomainClaims {
		// A custom domain recorded while another account's unverified
		// claim held the name takes it now, its DNS proven.
		cl, held, err := c.claimOf(d.Domain)
		switch {
		case err != nil:
			return nil, err
		case held && cl.h.ID == d.HostingID:
		case held && cl.verified() && !c.lapsed(cl, p.Lapsed, d.AccountID):
			return nil, &FieldConflictError{Field: "domain", Msg: fmt.Sprintf("domain %s was verified by another hosting account first", d.Domain)}
		case held && cl.h.AccountID == d.AccountID:
			// Another hosting account of the same customer holds it (it
			// took the name after this claim was recorded pending): as at
			// PUT, the name does not move between a customer's own hosting
			// accounts behind its back; the customer frees it there.
			return nil, &FieldConflictError{Field: "domain", Msg: fmt.Sprintf("domain %s is held by your hosting account %s: remove it there first", d.Domain, cl.h.ID)}
		case held:
			if err := c.takeOver(cl, d.Domain, d.HostingID, p.Takeover); err != nil {
				return nil, err
			}
		default:
			if err := c.tx.Bucket(store.BucketHostingDomains).Put([]byte(d.Domain), []byte(d.HostingID)); err != nil {
				return nil, err
			}
		}
	}
	if d.Status != api.CustomDomainVerified {
		at := c.at
		d.Status, d.VerifiedAt = api.CustomDomainVerified, &at
		if err := store.PutJSON(c.tx, store.BucketCustomDomains, []byte(d.HostingID), d); err != nil {
			return nil, err
		}
	}
	return d.CustomDomain, nil
}

func applyCustomDomainDelete(c *applyCtx, p CustomDomainDelete) (any, error) {
	d, err := c.r.CustomDomain(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	if h, err := c.r.OwnedHostingAccount(p.AccountID, p.HostingID); err == nil && h.Status != api.HostingDeleted {
		if err := c.detachOnNode(h, d, p.Detach); err != nil {
			return nil, err
		}
	}
	if err := c.dropCustomDomain(d); err != nil {
		return nil, err
	}
	return nil, nil
}

// CertOrderStart records that the leader orders a certificate for Domain
// (OrderID: its own name for the order) until Until at the latest. Another
// order of the domain still in flight is a conflict.
type CertOrderStart struct {
	HostingID string    `json:"hosting_id"`
	Domain    string    `json:"domain"`
	OrderID   string    `json:"order_id"`
	Until     time.Time `json:"until"`
	// Owner names the leadership running the order; SealedKey the
	// certificate key (sealed) it is finalized with. Proposed again with
	// the same OrderID: by the owner with OrderURL once the ACME order
	// exists (Note: why a recorded order was not resumed), or by a new
	// leader taking the order over (Owner changes; URL and key are kept).
	Owner     string `json:"owner,omitempty"`
	SealedKey string `json:"sealed_key,omitempty"`
	OrderURL  string `json:"order_url,omitempty"`
	Note      string `json:"note,omitempty"`
}

// CertIssued records the certificate the order OrderID obtained.
type CertIssued struct {
	HostingID string    `json:"hosting_id"`
	Domain    string    `json:"domain"`
	OrderID   string    `json:"order_id"`
	Chain     string    `json:"chain"`
	SealedKey string    `json:"sealed_key"`
	NotAfter  time.Time `json:"not_after"`
	RenewAt   time.Time `json:"renew_at"`
}

// CertFailed records that the order OrderID failed (Reason: the ACME
// server's or the node's error, no secret) and is tried again at RetryAt
// (certissue.RetryAfter of the failures, computed by the proposer).
// KeepOrder (certissue.ErrResumeOrder: the order was finalized, so the CA
// issues its certificate, or could not be fetched) keeps the order
// recorded, its URL and key, in flight until RetryAt: the retry resumes it
// by its URL and fetches that certificate instead of ordering a second one.
type CertFailed struct {
	HostingID string    `json:"hosting_id"`
	Domain    string    `json:"domain"`
	OrderID   string    `json:"order_id"`
	Reason    string    `json:"reason"`
	RetryAt   time.Time `json:"retry_at"`
	KeepOrder bool      `json:"keep_order,omitempty"`
}

// CertRetry makes a failed certificate due now. The proposer checked
// certissue.ManualRetryAllowed against the name's failures.
type CertRetry struct {
	HostingID string `json:"hosting_id"`
	AccountID string `json:"account_id"`
}

// maxCertReason bounds the failure reason kept and shown.
const maxCertReason = 500

// certDomain loads the verified custom domain of hostingID, if it still is
// domain.
func (c *applyCtx) certDomain(hostingID, domain string) (store.CustomDomain, error) {
	var d store.CustomDomain
	if err := store.GetJSON(c.tx, store.BucketCustomDomains, []byte(hostingID), &d); err != nil {
		return d, err
	}
	if d.Domain != domain {
		return d, fmt.Errorf("%w: the custom domain of %s is no longer %s", ErrConflict, hostingID, domain)
	}
	if d.Status != api.CustomDomainVerified {
		return d, fmt.Errorf("%w: custom domain %s is not verified", ErrConflict, domain)
	}
	if d.Cert == nil {
		d.Cert = &store.CertState{}
	}
	return d, nil
}

func (c *applyCtx) putCert(d store.CustomDomain) (any, error) {
	d.Certificate = certStatus(d.Cert)
	return d.CustomDomain, store.PutJSON(c.tx, store.BucketCustomDomains, []byte(d.HostingID), d)
}

// certStatus is the customer's view of a certificate state.
func certStatus(s *store.CertState) *api.CertificateStatus {
	if s == nil {
		return nil
	}
	t := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		return &v
	}
	st := &api.CertificateStatus{NotAfter: t(s.NotAfter), RenewAt: t(s.RenewAt)}
	switch {
	case s.OrderID != "":
		st.Status, st.Reason = api.CertificatePending, s.OrderNote
	case s.Failures > 0:
		st.Status, st.Reason, st.RetryAt = api.CertificateFailed, s.LastError, t(s.RetryAt)
	case s.InstallError != "":
		st.Status, st.Reason, st.RetryAt = api.CertificateFailed, "installing on the hosting node: "+s.InstallError, t(s.RetryAt)
	case s.Chain != "" && !s.InstalledAt.IsZero():
		st.Status = api.CertificateIssued
	default:
		st.Status = api.CertificatePending
	}
	return st
}

func applyCertOrderStart(c *applyCtx, p CertOrderStart) (any, error) {
	if p.OrderID == "" || !p.Until.After(c.at) {
		return nil, fmt.Errorf("%w: an order needs an id and an end in the future", ErrInvalid)
	}
	d, err := c.certDomain(p.HostingID, p.Domain)
	if err != nil {
		return nil, err
	}
	if strings.Contains(p.SealedKey, "PRIVATE KEY") {
		return nil, fmt.Errorf("%w: a certificate's key is recorded sealed only", ErrInvalid)
	}
	s := d.Cert
	if s.OrderID != "" && s.OrderID != p.OrderID && c.at.Before(s.OrderUntil) {
		return d.CustomDomain, fmt.Errorf("%w: order %s of %s is in flight until %s", ErrConflict, s.OrderID, p.Domain, s.OrderUntil.Format(time.RFC3339))
	}
	if s.OrderID == p.OrderID && p.OrderURL != "" && s.OrderOwner != p.Owner {
		// The order was taken over: its former leader's ACME order is
		// left unanswered.
		return d.CustomDomain, fmt.Errorf("%w: order %s of %s was taken over", ErrConflict, p.OrderID, p.Domain)
	}
	if s.OrderID != p.OrderID {
		s.OrderAt, s.OrderURL, s.OrderKey, s.OrderNote = c.at, "", "", ""
	}
	s.OrderID, s.OrderUntil, s.OrderOwner = p.OrderID, p.Until, p.Owner
	if p.SealedKey != "" {
		s.OrderKey = p.SealedKey
	}
	if p.OrderURL != "" {
		s.OrderURL, s.OrderNote = p.OrderURL, boundReason(p.Note)
	}
	return c.putCert(d)
}

// orderOf loads the domain whose order in flight is orderID.
func (c *applyCtx) orderOf(hostingID, domain, orderID string) (store.CustomDomain, error) {
	d, err := c.certDomain(hostingID, domain)
	if err != nil {
		return d, err
	}
	if d.Cert.OrderID == "" || d.Cert.OrderID != orderID {
		return d, fmt.Errorf("%w: order %s of %s is not the one in flight", ErrConflict, orderID, domain)
	}
	d.Cert.OrderID, d.Cert.OrderAt, d.Cert.OrderUntil = "", time.Time{}, time.Time{}
	d.Cert.OrderURL, d.Cert.OrderKey, d.Cert.OrderOwner, d.Cert.OrderNote = "", "", "", ""
	return d, nil
}

func applyCertIssued(c *applyCtx, p CertIssued) (any, error) {
	if p.Chain == "" || p.SealedKey == "" || p.NotAfter.IsZero() {
		return nil, fmt.Errorf("%w: an issued certificate needs a chain, a sealed key and not_after", ErrInvalid)
	}
	if strings.Contains(p.SealedKey, "PRIVATE KEY") || strings.Contains(p.Chain, "PRIVATE KEY") {
		return nil, fmt.Errorf("%w: a certificate's key is recorded sealed only", ErrInvalid)
	}
	d, err := c.orderOf(p.HostingID, p.Domain, p.OrderID)
	if err != nil {
		return nil, err
	}
	s := d.Cert
	s.Chain, s.SealedKey, s.NotAfter, s.RenewAt, s.IssuedAt = p.Chain, p.SealedKey, p.NotAfter, p.RenewAt, c.at
	s.Failures, s.FailedAt, s.LastError, s.RetryAt = 0, nil, "", time.Time{}
	s.InstalledAt, s.InstallError = time.Time{}, ""
	return c.putCert(d)
}

func applyCertFailed(c *applyCtx, p CertFailed) (any, error) {
	var d store.CustomDomain
	var err error
	if p.KeepOrder {
		d, err = c.certDomain(p.HostingID, p.Domain)
		if err == nil && (d.Cert.OrderID == "" || d.Cert.OrderID != p.OrderID) {
			err = fmt.Errorf("%w: order %s of %s is not the one in flight", ErrConflict, p.OrderID, p.Domain)
		}
		if err == nil && d.Cert.OrderURL == "" {
			err = fmt.Errorf("%w: order %s of %s has no recorded URL to resume", ErrConflict, p.OrderID, p.Domain)
		}
	} else {
		d, err = c.orderOf(p.HostingID, p.Domain, p.OrderID)
	}
	if err != nil {
		return nil, err
	}
	s := d.Cert
	reason := boundReason(p.Reason)
	if p.KeepOrder {
		// The order stays in flight, taken over (resumed by its URL) at
		// RetryAt by whoever leads then.
		s.OrderUntil = p.RetryAt
		s.OrderNote = boundReason("the order is resumed at " + p.RetryAt.UTC().Format(time.RFC3339) + " after: " + p.Reason)
	}
	var recent []time.Time
	for _, f := range s.FailedAt {
		if f.After(c.at.Add(-time.Hour)) {
			recent = append(recent, f)
		}
	}
	s.Failures, s.FailedAt, s.LastError, s.RetryAt = s.Failures+1, append(recent, c.at), reason, p.RetryAt
	return c.putCert(d)
}

func applyCertRetry(c *applyCtx, p CertRetry) (any, error) {
	d, err := c.liveCustomDomain(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	if d.Status != api.CustomDomainVerified {
		return nil, fmt.Errorf("%w: custom domain %s is not verified", ErrConflict, d.Domain)
	}
	if d.Cert != nil && d.Cert.OrderID == "" {
		d.Cert.RetryAt = c.at
		if d.Cert.Failures == 0 {
			d.Cert.RenewAt = c.at // an issued certificate is renewed now
		}
		return c.putCert(d)
	}
	return d.CustomDomain, nil // nothing ordered yet, or an order is under way
}

// CertInstalled records that the node took the certificate whose chain is
// Chain (Error empty), or why not (retried at RetryAt with the same
// certificate). A result for another chain than the current one changes
// nothing.
type CertInstalled struct {
	HostingID string    `json:"hosting_id"`
	Domain    string    `json:"domain"`
	Chain     string    `json:"chain"`
	Error     string    `json:"error,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitempty"`
}

func applyCertInstalled(c *applyCtx, p CertInstalled) (any, error) {
	d, err := c.certDomain(p.HostingID, p.Domain)
	if err != nil {
		return nil, err
	}
	s := d.Cert
	if s.Chain == "" || s.Chain != p.Chain {
		return nil, fmt.Errorf("%w: not the current certificate of %s", ErrConflict, p.Domain)
	}
	if p.Error == "" {
		s.InstalledAt, s.InstallError, s.RetryAt = c.at, "", time.Time{}
	} else {
		s.InstallError, s.RetryAt = boundReason(p.Error), p.RetryAt
	}
	return c.putCert(d)
}

func boundReason(r string) string {
	r = strings.ToValidUTF8(r, "?")
	if len(r) > maxCertReason {
		r = strings.ToValidUTF8(r[:maxCertReason], "") + "…"
	}
	return r
}
