package store

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// CustomDomain is a stored custom domain: the customer view plus its owner
// and the ownership token (public: the customer publishes it in DNS).
type CustomDomain struct {
	api.CustomDomain
	AccountID string `json:"account_id"`
	Token     string `json:"token"`
	// Cert is the certificate state the leader's certificate job keeps.
	Cert *CertState `json:"cert,omitempty"`
}

// CertState is a custom domain's certificate: the order in flight (recorded
// before any ACME call, so a new leader does not order twice while it runs),
// the issued certificate (its key sealed under the KEK, never in plain
// text), and the failures of the name with the back-off's next try.
type CertState struct {
	// OrderID names the order in flight; OrderUntil is when a leader that
	// did not record it may take it over (its leader died with it).
	OrderID    string    `json:"order_id,omitempty"`
	OrderAt    time.Time `json:"order_at,omitempty"`
	OrderUntil time.Time `json:"order_until,omitempty"`
	// OrderURL is the ACME order's URL once created (a leader taking the
	// order over resumes it: one certificate per order); OrderKey the
	// certificate key it is finalized with, sealed like SealedKey;
	// OrderOwner the leadership that runs it (another leader's order is
	// taken over at once); OrderNote why a recorded order was not resumed.
	OrderURL   string `json:"order_url,omitempty"`
	OrderKey   string `json:"order_key,omitempty"`
	OrderOwner string `json:"order_owner,omitempty"`
	OrderNote  string `json:"order_note,omitempty"`

	Chain     string    `json:"chain,omitempty"`      // PEM, leaf first (public)
	SealedKey string    `json:"sealed_key,omitempty"` // webhook.Sealer, id "cert:<domain>"
	NotAfter  time.Time `json:"not_after,omitempty"`
	RenewAt   time.Time `json:"renew_at,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitempty"`
	// InstalledAt is when the node took the certificate (hosting.cert);
	// InstallError why it did not (retried at RetryAt, without a new order).
	InstalledAt  time.Time `json:"installed_at,omitempty"`
	InstallError string    `json:"install_error,omitempty"`

	Failures  int         `json:"failures,omitempty"`   // in a row
	FailedAt  []time.Time `json:"failed_at,omitempty"`  // within the last hour
	LastError string      `json:"last_error,omitempty"` // shown as the reason
	RetryAt   time.Time   `json:"retry_at,omitempty"`
}

// CustomDomain loads the custom domain of an account's hosting account.
func (r ReadTx) CustomDomain(accountID, hostingID string) (CustomDomain, error) {
	var d CustomDomain
	if err := r.get(BucketCustomDomains, []byte(hostingID), &d); err != nil {
		return d, err
	}
	if d.AccountID != accountID {
		return CustomDomain{}, fmt.Errorf("custom domain of %s: %w", hostingID, ErrNotFound)
	}
	return d, nil
}

// ACMEAccountKey is the key of the account record in BucketACME.
var ACMEAccountKey = []byte("account")

// ACMEAccount is the cluster's ACME account: its key sealed under the KEK
// (webhook.Sealer, id "acme-account"), never in plain text.
type ACMEAccount struct {
	Directory string    `json:"directory"`
	Email     string    `json:"email,omitempty"`
	SealedKey string    `json:"sealed_key"`
	URI       string    `json:"uri,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ACMEAccount loads the cluster's ACME account.
func (r ReadTx) ACMEAccount() (ACMEAccount, error) {
	var a ACMEAccount
	err := r.getNamed("acme account", "cluster", BucketACME, ACMEAccountKey, &a)
	return a, err
}

// CustomDomains lists every custom domain (the leader's certificate job
// reads them), in hosting id order.
func (r ReadTx) CustomDomains() ([]CustomDomain, error) {
	return all[CustomDomain](r, BucketCustomDomains)
}
