package api

import "time"

// ProductDomain is the catalogue category of a registrable top-level domain:
// its Tld and RetailYearlyUsdCents (a year's registration or renewal).
const ProductDomain = "domain"

// Domain statuses.
const (
	DomainRegistering  = "registering"  // paid, the registry is being asked
	DomainTransferring = "transferring" // paid, the transfer is asked of the registry
	DomainActive       = "active"       // registered
	DomainFailed       = "failed"       // the registry refused; the order was refunded
	DomainExpired      = "expired"      // past its expiry without renewal
)

// Domain change statuses: a PATCH of a registry setting is pending until the
// registry answered, then applied, or failed (nothing changed) with a reason.
const (
	ChangePending = "pending"
	ChangeApplied = "applied"
	ChangeFailed  = "failed"
)

// Domain is a registered domain (GET /v1/domains/{id}).
type Domain struct {
	ID string `json:"id"`
	// Name is the ASCII form (A-labels); UnicodeName the Unicode form of an
	// internationalised name.
	Name        string `json:"name"`
	UnicodeName string `json:"unicode_name,omitempty"`
	Status      string `json:"status"`
	// StatusReason says why a registration failed.
	StatusReason string     `json:"status_reason,omitempty"`
	PeriodYears  int        `json:"period_years"`
	Nameservers  []string   `json:"nameservers"`
	AutoRenew    bool       `json:"auto_renew"`
	TransferLock bool       `json:"transfer_lock"`
	WhoisPrivacy bool       `json:"whois_privacy"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	// YearlyUsdCents is what a year's renewal costs (the price it was bought at).
	YearlyUsdCents int64 `json:"yearly_usd_cents"`
	// InvoiceID is the registration's invoice.
	InvoiceID string `json:"invoice_id,omitempty"`
	// Change is the latest change of a registry setting (nameservers,
	// transfer lock, WHOIS privacy, a child name server): pending while
	// the registry is asked, then applied or failed with the reason.
	Change *DomainChange `json:"change,omitempty"`
	// Hosts are the domain's child name servers (host objects with glue
	// addresses at the registry), by name: usable as this domain's or
	// another domain's name servers.
	Hosts []DomainHost `json:"hosts,omitempty"`
}

// DomainHost is a child name server of a domain: a host name inside it
// and its glue addresses (public unicast IPv4/IPv6).
type DomainHost struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
}

// DomainHostRequest is PUT /v1/domains/:id/hosts/:name: the host's glue
// addresses, 1 to MaxHostAddresses.
type DomainHostRequest struct {
	Addresses []string `json:"addresses"`
}

// MaxHostAddresses bounds a child name server's glue addresses;
// MaxDomainHosts a domain's child name servers.
const (
	MaxHostAddresses = 8
	MaxDomainHosts   = 20
)

// DomainHostChange is a change of a child name server: its new addresses,
// or its deletion.
type DomainHostChange struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"`
	Delete    bool     `json:"delete,omitempty"`
}

// DomainChange is one PATCH of a domain's registry settings.
type DomainChange struct {
	ID           string   `json:"id"`
	Status       string   `json:"status"`
	Reason       string   `json:"reason,omitempty"`
	Nameservers  []string `json:"nameservers,omitempty"`
	TransferLock *bool    `json:"transfer_lock,omitempty"`
	WhoisPrivacy *bool    `json:"whois_privacy,omitempty"`
	// AutoRenew is the auto-renew sent with the change: applied with it,
	// or not at all when the registry refuses it.
	AutoRenew *bool `json:"auto_renew,omitempty"`
	// Host is a child name server's change (PUT or DELETE
	// /v1/domains/:id/hosts/:name).
	Host        *DomainHostChange `json:"host,omitempty"`
	RequestedAt time.Time         `json:"requested_at"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
}

// DomainContact is the registrant of a registration (ASCII postal info, as
// EPP's "int" postal info requires).
type DomainContact struct {
	Name   string   `json:"name"`
	Org    string   `json:"org,omitempty"`
	Street []string `json:"street"`
	City   string   `json:"city"`
	SP     string   `json:"sp,omitempty"`
	PC     string   `json:"pc,omitempty"`
	CC     string   `json:"cc"`
	Voice  string   `json:"voice,omitempty"`
	Email  string   `json:"email"`
}

// DomainOrderRequest is POST /v1/domains: a registration bought from the wallet.
type DomainOrderRequest struct {
	Name         string        `json:"name"`
	Years        int           `json:"years,omitempty"` // 0: omitted, one year
	Nameservers  []string      `json:"nameservers,omitempty"`
	Contact      DomainContact `json:"contact"`
	AutoRenew    *bool         `json:"auto_renew,omitempty"`
	WhoisPrivacy bool          `json:"whois_privacy,omitempty"`
}

// DomainTransferQuote answers POST /v1/domains/transfer/quote: what the
// same transfer would charge now (one year at the caller's price, which the
// registry adds to the domain's expiry) and what the wallet lacks, without
// ordering. A body the transfer refuses is refused alike (400 naming the
// field, 409 domain_not_registered or domain_unavailable, 503), so no
// quote is answered for a transfer that cannot be placed; whether the auth
// code is right only the registry says, at the transfer.
type DomainTransferQuote struct {
	Name              string `json:"name"`
	UnicodeName       string `json:"unicode_name,omitempty"`
	Tld               string `json:"tld"`
	Years             int    `json:"years"`
	YearlyUsdCents    int64  `json:"yearly_usd_cents"`
	TotalUsdCents     int64  `json:"total_usd_cents"`
	BalanceUsdCents   int64  `json:"balance_usd_cents"`
	ShortfallUsdCents int64  `json:"shortfall_usd_cents"`
}

// DomainTransferRequest is POST /v1/domains/transfer: a domain registered
// elsewhere moved here with its auth code (the transfer secret), paid from
// the wallet for one year (added to its expiry).
type DomainTransferRequest struct {
	Name      string        `json:"name"`
	AuthCode  string        `json:"auth_code"`
	Contact   DomainContact `json:"contact"`
	AutoRenew *bool         `json:"auto_renew,omitempty"`
}

// DomainUpdateRequest is PATCH /v1/domains/{id}; absent fields are unchanged.
// auto_renew alone is applied at once (it is ours); the others are pushed to
// the registry and rolled back if the push fails, with the auto_renew sent
// alongside them.
type DomainUpdateRequest struct {
	AutoRenew    *bool    `json:"auto_renew,omitempty"`
	TransferLock *bool    `json:"transfer_lock,omitempty"`
	WhoisPrivacy *bool    `json:"whois_privacy,omitempty"`
	Nameservers  []string `json:"nameservers,omitempty"`
}

// DomainCheck answers GET /v1/domains/check?name=: the registry's answer
// and, when the TLD is offered, the caller's yearly price.
type DomainCheck struct {
	Name           string `json:"name"`
	UnicodeName    string `json:"unicode_name,omitempty"`
	Available      bool   `json:"available"`
	Reason         string `json:"reason,omitempty"`
	Tld            string `json:"tld"`
	YearlyUsdCents int64  `json:"yearly_usd_cents"`
}

// AdminDomain is the operator's view of a domain: the customer view, the
// owner and the registry operation in flight (hostplanectl domain).
type AdminDomain struct {
	Domain
	AccountID string         `json:"account_id"`
	Op        *AdminDomainOp `json:"op,omitempty"`
}

// AdminDomainOp is a registry operation recorded and not ended yet.
type AdminDomainOp struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // register, change, renew
	ClTRID    string    `json:"cl_trid"`
	StartedAt time.Time `json:"started_at"`
}

// DomainQuote answers POST /v1/domains/quote: what the same registration
// would cost now, and whether the registry would take the name, without
// ordering.
type DomainQuote struct {
	Name              string `json:"name"`
	UnicodeName       string `json:"unicode_name,omitempty"`
	Tld               string `json:"tld"`
	Years             int    `json:"years"`
	Available         bool   `json:"available"`
	Reason            string `json:"reason,omitempty"`
	YearlyUsdCents    int64  `json:"yearly_usd_cents"`
	TotalUsdCents     int64  `json:"total_usd_cents"`
	BalanceUsdCents   int64  `json:"balance_usd_cents"`
	ShortfallUsdCents int64  `json:"shortfall_usd_cents"`
}
