package store

import (
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// HostingAccount is a stored hosting account: the customer view plus where it
// runs and its plan's limits. Passwords are never stored.
type HostingAccount struct {
	api.HostingAccount
	AccountID string `json:"account_id"`
	// NodeID is the hosting node; deleted accounts stay recorded (status
	// deleted) with their username and domain free again.
	NodeID string `json:"node_id"`
	// MonthlyUsdCents, InvoiceID, Renewal and Suspension are a bought
	// account's billing, as on Server.
	MonthlyUsdCents int64       `json:"monthly_usd_cents,omitempty"`
	InvoiceID       string      `json:"invoice_id,omitempty"`
	Renewal         *Renewal    `json:"renewal,omitempty"`
	Suspension      *Suspension `json:"suspension,omitempty"`
	// Resume is set while a lifted non-payment suspension still has to be
	// undone on the node (its hosting.unsuspend not opened yet).
	Resume bool `json:"resume,omitempty"`
	// OwnerSuspended is set while the account is suspended (or being
	// suspended) on its node by its owner under a provider's suspension:
	// lifting the provider's suspension leaves the owner's in place.
	OwnerSuspended bool `json:"owner_suspended,omitempty"`
	// DiskUsedAt is when Quota.DiskUsedBytes was measured: the leader's
	// time of the usage report that wrote it, or the apply time of the
	// action result that did (from semantics level 4; nil before). An
	// older report does not overwrite it.
	DiskUsedAt *time.Time `json:"disk_used_at,omitempty"`
	// QuotaAlert is the disk allowance threshold the account's usage was
	// last notified at (fsm.LevelQuotaAlerts): "" under 90 %, "warning" at
	// 90 % or more, "exceeded" at 100 % or more. Never set below level 7.
	QuotaAlert string `json:"quota_alert,omitempty"`
}

// Admin is the operator view: the customer view with the owner and node.
func (h HostingAccount) Admin() api.AdminHostingAccount {
	return api.AdminHostingAccount{HostingAccount: h.HostingAccount, AccountID: h.AccountID, NodeID: h.NodeID}
}

// NodeHostingKey is the key of BucketNodeHosting.
func NodeHostingKey(nodeID, id string) []byte { return []byte(nodeID + "/" + id) }

var hostingAccounts = ownedRecords[HostingAccount]{what: "hosting account", bucket: BucketHosting, index: BucketHostingIDs}

// HostingAccountByID loads a hosting account by id alone (leader jobs, admin).
func (r ReadTx) HostingAccountByID(id string) (HostingAccount, error) {
	return hostingAccounts.byID(r, id)
}

// OwnedHostingAccount loads an account's hosting account; another account's
// is not found.
func (r ReadTx) OwnedHostingAccount(accountID, id string) (HostingAccount, error) {
	return hostingAccounts.owned(r, accountID, id)
}

// HostingAccounts pages an account's hosting accounts (deleted ones
// included), newest first, with the total count.
func (r ReadTx) HostingAccounts(accountID string, offset, limit int) ([]HostingAccount, int, error) {
	return hostingAccounts.page(r, accountID, offset, limit)
}

// HostingAccountsAt is HostingAccounts from at, with the next page's Below
// (ListOwnedAt).
func (r ReadTx) HostingAccountsAt(accountID string, at PageAt, limit int) ([]HostingAccount, int, string, error) {
	return hostingAccounts.pageAt(r, accountID, at, limit)
}

// AllHostingAccounts lists every hosting account of every account.
func (r ReadTx) AllHostingAccounts() ([]HostingAccount, error) { return hostingAccounts.all(r) }

// HostingUsernameTaken returns the id of the live hosting account with this
// username ("" if none).
func (r ReadTx) HostingUsernameTaken(username string) string {
	return string(r.value(BucketHostingUsernames, []byte(username)))
}

// HostingDomainTaken returns the id of the live hosting account serving this
// domain ("" if none). Custom domains are indexed here too: a domain is
// attached to at most one account in the cluster.
func (r ReadTx) HostingDomainTaken(domain string) string {
	return string(r.value(BucketHostingDomains, []byte(domain)))
}

// NodeHostingAccounts lists the live hosting accounts on a node (records
// that do not load are left out).
func (r ReadTx) NodeHostingAccounts(nodeID string) []HostingAccount {
	var out []HostingAccount
	prefix := []byte(nodeID + "/")
	cur := r.tx.Bucket(BucketNodeHosting).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = cur.Next() {
		if h, err := r.HostingAccountByID(string(k[len(prefix):])); err == nil {
			out = append(out, h)
		}
	}
	return out
}

// NodeHostingCount is how many live hosting accounts a node holds.
func (r ReadTx) NodeHostingCount(nodeID string) int {
	n := 0
	prefix := []byte(nodeID + "/")
	cur := r.tx.Bucket(BucketNodeHosting).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = cur.Next() {
		n++
	}
	return n
}
