package api

import "time"

// ConnectedApp is an OAuth grant: a client (an MCP tool, a CLI) that an account
// approved, with the scopes and the resource (audience) its tokens carry. Its
// tokens are never shown again; revoking the app revokes every one of them.
type ConnectedApp struct {
	ID          string     `json:"id"`
	ClientID    string     `json:"client_id"`
	ClientName  string     `json:"client_name"`
	Scopes      []string   `json:"scopes"`
	Resource    string     `json:"resource"`
	GrantType   string     `json:"grant_type"` // authorization_code or device_code
	CreatedAt   time.Time  `json:"created_at"`
	RefreshedAt *time.Time `json:"refreshed_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
}

// ConnectedAppList is GET /v1/account/connected-apps.
type ConnectedAppList struct {
	Data []ConnectedApp `json:"data"`
}

// OAuthApproveRequest is the admin body approving a device authorization for an
// account (a provider's own dashboard, or hostplanectl oauth approve). Empty
// Scopes grants the scopes the client asked for.
type OAuthApproveRequest struct {
	UserCode  string   `json:"user_code"`
	AccountID string   `json:"account_id"`
	Scopes    []string `json:"scopes"`
	Deny      bool     `json:"deny"`
}

// OAuthApproval is the answer to an approval: the client and what it was granted.
type OAuthApproval struct {
	ClientID   string   `json:"client_id"`
	ClientName string   `json:"client_name"`
	AccountID  string   `json:"account_id"`
	Scopes     []string `json:"scopes"`
	Resource   string   `json:"resource"`
	Status     string   `json:"status"` // approved or denied
}

// OAuth grant types of a ConnectedApp.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantDeviceCode        = "device_code"
)
