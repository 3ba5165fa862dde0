// Package registrar is the coordinator's interface to a domain registry: the
// operations a registrar module of WHMCS or upmind implements (check,
// register, renew, transfer, info/sync, nameservers, lock, privacy, auth
// code, contacts, poll), with typed requests, results and errors.
//
// The production implementation is the EPP client in registrar/epp (RFC
// 5730–5734 over TLS); tests run it against the EPP server in tests/eppd, so
// the tested path is the production path. Memory (memory.go) is an in-memory
// registry for unit tests of pure logic only.
//
// # Idempotency
//
// Every call that changes the registry takes a client transaction id
// (ClTRID, the EPP <clTRID>). The caller chooses it, records it (through
// Raft) before the call, and uses it as its idempotency key: a call repeated
// with the same ClTRID — after a timeout, a dropped connection, a leader
// change — is applied by the registry at most once, and the repeat answers
// the original result (the same SvTRID, the same expiry, the same error
// code). A caller that does not know whether its call was applied (an error
// of KindUnknown) learns the outcome by repeating the call with the same
// ClTRID; it must never repeat the operation with a fresh ClTRID until it has
// a definite answer. A ClTRID is 3–64 characters (RFC 5730 trIDStringType);
// ValidClTRID checks that.
//
// Read-only calls (Check, Info, AuthCode, ContactInfo) take no ClTRID.
//
// # Errors
//
// Every error returned by an implementation is, or wraps, an *Error whose
// Kind tells the caller what to do:
//
//   - KindUnavailable: the registry was not reached or could not process
//     the command (connection refused, TLS failure, EPP 2400 command failed,
//     2500 and 2502 session closed); the change was NOT applied. Retry later
//     with the same ClTRID, or roll back.
//   - KindUnknown: the command was sent but no answer came (connection
//     dropped, deadline passed while waiting). The change may or may not be
//     applied: repeat with the same ClTRID until a definite answer; do not
//     roll back on this alone.
//   - KindRefused: the registry answered and refused (policy, status
//     prohibits, bad auth code, syntax); Reason says why. Definite: roll
//     back; retrying the same request will not help.
//   - KindExists: the object already exists (EPP 2302), e.g. the name is
//     registered by someone else.
//   - KindNotFound: the object does not exist (EPP 2303).
//
// errors.Is works with the sentinels ErrUnavailable, ErrUnknown, ErrRefused,
// ErrExists and ErrNotFound; Transient(err) reports whether retrying can
// help.
package registrar

import (
	"context"
	"fmt"
	"time"
)

// Registrar is one account at one registry. Implementations are safe for
// concurrent use.
type Registrar interface {
	// Check reports, for each name, whether it can be registered now. A
	// name in a TLD the registry does not offer is answered unavailable with
	// a reason, not as an error.
	Check(ctx context.Context, names ...string) ([]CheckResult, error)

	// Register creates a domain for Years years (EPP domain:create).
	Register(ctx context.Context, req RegisterRequest) (Domain, error)

	// Renew extends a domain by Years years (EPP domain:renew).
	Renew(ctx context.Context, req RenewRequest) (RenewResult, error)

	// Transfer requests a transfer of a domain to this account with the
	// auth code of the losing registrar (EPP domain:transfer op="request").
	Transfer(ctx context.Context, req TransferRequest) (TransferResult, error)

	// Info returns the registry's view of a domain (EPP domain:info); it
	// is also the "sync" of WHMCS modules: status, expiry, nameservers,
	// lock and privacy as the registry holds them.
	Info(ctx context.Context, name string) (Domain, error)

	// SetNameservers makes the domain's delegation exactly Nameservers
	// (EPP domain:update add/rem hostObj or hostAttr).
	SetNameservers(ctx context.Context, req NameserversRequest) (Tx, error)

	// SetLock sets or clears the transfer lock (EPP status
	// clientTransferProhibited).
	SetLock(ctx context.Context, req LockRequest) (Tx, error)

	// SetPrivacy turns WHOIS privacy on or off (an EPP extension; see
	// registrar/epp for which).
	SetPrivacy(ctx context.Context, req PrivacyRequest) (Tx, error)

	// AuthCode returns the domain's current auth code (transfer secret),
	// for a customer moving the domain away. Read-only.
	AuthCode(ctx context.Context, name string) (string, error)

	// SetAuthCode replaces the domain's auth code (EPP domain:update chg
	// authInfo).
	SetAuthCode(ctx context.Context, req AuthCodeRequest) (Tx, error)

	// Delete deletes a domain (EPP domain:delete). The registry may keep it
	// in a redemption period (a pending result).
	Delete(ctx context.Context, req DeleteRequest) (Tx, error)

	// CreateContact creates a contact object (EPP contact:create); its ID
	// is chosen by the caller.
	CreateContact(ctx context.Context, req ContactRequest) (Tx, error)

	// UpdateContact replaces a contact's postal info, voice and email (EPP
	// contact:update chg).
	UpdateContact(ctx context.Context, req ContactRequest) (Tx, error)

	// ContactInfo returns a contact (EPP contact:info).
	ContactInfo(ctx context.Context, id string) (Contact, error)

	// SetHost makes the host object Name (a name server under one of this
	// account's domains, RFC 5732) hold exactly the glue addresses Addrs:
	// it is created when the registry does not hold it (host:create),
	// otherwise its addresses are changed (host:update add/rem addr).
	// When it holds exactly Addrs already — a repeat of a call that was
	// applied — nothing is sent and the Tx has no SvTRID.
	SetHost(ctx context.Context, req HostRequest) (Tx, error)

	// DeleteHost deletes the host object Name (host:delete); the registry
	// refuses it while a domain delegates to it. A host the registry does
	// not hold is deleted already: nothing is sent.
	DeleteHost(ctx context.Context, req DeleteRequest) (Tx, error)

	// HostInfo returns a host object (host:info). Read-only.
	HostInfo(ctx context.Context, name string) (Host, error)

	// HostObjects reports whether SetHost, DeleteHost and HostInfo can
	// work: the registrar manages RFC 5732 host objects. One that delegates
	// with host attributes refuses them (checked before sending), so the
	// API refuses a child name server up front instead of recording it.
	HostObjects() bool

	// Poll returns the oldest message in the account's queue (transfer
	// requested/approved, expiry, deletion…) without removing it, or nil when
	// the queue is empty (EPP poll op="req").
	Poll(ctx context.Context) (*Message, error)

	// Ack removes a message from the queue (EPP poll op="ack").
	Ack(ctx context.Context, msgID string) error

	// Close ends the session (EPP logout) and releases connections.
	Close() error
}

// Tx identifies one applied command: the caller's ClTRID and the registry's
// SvTRID. A repeated ClTRID answers the original SvTRID.
type Tx struct {
	ClTRID string `json:"cl_trid"`
	SvTRID string `json:"sv_trid,omitempty"`
	// Pending is true when the registry accepted the command but completes
	// it later (EPP 1001, e.g. a transfer awaiting the losing registrar);
	// the completion arrives as a Poll message.
	Pending bool `json:"pending,omitempty"`
}

// CheckResult is one name's availability.
type CheckResult struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	// Reason is the registry's reason when not available ("registered",
	// "tld not offered", …); empty when available.
	Reason string `json:"reason,omitempty"`
}

// Contact is a registry contact object (RFC 5733), one postal info of type
// "int" (ASCII).
type Contact struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Org    string   `json:"org,omitempty"`
	Street []string `json:"street,omitempty"` // up to 3 lines
	City   string   `json:"city"`
	SP     string   `json:"sp,omitempty"` // state or province
	PC     string   `json:"pc,omitempty"` // postal code
	CC     string   `json:"cc"`           // ISO 3166 alpha-2 country code
	Voice  string   `json:"voice,omitempty"`
	Email  string   `json:"email"`
}

// Contacts names the contact objects (by ID) attached to a domain. Admin,
// Tech and Billing default to Registrant when empty.
type Contacts struct {
	Registrant string `json:"registrant"`
	Admin      string `json:"admin,omitempty"`
	Tech       string `json:"tech,omitempty"`
	Billing    string `json:"billing,omitempty"`
}

// Domain is the registry's view of a domain.
type Domain struct {
	Tx                    // set by Register; zero from Info
	Name        string    `json:"name"`
	ROID        string    `json:"roid,omitempty"`
	Status      []string  `json:"status,omitempty"` // EPP status values: ok, clientTransferProhibited, pendingTransfer, …
	Contacts    Contacts  `json:"contacts"`
	Nameservers []string  `json:"nameservers,omitempty"` // lower case, no trailing dot
	Sponsor     string    `json:"sponsor,omitempty"`     // clID of the sponsoring registrar
	Created     time.Time `json:"created,omitempty"`
	Expires     time.Time `json:"expires,omitempty"`
	Updated     time.Time `json:"updated,omitempty"`
	Locked      bool      `json:"locked"`  // clientTransferProhibited is set
	Privacy     bool      `json:"privacy"` // WHOIS privacy is on
	// Hosts are the host objects under the domain (its child name servers,
	// EPP <domain:host>), shown to the sponsoring registrar: the registry
	// refuses to delete the domain while it has any (2305), and a transfer
	// moves them with it.
	Hosts []string `json:"hosts,omitempty"`
	// AuthCode is returned only to the sponsoring registrar.
	AuthCode string `json:"-"`
}

// RegisterRequest registers Name for Years years.
type RegisterRequest struct {
	ClTRID      string
	Name        string
	Years       int // 1–10
	Nameservers []string
	Contacts    Contacts
	// AuthCode is the new domain's transfer secret; the implementation
	// generates one when empty.
	AuthCode string
	// Privacy turns WHOIS privacy on at creation.
	Privacy bool
}

// RenewRequest extends Name by Years years. CurrentExpiry is the expiry the
// caller believes the domain has (EPP curExpDate, date part only): the
// registry refuses a renewal whose CurrentExpiry is not the domain's, so a
// renewal issued twice under two ClTRIDs is not applied twice either.
type RenewRequest struct {
	ClTRID        string
	Name          string
	Years         int
	CurrentExpiry time.Time
}

// RenewResult is the domain's expiry after the renewal.
type RenewResult struct {
	Tx
	Expires time.Time `json:"expires"`
}

// TransferRequest asks for Name to move to this account.
type TransferRequest struct {
	ClTRID   string
	Name     string
	AuthCode string
	// Years added on completion (0: the registry's default, usually 1).
	Years int
}

// TransferResult is the transfer's state after the request.
type TransferResult struct {
	Tx
	// Status is the EPP trStatus: pending, clientApproved, serverApproved,
	// clientRejected, clientCancelled, serverCancelled.
	Status  string    `json:"status"`
	Expires time.Time `json:"expires,omitempty"`
}

// NameserversRequest sets the full delegation of Name.
type NameserversRequest struct {
	ClTRID      string
	Name        string
	Nameservers []string
}

// Host is a host object (RFC 5732): a name server and its glue addresses.
type Host struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs,omitempty"` // canonical text (netip), v4 first as the registry lists them
	// Linked is true while a domain delegates to the host.
	Linked bool `json:"linked"`
}

// HostRequest sets the glue addresses of host Name.
type HostRequest struct {
	ClTRID string
	Name   string
	Addrs  []string
}

// LockRequest sets (Locked) or clears the transfer lock of Name.
type LockRequest struct {
	ClTRID string
	Name   string
	Locked bool
}

// PrivacyRequest turns WHOIS privacy of Name on or off.
type PrivacyRequest struct {
	ClTRID  string
	Name    string
	Enabled bool
}

// AuthCodeRequest replaces the auth code of Name.
type AuthCodeRequest struct {
	ClTRID   string
	Name     string
	AuthCode string
}

// DeleteRequest deletes Name.
type DeleteRequest struct {
	ClTRID string
	Name   string
}

// ContactRequest creates or updates a contact.
type ContactRequest struct {
	ClTRID  string
	Contact Contact
}

// Message is one poll queue message.
type Message struct {
	ID     string    `json:"id"`
	Queued time.Time `json:"queued"`
	Text   string    `json:"text"`
	// Domain and TransferStatus are set for transfer notices.
	Domain         string `json:"domain,omitempty"`
	TransferStatus string `json:"transfer_status,omitempty"`
	// Count is how many messages are queued, this one included.
	Count int `json:"count"`
}

// ValidClTRID reports whether s can be a client transaction id: 3–64
// printable ASCII characters without spaces (RFC 5730 trIDStringType is
// 3–64 tokens; printable ASCII keeps it safe in logs and keys).
func ValidClTRID(s string) error {
	if len(s) < 3 || len(s) > 64 {
		return fmt.Errorf("cl_trid: must be 3-64 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("cl_trid: character %q at %d is not printable ASCII", c, i)
		}
	}
	return nil
}
