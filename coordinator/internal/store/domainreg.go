package store

import (
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Registry operation kinds (RegDomainOp.Kind).
const (
	RegOpRegister = "register"
	RegOpChange   = "change"
	RegOpRenew    = "renew"
	RegOpTransfer = "transfer"
	// RegOpHost creates, changes or deletes a child name server's host
	// object (from semantics level 16, fsm.LevelDomainHosts).
	RegOpHost = "host"
)

// RegDomain is a stored registered domain: the customer view plus its owner,
// its registrant and the registry operation in flight.
type RegDomain struct {
	api.Domain
	AccountID string `json:"account_id"`
	// Tld is the offered top-level domain the name is under; ProductSlug
	// its catalogue product.
	Tld         string            `json:"tld"`
	ProductSlug string            `json:"product_slug"`
	Contact     api.DomainContact `json:"contact"`
	// ContactID is the registrant's contact object at the registry.
	ContactID string `json:"contact_id"`
	// Op is the registry operation in flight (at most one): recorded
	// through Raft before the registry is called, ended by a second
	// command; a new leader drives an open one to its end.
	Op *RegDomainOp `json:"op,omitempty"`
	// Reminders are the expiry reminders sent, "<expiry date>/<days>".
	Reminders []string `json:"reminders,omitempty"`
}

// RegDomainOp is one registry operation. ClTRID is the base of the client
// transaction ids of its registry calls (each call adds a suffix): derived
// from the operation's id, so whichever leader repeats a call repeats its
// ClTRID and the registry applies it at most once.
type RegDomainOp struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	ClTRID    string    `json:"cl_trid"`
	StartedAt time.Time `json:"started_at"`
	// Years and InvoiceID are a registration's or a renewal's (the invoice
	// is refunded when the registry refuses).
	Years     int    `json:"years,omitempty"`
	InvoiceID string `json:"invoice_id,omitempty"`
	// SealedAuthCode is a transfer's auth code, sealed with the
	// coordinators' key-encryption key (never stored in the clear).
	SealedAuthCode string `json:"sealed_auth_code,omitempty"`
	// CurrentExpiry is the expiry a renewal extends.
	CurrentExpiry *time.Time `json:"current_expiry,omitempty"`
	// Nameservers, TransferLock and WhoisPrivacy are a change's new
	// values (nil: unchanged).
	Nameservers  []string `json:"nameservers,omitempty"`
	TransferLock *bool    `json:"transfer_lock,omitempty"`
	WhoisPrivacy *bool    `json:"whois_privacy,omitempty"`
	// AutoRenew is the auto-renew sent in the same PATCH as the change:
	// committed with the change's registry settings, or dropped with them
	// when the registry refuses (nil: not part of the change).
	AutoRenew *bool `json:"auto_renew,omitempty"`
	// Host is a host operation's child name server: its new glue
	// addresses, or its deletion.
	Host *api.DomainHostChange `json:"host,omitempty"`
	// Answer is the answer window of the Idempotency-Key whose request
	// opened the operation (an order, a transfer, a change; from semantics
	// level 14, fsm.LevelDomainAnswer): while set, the key's record holds
	// the command's own answer and the first of the operation's end and
	// its window's close (fsm.CmdDomainAnswerClose) rewrites it, once.
	Answer *RegDomainAnswer `json:"answer,omitempty"`
}

// RegDomainAnswer names the Idempotency-Key record an operation's end or
// its window's close rewrites: its scope and its request's hash.
type RegDomainAnswer struct {
	Scope   string `json:"scope"`
	ReqHash string `json:"req_hash"`
}

var regDomains = ownedRecords[RegDomain]{what: "domain", bucket: BucketRegDomains, index: BucketRegDomainIDs}

// RegDomainByID loads a registered domain by id alone (leader jobs, admin).
func (r ReadTx) RegDomainByID(id string) (RegDomain, error) { return regDomains.byID(r, id) }

// OwnedRegDomain loads an account's domain; another account's is not found.
func (r ReadTx) OwnedRegDomain(accountID, id string) (RegDomain, error) {
	return regDomains.owned(r, accountID, id)
}

// RegDomains pages an account's domains (failed registrations included),
// newest first, with the total count.
func (r ReadTx) RegDomains(accountID string, offset, limit int) ([]RegDomain, int, error) {
	return regDomains.page(r, accountID, offset, limit)
}

// RegDomainsAt is RegDomains from at, with the next page's Below (ListOwnedAt).
func (r ReadTx) RegDomainsAt(accountID string, at PageAt, limit int) ([]RegDomain, int, string, error) {
	return regDomains.pageAt(r, accountID, at, limit)
}

// AllRegDomains lists every domain of every account.
func (r ReadTx) AllRegDomains() ([]RegDomain, error) { return regDomains.all(r) }

// RegDomainNameTaken returns the id of the domain holding name ("" if none).
func (r ReadTx) RegDomainNameTaken(name string) string {
	return string(r.value(BucketRegDomainNames, []byte(name)))
}

// OpenRegDomainOps lists the domains with a registry operation in flight.
func (r ReadTx) OpenRegDomainOps() ([]RegDomain, error) {
	var out []RegDomain
	err := r.tx.Bucket(BucketRegDomainOps).ForEach(func(k, _ []byte) error {
		d, err := r.RegDomainByID(string(k))
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
