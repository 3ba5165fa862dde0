package api

import "time"

// AccountCreateRequest is the admin body to create an account.
type AccountCreateRequest struct {
	Email   string `json:"email"`
	Name    string `json:"name"`
	Country string `json:"country"`
}

// KeyCreateRequest is the admin body to mint an API key. Empty Scopes means DefaultScopes.
type KeyCreateRequest struct {
	Name            string     `json:"name"`
	Scopes          []string   `json:"scopes"`
	ExpiresAt       *time.Time `json:"expires_at"`
	AllowedCIDRs    []string   `json:"allowed_cidrs"`
	RateLimitPerMin int        `json:"rate_limit_per_min"`
}

// KeyInfo describes a key without its secret.
type KeyInfo struct {
	ID              string     `json:"id"`
	AccountID       string     `json:"account_id"`
	Name            string     `json:"name"`
	Prefix          string     `json:"prefix"`
	Scopes          []string   `json:"scopes"`
	ExpiresAt       *time.Time `json:"expires_at"`
	AllowedCIDRs    []string   `json:"allowed_cidrs"`
	RateLimitPerMin int        `json:"rate_limit_per_min"`
	CreatedAt       time.Time  `json:"created_at"`
	LastUsedAt      *time.Time `json:"last_used_at"`
	// LastUsedIP is the client address of the key's last use (as
	// KeyUsage.IP: the address the coordinator that answered saw, or the one
	// a coordinator forwarding the request vouched for). Absent before the
	// key's first use, and for a use recorded before semantics level 2.
	LastUsedIP string     `json:"last_used_ip,omitempty"`
	UseCount   int64      `json:"use_count"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// KeyCreated is returned once when a key is minted: Key is the only copy of the
// secret. An idempotent replay of a customer's mint (POST /v1/account/api-keys
// with the same Idempotency-Key) has no Key: the secret is never stored.
type KeyCreated struct {
	Key  string  `json:"key,omitempty"`
	Info KeyInfo `json:"info"`
}

// KeyUsage is one entry of a key's usage log: Path is the path requested,
// Route the route's template (/v1/servers/{id}; empty in entries logged before
// it was recorded).
type KeyUsage struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Route  string    `json:"route,omitempty"`
	Status int       `json:"status"`
	IP     string    `json:"ip"`
}

// WalletCreditRequest credits a deposit to an account's wallet.
type WalletCreditRequest struct {
	AmountUsdCents int64  `json:"amount_usd_cents"`
	Gateway        string `json:"gateway"`
	Description    string `json:"description"`
}

// InvoiceIssueRequest issues an invoice; PayFromWallet pays it at once when the balance allows.
type InvoiceIssueRequest struct {
	Lines         []InvoiceLineRequest `json:"lines"`
	DueDays       int                  `json:"due_days"`
	PayFromWallet bool                 `json:"pay_from_wallet"`
}

// InvoiceLineRequest is one requested line item.
type InvoiceLineRequest struct {
	Description       string `json:"description"`
	Quantity          int64  `json:"quantity"`
	UnitPriceUsdCents int64  `json:"unit_price_usd_cents"`
}

// StaffReplyRequest is a staff reply to a ticket.
type StaffReplyRequest struct {
	Body      string `json:"body"`
	StaffName string `json:"staff_name"`
}

// TicketStatusRequest sets a ticket's status.
type TicketStatusRequest struct {
	Status string `json:"status"`
}

// ClusterJoinRequest adds a voter to the Raft cluster.
type ClusterJoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
}

// ClusterRegisterRequest records a coordinator's API address (sent by each node).
type ClusterRegisterRequest struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}

// ClusterRemoveRequest removes a server from the Raft cluster.
type ClusterRemoveRequest struct {
	ID string `json:"id"`
	// Force removes a voter even when the voters left would not include a
	// quorum that answers the leader (the cluster then takes no write, the
	// removal included, until enough of them are back).
	Force bool `json:"force,omitempty"`
}

// ClusterTransferLeadershipRequest hands the leadership to another voter: the
// one named by To, or the most up-to-date one when To is empty.
type ClusterTransferLeadershipRequest struct {
	To string `json:"to,omitempty"`
}

// ClusterServer is one member of the Raft configuration.
type ClusterServer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	// MaxLevel is the newest semantics level the member's binary applies,
	// as the leader last asked it (omitted when not known: on a follower's
	// view, or a member that did not answer).
	MaxLevel uint16 `json:"max_level,omitempty"`
}

// ClusterStatus is the view of the cluster from one node.
type ClusterStatus struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	FSMBytes     int64  `json:"fsm_bytes"`
	// Level is the cluster's semantics level as this coordinator applied it;
	// MaxLevel the newest this coordinator's binary applies. The leader
	// raises Level once every member's MaxLevel allows (a rolling upgrade's
	// last step); until then a newer release's operations answer 503
	// cluster_upgrading.
	Level    uint16 `json:"level,omitempty"`
	MaxLevel uint16 `json:"max_level,omitempty"`
	// StateEpoch is this coordinator's restore epoch: the Raft index at
	// which the last `cluster restore` installed its backup (from semantics
	// level 11), 0 when no restore replaced the state. Every replica holds
	// the same once it has the restore (also one that caught up through a
	// snapshot).
	StateEpoch uint64          `json:"state_epoch"`
	Servers    []ClusterServer `json:"servers"`
	// Warnings are this coordinator's configuration problems an operator
	// should fix (a cluster of several coordinators without --public-url).
	Warnings []string `json:"warnings,omitempty"`
}
