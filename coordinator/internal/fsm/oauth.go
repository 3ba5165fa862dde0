package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Codes and tokens of the OAuth commands arrive as SHA-256 hashes only; every
// expiry is computed from and compared with the command's time (c.at), never a
// clock.

// OAuthError is an OAuth refusal (RFC 6749 §5.2 error code) decided by the FSM.
// Returned as an error it changed nothing; returned as the command's value
// (*OAuthError) it did change state (a reused code or refresh token revoked its
// grant) and the HTTP layer still refuses the request.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

func oauthErr(code, format string, args ...any) *OAuthError {
	return &OAuthError{Code: code, Description: fmt.Sprintf(format, args...)}
}

// OAuthClientRegister stores a registered client.
type OAuthClientRegister struct {
	Client store.OAuthClient `json:"client"`
}

// OAuthDeviceStart records a device authorization request.
type OAuthDeviceStart struct {
	store.OAuthDeviceRequest
	TTL time.Duration `json:"ttl"`
}

// OAuthDeviceDecide approves or denies a pending device authorization for an
// account; Scopes are what is granted (the caller checked they are at most the
// approver's).
type OAuthDeviceDecide struct {
	UserCodeHash string   `json:"user_code_hash"`
	Approve      bool     `json:"approve"`
	AccountID    string   `json:"account_id"`
	Scopes       []string `json:"scopes"`
	// KeyID is the API key that approved (empty: the operator did): the
	// grant ends when that key is revoked.
	KeyID string `json:"key_id,omitempty"`
}

// OAuthIssue is the token pair a redemption or refresh mints (hashes only).
type OAuthIssue struct {
	GrantID     string        `json:"grant_id"` // a new grant's id (redemptions)
	AccessHash  string        `json:"access_hash"`
	RefreshHash string        `json:"refresh_hash"`
	AccessTTL   time.Duration `json:"access_ttl"`
	RefreshTTL  time.Duration `json:"refresh_ttl"`
}

// OAuthDeviceRedeem exchanges an approved device code for tokens.
type OAuthDeviceRedeem struct {
	DeviceHash string     `json:"device_hash"`
	ClientID   string     `json:"client_id"`
	Issue      OAuthIssue `json:"issue"`
}

// OAuthCodeCreate records an approved authorization request's code.
type OAuthCodeCreate struct {
	CodeHash string `json:"code_hash"`
	store.OAuthCodeApproval
	TTL   time.Duration `json:"ttl"`
	KeyID string        `json:"key_id,omitempty"` // the approving API key
}

// OAuthCodeRedeem exchanges an authorization code for tokens. Challenge is the
// S256 of the presented code_verifier (the verifier itself stays out of the log).
type OAuthCodeRedeem struct {
	CodeHash    string     `json:"code_hash"`
	ClientID    string     `json:"client_id"`
	RedirectURI string     `json:"redirect_uri"`
	Challenge   string     `json:"challenge"`
	Resource    string     `json:"resource"` // "" when the request named none
	Issue       OAuthIssue `json:"issue"`
}

// OAuthRefresh rotates a refresh token.
type OAuthRefresh struct {
	RefreshHash string     `json:"refresh_hash"`
	ClientID    string     `json:"client_id"`
	Resource    string     `json:"resource"` // "" when the request named none
	Issue       OAuthIssue `json:"issue"`
}

// OAuthRevoke revokes a grant with all its tokens: by id (AccountID, when set,
// must own it) or by one of its tokens' hash (unknown tokens are a no-op, RFC 7009).
type OAuthRevoke struct {
	GrantID   string `json:"grant_id,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	TokenHash string `json:"token_hash,omitempty"`
	ClientID  string `json:"client_id,omitempty"` // with TokenHash: the token must be this client's
}

// OAuthSweep removes up to Limit tokens expired by the command's time, and
// the grants left without a token (nothing can use them any more). With
// ClientsUnusedBefore set, it also removes up to Limit registered clients
// (RFC 7591) created before that time that no grant, pending device
// authorization or code names: registration needs no credential, so what
// nobody connected with must not stay in the state for ever. Entries written
// before the field existed leave the clients alone.
type OAuthSweep struct {
	Limit               int       `json:"limit"`
	ClientsUnusedBefore time.Time `json:"clients_unused_before,omitzero"`
}

// OAuthIssued is the value of a successful redemption or refresh.
type OAuthIssued struct {
	GrantID         string    `json:"grant_id"`
	Scopes          []string  `json:"scopes"`
	Resource        string    `json:"resource"`
	AccessExpiresAt time.Time `json:"access_expires_at"`
}

func applyOAuthClientRegister(c *applyCtx, p OAuthClientRegister) (any, error) {
	if p.Client.ID == "" {
		return nil, fmt.Errorf("%w: client id missing", ErrInvalid)
	}
	if c.r.OAuthClientExists(p.Client.ID) {
		return nil, fmt.Errorf("%w: client %s exists", ErrConflict, p.Client.ID)
	}
	cl := p.Client
	cl.CreatedAt = c.at
	return cl, store.PutJSON(c.tx, store.BucketOAuthClients, []byte(cl.ID), cl)
}

func applyOAuthDeviceStart(c *applyCtx, p OAuthDeviceStart) (any, error) {
	if p.DeviceHash == "" || p.UserCodeHash == "" || p.TTL <= 0 {
		return nil, fmt.Errorf("%w: device authorization without codes or lifetime", ErrInvalid)
	}
	if c.tx.Bucket(store.BucketOAuthDevices).Get([]byte(p.DeviceHash)) != nil || c.tx.Bucket(store.BucketOAuthUserCodes).Get([]byte(p.UserCodeHash)) != nil {
		return nil, fmt.Errorf("%w: device or user code collision", ErrConflict)
	}
	d := store.OAuthDevice{OAuthDeviceRequest: p.OAuthDeviceRequest, CreatedAt: c.at, ExpiresAt: c.at.Add(p.TTL), Status: store.DevicePending}
	pruneOAuthDevices(c)
	if err := store.PutJSON(c.tx, store.BucketOAuthDevices, []byte(d.DeviceHash), d); err != nil {
		return nil, err
	}
	return d, c.tx.Bucket(store.BucketOAuthUserCodes).Put([]byte(d.UserCodeHash), []byte(d.DeviceHash))
}

// pruneOAuthDevices removes device authorizations and codes that expired more
// than a day before this command (a few per command, so no command runs long).
func pruneOAuthDevices(c *applyCtx) {
	cut := c.at.Add(-24 * time.Hour)
	var dead, deadUser [][]byte
	cur := c.tx.Bucket(store.BucketOAuthDevices).Cursor()
	for k, v := cur.First(); k != nil && len(dead) < 16; k, v = cur.Next() {
		var d store.OAuthDevice
		if json.Unmarshal(v, &d) == nil && d.ExpiresAt.Before(cut) {
			dead = append(dead, append([]byte{}, k...))
			deadUser = append(deadUser, []byte(d.UserCodeHash))
		}
	}
	_ = deleteKeys(c.tx.Bucket(store.BucketOAuthDevices), dead)
	_ = deleteKeys(c.tx.Bucket(store.BucketOAuthUserCodes), deadUser)
	var deadCodes [][]byte
	cur = c.tx.Bucket(store.BucketOAuthCodes).Cursor()
	for k, v := cur.First(); k != nil && len(deadCodes) < 16; k, v = cur.Next() {
		var oc store.OAuthCode
		if json.Unmarshal(v, &oc) == nil && oc.ExpiresAt.Before(cut) {
			deadCodes = append(deadCodes, append([]byte{}, k...))
		}
	}
	_ = deleteKeys(c.tx.Bucket(store.BucketOAuthCodes), deadCodes)
}

func applyOAuthDeviceDecide(c *applyCtx, p OAuthDeviceDecide) (any, error) {
	d, err := c.r.OAuthDeviceByUserCode(p.UserCodeHash)
	if err != nil {
		return nil, oauthErr("invalid_user_code", "no device authorization has this user code")
	}
	if !c.at.Before(d.ExpiresAt) {
		return nil, oauthErr("expired_token", "this user code expired at %s", d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if d.Status != store.DevicePending {
		return nil, oauthErr("invalid_user_code", "this user code was already %s", d.Status)
	}
	at := c.at
	d.DecidedAt = &at
	if p.Approve {
		if !c.r.AccountExists(p.AccountID) {
			return nil, fmt.Errorf("account %s: %w", p.AccountID, ErrNotFound)
		}
		d.Status, d.AccountID, d.Granted, d.KeyID = store.DeviceApproved, p.AccountID, p.Scopes, p.KeyID
	} else {
		d.Status = store.DeviceDenied
	}
	return d, store.PutJSON(c.tx, store.BucketOAuthDevices, []byte(d.DeviceHash), d)
}

func applyOAuthDeviceRedeem(c *applyCtx, p OAuthDeviceRedeem) (any, error) {
	d, err := c.r.OAuthDevice(p.DeviceHash)
	if err != nil || d.ClientID != p.ClientID {
		return nil, oauthErr("invalid_grant", "unknown device_code for this client")
	}
	switch d.Status {
	case store.DeviceDenied:
		return nil, oauthErr("access_denied", "the authorization request was denied")
	case store.DeviceRedeemed:
		return nil, oauthErr("invalid_grant", "this device_code was already exchanged")
	}
	if !c.at.Before(d.ExpiresAt) {
		return nil, oauthErr("expired_token", "the device_code expired; start a new device authorization")
	}
	if d.Status != store.DeviceApproved {
		return nil, oauthErr("authorization_pending", "the user has not approved the request yet")
	}
	g := newGrant(c, p.Issue.GrantID, d.AccountID, d.ClientID, d.ClientName, d.Granted, d.Resource, api.GrantDeviceCode)
	g.KeyID = d.KeyID
	res, err := issueTokens(c, g, p.Issue)
	if err != nil {
		return nil, err
	}
	d.Status, d.GrantID = store.DeviceRedeemed, g.ID
	if err := store.PutJSON(c.tx, store.BucketOAuthDevices, []byte(d.DeviceHash), d); err != nil {
		return nil, err
	}
	return res, c.tx.Bucket(store.BucketOAuthUserCodes).Delete([]byte(d.UserCodeHash))
}

func applyOAuthCodeCreate(c *applyCtx, p OAuthCodeCreate) (any, error) {
	if p.CodeHash == "" || p.Challenge == "" || p.TTL <= 0 {
		return nil, fmt.Errorf("%w: authorization code without hash, challenge or lifetime", ErrInvalid)
	}
	if !c.r.AccountExists(p.AccountID) {
		return nil, fmt.Errorf("account %s: %w", p.AccountID, ErrNotFound)
	}
	if c.tx.Bucket(store.BucketOAuthCodes).Get([]byte(p.CodeHash)) != nil {
		return nil, fmt.Errorf("%w: authorization code collision", ErrConflict)
	}
	oc := store.OAuthCode{OAuthCodeApproval: p.OAuthCodeApproval, ExpiresAt: c.at.Add(p.TTL), KeyID: p.KeyID}
	pruneOAuthDevices(c)
	return nil, store.PutJSON(c.tx, store.BucketOAuthCodes, []byte(p.CodeHash), oc)
}

func applyOAuthCodeRedeem(c *applyCtx, p OAuthCodeRedeem) (any, error) {
	oc, err := c.r.OAuthCode(p.CodeHash)
	if err != nil || oc.ClientID != p.ClientID {
		return nil, oauthErr("invalid_grant", "unknown authorization code for this client")
	}
	if oc.UsedAt != nil {
		// A second use: whoever holds the code may have stolen it, so the
		// tokens of its first use are revoked too (OAuth 2.1 §4.1.3).
		if oc.GrantID != "" {
			if err := revokeGrant(c, oc.GrantID); err != nil {
				return nil, err
			}
		}
		return oauthErr("invalid_grant", "this authorization code was already used; the tokens issued for it are revoked"), nil
	}
	if !c.at.Before(oc.ExpiresAt) {
		return nil, oauthErr("invalid_grant", "the authorization code expired")
	}
	if oc.RedirectURI != p.RedirectURI {
		return nil, oauthErr("invalid_grant", "redirect_uri does not match the authorization request")
	}
	if oc.Challenge != p.Challenge {
		return nil, oauthErr("invalid_grant", "code_verifier does not match the code_challenge")
	}
	if p.Resource != "" && p.Resource != oc.Resource {
		return nil, oauthErr("invalid_target", "resource %q is not the one the authorization was for", p.Resource)
	}
	g := newGrant(c, p.Issue.GrantID, oc.AccountID, oc.ClientID, oc.ClientName, oc.Scopes, oc.Resource, api.GrantAuthorizationCode)
	g.KeyID = oc.KeyID
	res, err := issueTokens(c, g, p.Issue)
	if err != nil {
		return nil, err
	}
	at := c.at
	oc.UsedAt, oc.GrantID = &at, g.ID
	return res, store.PutJSON(c.tx, store.BucketOAuthCodes, []byte(p.CodeHash), oc)
}

func applyOAuthRefresh(c *applyCtx, p OAuthRefresh) (any, error) {
	t, g, err := c.r.OAuthToken(p.RefreshHash)
	if err != nil || t.Kind != "rt_" || g.ClientID != p.ClientID || g.RevokedAt != nil {
		return nil, oauthErr("invalid_grant", "unknown, revoked or foreign refresh token")
	}
	if t.UsedAt != nil {
		// Reuse of a rotated refresh token: the family is compromised.
		if err := revokeGrant(c, g.ID); err != nil {
			return nil, err
		}
		return oauthErr("invalid_grant", "this refresh token was already used; every token of this grant is revoked"), nil
	}
	if !c.at.Before(t.ExpiresAt) {
		return nil, oauthErr("invalid_grant", "the refresh token expired")
	}
	if !ApproverLive(c.r, g) {
		return nil, oauthErr("invalid_grant", "the API key that approved this app was revoked")
	}
	if p.Resource != "" && p.Resource != g.Resource {
		return nil, oauthErr("invalid_target", "resource %q is not the one this grant is for", p.Resource)
	}
	at := c.at
	t.UsedAt = &at
	if err := store.PutJSON(c.tx, store.BucketOAuthTokens, []byte(p.RefreshHash), t); err != nil {
		return nil, err
	}
	g.RefreshedAt = &at
	if err := pruneGrantTokens(c, g.ID); err != nil {
		return nil, err
	}
	return issueTokens(c, g, p.Issue)
}

func applyOAuthRevoke(c *applyCtx, p OAuthRevoke) (any, error) {
	id := p.GrantID
	if p.TokenHash != "" {
		_, g, err := c.r.OAuthToken(p.TokenHash)
		if err != nil || (p.ClientID != "" && g.ClientID != p.ClientID) {
			return nil, nil // RFC 7009 §2.2: an unknown token is no error
		}
		id = g.ID
	}
	g, err := c.r.OAuthGrant(id)
	if err != nil || (p.AccountID != "" && g.AccountID != p.AccountID) {
		return nil, fmt.Errorf("connected app %s: %w", id, ErrNotFound)
	}
	if err := revokeGrant(c, id); err != nil {
		return nil, err
	}
	g, err = c.r.OAuthGrant(id)
	return g.ConnectedApp, err
}

func newGrant(c *applyCtx, id, accountID, clientID, clientName string, scopes []string, resource, grantType string) store.OAuthGrant {
	if scopes == nil {
		scopes = []string{}
	}
	return store.OAuthGrant{AccountID: accountID, ConnectedApp: api.ConnectedApp{
		ID: id, ClientID: clientID, ClientName: clientName, Scopes: slices.Clone(scopes), Resource: resource,
		GrantType: grantType, CreatedAt: c.at,
	}}
}

// issueTokens stores g and a new access/refresh pair of it.
func issueTokens(c *applyCtx, g store.OAuthGrant, is OAuthIssue) (any, error) {
	if g.ID == "" || is.AccessHash == "" || is.RefreshHash == "" || is.AccessTTL <= 0 || is.RefreshTTL <= 0 {
		return nil, fmt.Errorf("%w: token issue without grant id, hashes or lifetimes", ErrInvalid)
	}
	tb := c.tx.Bucket(store.BucketOAuthTokens)
	if tb.Get([]byte(is.AccessHash)) != nil || tb.Get([]byte(is.RefreshHash)) != nil {
		return nil, fmt.Errorf("%w: token hash collision", ErrConflict)
	}
	if owner := c.tx.Bucket(store.BucketOAuthGrantIDs).Get([]byte(g.ID)); owner != nil && string(owner) != g.AccountID {
		return nil, fmt.Errorf("%w: grant id collision", ErrConflict)
	}
	if err := store.PutJSON(c.tx, store.BucketOAuthGrants, store.OwnedKey(g.AccountID, g.ID), g); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketOAuthGrantIDs).Put([]byte(g.ID), []byte(g.AccountID)); err != nil {
		return nil, err
	}
	access := store.OAuthToken{Kind: "at_", GrantID: g.ID, AccountID: g.AccountID, ExpiresAt: c.at.Add(is.AccessTTL)}
	refresh := store.OAuthToken{Kind: "rt_", GrantID: g.ID, AccountID: g.AccountID, ExpiresAt: c.at.Add(is.RefreshTTL)}
	for _, t := range []struct {
		hash string
		tok  store.OAuthToken
	}{{is.AccessHash, access}, {is.RefreshHash, refresh}} {
		if err := store.PutJSON(c.tx, store.BucketOAuthTokens, []byte(t.hash), t.tok); err != nil {
			return nil, err
		}
		if err := c.tx.Bucket(store.BucketOAuthGrantTokens).Put(store.OwnedKey(g.ID, t.hash), []byte{}); err != nil {
			return nil, err
		}
	}
	return OAuthIssued{GrantID: g.ID, Scopes: g.Scopes, Resource: g.Resource, AccessExpiresAt: access.ExpiresAt}, nil
}

// revokeGrant marks a grant revoked and deletes every token of it.
func revokeGrant(c *applyCtx, id string) error {
	g, err := c.r.OAuthGrant(id)
	if err != nil {
		return nil
	}
	if g.RevokedAt == nil {
		at := c.at
		g.RevokedAt = &at
		if err := store.PutJSON(c.tx, store.BucketOAuthGrants, store.OwnedKey(g.AccountID, g.ID), g); err != nil {
			return err
		}
	}
	for _, h := range c.r.OAuthGrantTokens(id) {
		if err := deleteGrantToken(c, id, h); err != nil {
			return err
		}
	}
	return nil
}

// deleteGrantToken deletes the token hash of grant: the token and its entry
// in the grant's token index.
func deleteGrantToken(c *applyCtx, grant, hash string) error {
	if err := c.tx.Bucket(store.BucketOAuthTokens).Delete([]byte(hash)); err != nil {
		return err
	}
	return c.tx.Bucket(store.BucketOAuthGrantTokens).Delete(store.OwnedKey(grant, hash))
}

// pruneGrantTokens deletes a grant's expired tokens (used refresh tokens stay
// until they expire, so their reuse is still recognised).
func pruneGrantTokens(c *applyCtx, id string) error {
	for _, h := range c.r.OAuthGrantTokens(id) {
		var t store.OAuthToken
		if store.GetJSON(c.tx, store.BucketOAuthTokens, []byte(h), &t) == nil && t.ExpiresAt.After(c.at) {
			continue
		}
		if err := deleteGrantToken(c, id, h); err != nil {
			return err
		}
	}
	return nil
}

func applyOAuthSweep(c *applyCtx, p OAuthSweep) (any, error) {
	type dead struct{ hash, grant string }
	var gone []dead
	err := c.tx.Bucket(store.BucketOAuthTokens).ForEach(func(k, v []byte) error {
		if p.Limit > 0 && len(gone) >= p.Limit {
			return nil
		}
		var t store.OAuthToken
		if json.Unmarshal(v, &t) == nil && !c.at.Before(t.ExpiresAt) {
			gone = append(gone, dead{string(k), t.GrantID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	grants := map[string]bool{}
	for _, d := range gone {
		if err := deleteGrantToken(c, d.grant, d.hash); err != nil {
			return nil, err
		}
		grants[d.grant] = true
	}
	removed := 0
	for id := range grants {
		if len(c.r.OAuthGrantTokens(id)) > 0 {
			continue
		}
		g, err := c.r.OAuthGrant(id)
		if err != nil {
			continue
		}
		if err := c.tx.Bucket(store.BucketOAuthGrants).Delete(store.OwnedKey(g.AccountID, id)); err != nil {
			return nil, err
		}
		if err := c.tx.Bucket(store.BucketOAuthGrantIDs).Delete([]byte(id)); err != nil {
			return nil, err
		}
		removed++
	}
	out := map[string]int{"tokens": len(gone), "grants": removed}
	if !p.ClientsUnusedBefore.IsZero() {
		n, err := sweepUnusedClients(c, p.ClientsUnusedBefore, p.Limit)
		if err != nil {
			return nil, err
		}
		out["clients"] = n
	}
	return out, nil
}

// sweepUnusedClients removes up to limit (0: no limit) registered clients
// created before cut that no grant (live or revoked), device authorization
// or authorization code names, and returns how many it removed.
func sweepUnusedClients(c *applyCtx, cut time.Time, limit int) (int, error) {
	used := map[string]bool{}
	err := errors.Join(
		noteClients(c, store.BucketOAuthGrants, used, func(g store.OAuthGrant) string { return g.ClientID }),
		noteClients(c, store.BucketOAuthDevices, used, func(d store.OAuthDevice) string { return d.ClientID }),
		noteClients(c, store.BucketOAuthCodes, used, func(oc store.OAuthCode) string { return oc.ClientID }),
	)
	if err != nil {
		return 0, err
	}
	var gone [][]byte
	err = c.tx.Bucket(store.BucketOAuthClients).ForEach(func(k, v []byte) error {
		if limit > 0 && len(gone) >= limit {
			return nil
		}
		var cl store.OAuthClient
		if json.Unmarshal(v, &cl) == nil && cl.CreatedAt.Before(cut) && !used[cl.ID] {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	b := c.tx.Bucket(store.BucketOAuthClients)
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// noteClients marks in used the client each record of bucket names.
func noteClients[T any](c *applyCtx, bucket []byte, used map[string]bool, client func(T) string) error {
	return c.tx.Bucket(bucket).ForEach(func(_, v []byte) error {
		var rec T
		if json.Unmarshal(v, &rec) == nil {
			used[client(rec)] = true
		}
		return nil
	})
}

// ApproverLive reports whether the API key that approved g (if a key did)
// is not revoked: a grant lives no longer than its key, so revoking a
// leaked key also ends the apps it connected.
func ApproverLive(r store.ReadTx, g store.OAuthGrant) bool {
	_, ok := ApprovingKey(r, g)
	return ok
}

// ApprovingKey returns the API key that approved g and whether it is
// unrevoked. A grant the operator approved has no key: the zero KeyInfo, true.
// The key's expiry is not checked here (it depends on the reader's clock):
// callers serving a token check it, and give the app the key's allow-list
// and rate limit.
func ApprovingKey(r store.ReadTx, g store.OAuthGrant) (api.KeyInfo, bool) {
	if g.KeyID == "" {
		return api.KeyInfo{}, true
	}
	k, err := r.Key(g.KeyID)
	return k, err == nil && k.RevokedAt == nil
}
