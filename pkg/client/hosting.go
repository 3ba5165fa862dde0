package client

import (
	"context"
	"net/url"

	"github.com/hostplane/hostplane/pkg/api"
)

// Hosting lists a page of the account's web-hosting accounts (never
// passwords); page and limit 0 take the server's defaults.
func (c *Client) Hosting(ctx context.Context, page, limit int) (api.HostingList, error) {
	return get[api.HostingList](ctx, c, "/v1/hosting"+pageQuery(page, limit))
}

// HostingAccount returns one hosting account.
func (c *Client) HostingAccount(ctx context.Context, id string) (api.HostingAccount, error) {
	return get[api.HostingAccount](ctx, c, hostingPath(id))
}

func hostingPath(id string, rest ...string) string {
	p := "/v1/hosting/" + seg("id", id)
	for _, r := range rest {
		p += "/" + r // a constant, or a seg
	}
	return p
}

func (c *Client) hostingAction(ctx context.Context, method, path string, body any, idemKey string) (api.HostingActionAccepted, error) {
	return call[api.HostingActionAccepted](ctx, c, method, path, body, idem(idemKey))
}

// SuspendHosting suspends a hosting account; idemKey may be empty.
func (c *Client) SuspendHosting(ctx context.Context, id, idemKey string) (api.HostingActionAccepted, error) {
	return c.hostingAction(ctx, "POST", hostingPath(id, "suspend"), nil, idemKey)
}

// UnsuspendHosting restores a suspended hosting account; idemKey may be empty.
func (c *Client) UnsuspendHosting(ctx context.Context, id, idemKey string) (api.HostingActionAccepted, error) {
	return c.hostingAction(ctx, "POST", hostingPath(id, "unsuspend"), nil, idemKey)
}

// SetHostingPHP moves the account to another PHP version installed on its
// node; idemKey may be empty.
func (c *Client) SetHostingPHP(ctx context.Context, id, version, idemKey string) (api.HostingActionAccepted, error) {
	return c.hostingAction(ctx, "PUT", hostingPath(id, "php"), api.HostingPHPRequest{PHPVersion: version}, idemKey)
}

// ResetHostingPassword sets new random passwords for a hosting account:
// target is api.HostingPasswordSFTP, DB or Both ("" is both). The new
// passwords are in the answer only, never again; the route takes no
// Idempotency-Key (a retry makes new passwords).
func (c *Client) ResetHostingPassword(ctx context.Context, id, target string) (api.HostingPasswordResetAccepted, error) {
	var body any
	if target != "" {
		body = api.HostingPasswordResetRequest{Target: target}
	}
	return call[api.HostingPasswordResetAccepted](ctx, c, "POST", hostingPath(id, "password-reset"), body, nil)
}

// DeleteHosting deletes a hosting account and everything it has on its
// node; idemKey may be empty.
func (c *Client) DeleteHosting(ctx context.Context, id, idemKey string) (api.HostingActionAccepted, error) {
	return c.hostingAction(ctx, "DELETE", hostingPath(id), nil, idemKey)
}

// CreateHosting places a hosting account (operator); the SFTP and database
// passwords are in the answer only.
func (a *Admin) CreateHosting(ctx context.Context, req api.AdminHostingCreateRequest) (api.AdminHostingCreated, error) {
	return adminCall[api.AdminHostingCreated](ctx, a, "POST", "/admin/hosting", req)
}

// ListHosting lists every hosting account (operator), optionally of one
// account.
func (a *Admin) ListHosting(ctx context.Context, accountID string) ([]api.AdminHostingAccount, error) {
	p := "/admin/hosting"
	if accountID != "" {
		p += "?account=" + url.QueryEscape(accountID)
	}
	return adminCall[[]api.AdminHostingAccount](ctx, a, "GET", p, nil)
}

// ResetHostingPassword sets new random passwords for a customer's hosting
// account (operator): target as for Client.ResetHostingPassword. The new
// passwords are in the answer only.
func (a *Admin) ResetHostingPassword(ctx context.Context, id, target string) (api.HostingPasswordResetAccepted, error) {
	return adminCall[api.HostingPasswordResetAccepted](ctx, a, "POST", "/admin/hosting/"+seg("id", id)+"/password-reset",
		api.HostingPasswordResetRequest{Target: target})
}
