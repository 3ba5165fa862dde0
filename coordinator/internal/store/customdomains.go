package store

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// BucketCustomDomains holds each hosting account's custom domain: hostingID →
// CustomDomain. The name itself is indexed in BucketHostingDomains (domain →
// hostingID) with the accounts' own domains, so a name is attached to at
// most one account in the cluster.
var BucketCustomDomains = []byte("custom_domains")

// CustomDomain is a stored custom domain: the customer view plus its owner
// and the ownership token (public: the customer publishes it in DNS).
type CustomDomain struct {
	api.CustomDomain
	AccountID string `json:"account_id"`
	Token     string `json:"token"`
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

// BucketACME holds the cluster's one ACME account (ACMEAccountKey).
var BucketACME = []byte("acme")

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
	return a, r.getNamed("acme account", "cluster", BucketACME, ACMEAccountKey, &a)
}
