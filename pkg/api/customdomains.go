package api

import "time"

// Custom domain statuses: the domain is recorded and waits for its DNS
// records (pending_dns), or they were found at its authoritative
// nameservers (verified).
const (
	CustomDomainPendingDNS = "pending_dns"
	CustomDomainVerified   = "verified"
)

// CustomDomainRequest attaches a domain to a hosting account
// (PUT /v1/hosting/:id/custom-domain).
type CustomDomainRequest struct {
	Domain string `json:"domain"`
}

// DNSRecord is one record the customer must create at their DNS provider.
type DNSRecord struct {
	Type  string `json:"type"` // TXT, A, AAAA or CNAME
	Name  string `json:"name"`
	Value string `json:"value"`
	// Alternative groups records of which one kind is enough: "address"
	// (A/AAAA to the node) or "cname" (a CNAME to the account's domain).
	Alternative string `json:"alternative,omitempty"`
}

// DNSProblem is one record found missing or wrong by a verification.
type DNSProblem struct {
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Want   string   `json:"want,omitempty"`
	Found  []string `json:"found,omitempty"`
	Reason string   `json:"reason"`
}

// CustomDomain is a hosting account's custom domain.
type CustomDomain struct {
	HostingID string `json:"hosting_id"`
	// Domain is the ASCII (IDNA A-label) form of the name.
	Domain string `json:"domain"`
	Status string `json:"status"`
	// Records are the DNS records to create: the ownership TXT and an
	// address (A/AAAA) or a CNAME.
	Records    []DNSRecord `json:"records"`
	CreatedAt  time.Time   `json:"created_at"`
	VerifiedAt *time.Time  `json:"verified_at,omitempty"`
	// Certificate is the domain's certificate once one was ordered.
	Certificate *CertificateStatus `json:"certificate,omitempty"`
}

// Certificate statuses of a custom domain: an order is under way (pending),
// the node serves the certificate (issued), or the last order failed and is
// retried at retry_at (failed, with the reason).
const (
	CertificatePending = "pending"
	CertificateIssued  = "issued"
	CertificateFailed  = "failed"
)

// CertificateStatus is what a customer sees of a custom domain's
// certificate (never its key).
type CertificateStatus struct {
	Status   string     `json:"status"`
	Reason   string     `json:"reason,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	RenewAt  *time.Time `json:"renew_at,omitempty"`
	RetryAt  *time.Time `json:"retry_at,omitempty"`
}

// CustomDomainVerification is the answer of POST …/custom-domain/verify.
type CustomDomainVerification struct {
	CustomDomain
	Nameservers []string `json:"nameservers,omitempty"`
}

// hosting.cert (protocol 1.3, hosting role): install the certificate of a
// custom domain of the account (target: its username) and route the domain
// to it; the private key travels in secret_params only. hosting.uncert
// removes both.
const (
	ActionHostingCert   = "hosting.cert"
	NodeOpHostingCert   = "hosting.cert"
	ActionHostingUncert = "hosting.uncert"
	NodeOpHostingUncert = "hosting.uncert"
)

// hosting.challenge (protocol 1.3, hosting role): an HTTP-01 key
// authorization the node's responder serves for the account's custom domain
// while an ACME order validates it (remove: forget it). Not journaled: it
// lives in the agent's memory and a re-send does the same.
const (
	ActionHostingChallenge = "hosting.challenge"
	NodeOpHostingChallenge = "hosting.challenge"
)
