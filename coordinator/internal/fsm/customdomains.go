package fsm

import (
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Custom domain commands use type numbers 120-139 (append-only).
const (
	CmdCustomDomainSet      CommandType = 120
	CmdCustomDomainVerified CommandType = 121
	CmdCustomDomainDelete   CommandType = 122
	// CmdACMEAccountInit records the cluster's one ACME account (key sealed).
	CmdACMEAccountInit CommandType = 123
	// CmdACMEAccountRegistered records the account's URI at the server.
	CmdACMEAccountRegistered CommandType = 124
)

var customDomainHandlers = map[CommandType]handlerFunc{
	CmdCustomDomainSet:       typed(applyCustomDomainSet),
	CmdCustomDomainVerified:  typed(applyCustomDomainVerified),
	CmdCustomDomainDelete:    typed(applyCustomDomainDelete),
	CmdACMEAccountInit:       typed(applyACMEAccountInit),
	CmdACMEAccountRegistered: typed(applyACMEAccountRegistered),
}

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
}

// CustomDomainVerified marks Domain verified, if it is still the account's.
type CustomDomainVerified struct {
	HostingID string `json:"hosting_id"`
	AccountID string `json:"account_id"`
	Domain    string `json:"domain"`
}

// CustomDomainDelete detaches the account's custom domain.
type CustomDomainDelete struct {
	HostingID string `json:"hosting_id"`
	AccountID string `json:"account_id"`
}

func (c *applyCtx) liveHosting(accountID, id string) (store.HostingAccount, error) {
	h, err := c.r.OwnedHostingAccount(accountID, id)
	if err != nil {
		return h, err
	}
	if h.Status == api.HostingDeleted {
		return h, fmt.Errorf("%w: hosting account %s is deleted", ErrConflict, h.ID)
	}
	return h, nil
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
	h, err := c.liveHosting(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	old, oldErr := c.r.CustomDomain(p.AccountID, h.ID)
	if oldErr == nil && old.Domain == p.Domain {
		return old.CustomDomain, nil // the same domain again: the same token and records
	}
	if owner := c.r.HostingDomainTaken(p.Domain); owner != "" {
		msg := fmt.Sprintf("domain %s is already attached to a hosting account", p.Domain)
		if owner == h.ID {
			msg = fmt.Sprintf("domain %s is this hosting account's own domain", p.Domain)
		}
		return nil, &FieldConflictError{Field: "domain", Msg: msg}
	}
	if oldErr == nil {
		if err := c.dropCustomDomain(old); err != nil {
			return nil, err
		}
	}
	d := store.CustomDomain{AccountID: p.AccountID, Token: p.Token, CustomDomain: api.CustomDomain{
		HostingID: h.ID, Domain: p.Domain, Status: api.CustomDomainPendingDNS, Records: p.Records, CreatedAt: c.at}}
	if err := c.tx.Bucket(store.BucketHostingDomains).Put([]byte(p.Domain), []byte(h.ID)); err != nil {
		return nil, err
	}
	if err := store.PutJSON(c.tx, store.BucketCustomDomains, []byte(h.ID), d); err != nil {
		return nil, err
	}
	return d.CustomDomain, nil
}

func applyCustomDomainVerified(c *applyCtx, p CustomDomainVerified) (any, error) {
	if _, err := c.liveHosting(p.AccountID, p.HostingID); err != nil {
		return nil, err
	}
	d, err := c.r.CustomDomain(p.AccountID, p.HostingID)
	if err != nil {
		return nil, err
	}
	if d.Domain != p.Domain {
		return nil, fmt.Errorf("%w: the custom domain changed to %s during the check", ErrConflict, d.Domain)
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
	if err := c.dropCustomDomain(d); err != nil {
		return nil, err
	}
	return nil, nil
}
