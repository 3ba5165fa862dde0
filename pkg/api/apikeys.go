package api

import "time"

// ScopeInfo is one scope of GET /v1/scopes.
type ScopeInfo struct {
	Scope       string `json:"scope"`
	Description string `json:"description"`
	// Default reports whether keys minted without a scope list carry it.
	Default bool `json:"default"`
}

// ScopeList is the body of GET /v1/scopes.
type ScopeList struct {
	Data []ScopeInfo `json:"data"`
}

// ScopeDescriptions says what each scope of AllScopes allows.
var ScopeDescriptions = map[string]string{
	ScopeAccountRead:    "Read the account profile, products, API keys (never their secrets) with their usage logs, and connected apps",
	ScopeAccountWrite:   "Revoke connected OAuth apps",
	ScopeServersRead:    "List and view servers, their addresses, snapshots, statistics and actions",
	ScopeServersWrite:   "Power, label, console, password reset, snapshots and reverse DNS of servers",
	ScopeServersDestroy: "Delete and reinstall servers, revert snapshots (destructive)",
	ScopeHostingRead:    "List and view hosting accounts and their custom domains",
	ScopeHostingWrite:   "Suspend, unsuspend, change PHP and custom domains of hosting accounts",
	ScopeHostingDestroy: "Delete hosting accounts (destructive)",
	ScopeDomainsRead:    "List and view domains",
	ScopeDomainsWrite:   "Change domains",
	ScopeBillingRead:    "View the wallet, its transactions and invoices",
	ScopeTicketsRead:    "View support tickets",
	ScopeTicketsWrite:   "Open, reply to and close support tickets",
	ScopeWebhooksRead:   "View webhook subscriptions and their deliveries",
	ScopeWebhooksWrite:  "Create, change, delete and redeliver webhooks",
	ScopeOrdersWrite:    "Order and quote servers, paid from the wallet",
	ScopeKeysWrite:      "Mint and revoke the account's API keys, each with at most the minting key's scopes",
}

// Scopes lists every scope with its description, in AllScopes order.
func Scopes() ScopeList {
	def := map[string]bool{}
	for _, s := range DefaultScopes() {
		def[s] = true
	}
	out := ScopeList{Data: make([]ScopeInfo, 0, len(AllScopes))}
	for _, s := range AllScopes {
		out.Data = append(out.Data, ScopeInfo{Scope: s, Description: ScopeDescriptions[s], Default: def[s]})
	}
	return out
}

// APIKeyCreateRequest is a customer's body to mint one of their own keys
// (POST /v1/account/api-keys, keys:write). Scopes is required and must be a
// subset of the minting key's scopes. An empty ExpiresAt or AllowedCIDRs takes
// the minting key's (a key may not outlive, or be usable from more addresses
// than, the key that minted it).
type APIKeyCreateRequest struct {
	Name         string     `json:"name"`
	Scopes       []string   `json:"scopes"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	AllowedCIDRs []string   `json:"allowed_cidrs,omitempty"`
}

// KeyList is the body of GET /v1/account/api-keys: the account's keys, revoked
// ones included, without secrets or their hashes.
type KeyList struct {
	Data []KeyInfo `json:"data"`
}
