package store

import (
	"bytes"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// OAuthClient is a client registered through RFC 7591 (public: no secret).
type OAuthClient struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types"`
	CreatedAt    time.Time `json:"created_at"`
}

// Device authorization states.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceRedeemed = "redeemed"
)

// OAuthDeviceRequest is what a device authorization asks for: the command
// that starts one carries it and the record keeps it as it came (encoding/json
// flattens it, so both encode as if its fields were their own).
type OAuthDeviceRequest struct {
	ID           string   `json:"id"`
	DeviceHash   string   `json:"device_hash"`
	UserCodeHash string   `json:"user_code_hash"`
	ClientID     string   `json:"client_id"`
	ClientName   string   `json:"client_name"`
	Scopes       []string `json:"scopes"` // asked; empty: whatever the approver holds
	Resource     string   `json:"resource"`
	Interval     int      `json:"interval"`
}

// OAuthDevice is a device authorization (RFC 8628), keyed by the device code's
// hash; UserCodeHash finds it from the consent page.
type OAuthDevice struct {
	OAuthDeviceRequest
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	Status    string     `json:"status"`
	AccountID string     `json:"account_id,omitempty"`
	Granted   []string   `json:"granted,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	GrantID   string     `json:"grant_id,omitempty"`
	KeyID     string     `json:"key_id,omitempty"` // the API key that approved
}

// OAuthCodeApproval is what an authorization code was approved for: the
// command that creates the code carries it and the record keeps it as it came
// (encoding/json flattens it, so both encode as if its fields were their own).
type OAuthCodeApproval struct {
	ClientID    string   `json:"client_id"`
	ClientName  string   `json:"client_name"`
	RedirectURI string   `json:"redirect_uri"`
	Challenge   string   `json:"challenge"` // PKCE S256
	AccountID   string   `json:"account_id"`
	Scopes      []string `json:"scopes"`
	Resource    string   `json:"resource"`
}

// OAuthCode is an authorization code (keyed by its hash) with what was approved.
type OAuthCode struct {
	OAuthCodeApproval
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	GrantID   string     `json:"grant_id,omitempty"` // the grant its redemption created
	KeyID     string     `json:"key_id,omitempty"`   // the API key that approved
}

// OAuthGrant is a connected app of an account; its tokens are its family.
type OAuthGrant struct {
	api.ConnectedApp
	AccountID string `json:"account_id"`
	// KeyID is the API key that approved it (empty: the operator did, or
	// before keys were recorded); the grant ends when that key is revoked.
	KeyID string `json:"key_id,omitempty"`
}

// OAuthToken is an access or refresh token, keyed by its hash. A refresh token
// is single use: UsedAt is set when it is rotated, and presenting it again
// revokes its grant.
type OAuthToken struct {
	Kind      string     `json:"kind"` // "at_" or "rt_"
	GrantID   string     `json:"grant_id"`
	AccountID string     `json:"account_id"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
}

// OAuthClient loads a registered client.
func (r ReadTx) OAuthClient(id string) (OAuthClient, error) {
	var c OAuthClient
	err := r.getNamed("oauth client", id, BucketOAuthClients, []byte(id), &c)
	return c, err
}

// OAuthDevice loads a device authorization by the device code's hash.
func (r ReadTx) OAuthDevice(deviceHash string) (OAuthDevice, error) {
	var d OAuthDevice
	err := r.get(BucketOAuthDevices, []byte(deviceHash), &d)
	return d, err
}

// OAuthDeviceByUserCode loads a device authorization by the user code's hash.
func (r ReadTx) OAuthDeviceByUserCode(userCodeHash string) (OAuthDevice, error) {
	return viaIndex[OAuthDevice](r, BucketOAuthUserCodes, BucketOAuthDevices, userCodeHash)
}

// OAuthCode loads an authorization code by its hash.
func (r ReadTx) OAuthCode(codeHash string) (OAuthCode, error) {
	var c OAuthCode
	err := r.get(BucketOAuthCodes, []byte(codeHash), &c)
	return c, err
}

// OAuthToken loads a token and its grant by the token's hash.
func (r ReadTx) OAuthToken(hash string) (OAuthToken, OAuthGrant, error) {
	var t OAuthToken
	var g OAuthGrant
	if err := r.get(BucketOAuthTokens, []byte(hash), &t); err != nil {
		return t, g, err
	}
	g, err := r.OAuthGrant(t.GrantID)
	return t, g, err
}

// OAuthGrant loads a grant (connected app) by id.
func (r ReadTx) OAuthGrant(id string) (OAuthGrant, error) {
	var g OAuthGrant
	owner := r.value(BucketOAuthGrantIDs, []byte(id))
	if owner == nil {
		return g, ErrNotFound
	}
	err := r.getNamed("connected app", id, BucketOAuthGrants, OwnedKey(string(owner), id), &g)
	return g, err
}

// ConnectedApps lists an account's grants that are not revoked, newest first.
func (r ReadTx) ConnectedApps(accountID string) ([]api.ConnectedApp, error) {
	items, _, err := ListOwned[OAuthGrant](r.tx, BucketOAuthGrants, accountID, 0, 1<<30)
	out := []api.ConnectedApp{}
	for _, g := range items {
		if g.RevokedAt == nil {
			out = append(out, g.ConnectedApp)
		}
	}
	return out, err
}

// OAuthGrantTokens returns the hashes of a grant's tokens.
func (r ReadTx) OAuthGrantTokens(grantID string) []string {
	var out []string
	prefix := OwnedPrefix(grantID)
	c := r.tx.Bucket(BucketOAuthGrantTokens).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out
}

// OAuthClientExists reports whether a client is registered.
func (r ReadTx) OAuthClientExists(id string) bool { return r.has(BucketOAuthClients, []byte(id)) }
