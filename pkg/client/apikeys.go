package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// Scopes lists every scope with its description (no key needed).
func (c *Client) Scopes(ctx context.Context) (api.ScopeList, error) {
	return get[api.ScopeList](ctx, c, "/v1/scopes")
}

// APIKeys lists the account's API keys (revoked ones included), without secrets.
func (c *Client) APIKeys(ctx context.Context) (api.KeyList, error) {
	return get[api.KeyList](ctx, c, "/v1/account/api-keys")
}

// APIKeyUsage returns one page of a key's usage log, newest first.
func (c *Client) APIKeyUsage(ctx context.Context, id string, page, limit int) (api.Page[api.KeyUsage], error) {
	return get[api.Page[api.KeyUsage]](ctx, c, "/v1/account/api-keys/"+seg("id", id)+"/usage"+pageQuery(page, limit))
}

// CreateAPIKey mints a key for the account (keys:write); the returned Key is
// the only copy of the secret (empty when idemKey replays an earlier mint).
// idemKey may be empty.
func (c *Client) CreateAPIKey(ctx context.Context, req api.APIKeyCreateRequest, idemKey string) (api.KeyCreated, error) {
	return call[api.KeyCreated](ctx, c, "POST", "/v1/account/api-keys", req, idem(idemKey))
}

// RevokeAPIKey revokes one of the account's keys (keys:write).
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (api.KeyInfo, error) {
	return call[api.KeyInfo](ctx, c, "DELETE", "/v1/account/api-keys/"+seg("id", id), nil, nil)
}
