package store

import (
	"fmt"

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
