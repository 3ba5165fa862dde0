package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// ConnectedApps lists the OAuth clients the account approved and has not revoked.
func (c *Client) ConnectedApps(ctx context.Context) (api.ConnectedAppList, error) {
	return get[api.ConnectedAppList](ctx, c, "/v1/account/connected-apps")
}

// RevokeConnectedApp revokes a connected app and every token it holds.
func (c *Client) RevokeConnectedApp(ctx context.Context, id string) (api.ConnectedApp, error) {
	return call[api.ConnectedApp](ctx, c, "DELETE", "/v1/account/connected-apps/"+seg("id", id), nil, nil)
}

// OAuthApprove approves (or, with Deny, denies) a device authorization for an
// account, as a provider's own dashboard does after its own login.
func (a *Admin) OAuthApprove(ctx context.Context, req api.OAuthApproveRequest) (api.OAuthApproval, error) {
	return adminCall[api.OAuthApproval](ctx, a, "POST", "/admin/oauth/approve", req)
}

// ConnectedApps lists an account's connected apps.
func (a *Admin) ConnectedApps(ctx context.Context, accountID string) (api.ConnectedAppList, error) {
	return adminCall[api.ConnectedAppList](ctx, a, "GET", "/admin/accounts/"+seg("accountID", accountID)+"/connected-apps", nil)
}

// RevokeConnectedApp revokes any account's connected app with its tokens.
func (a *Admin) RevokeConnectedApp(ctx context.Context, id string) (api.ConnectedApp, error) {
	return adminCall[api.ConnectedApp](ctx, a, "POST", "/admin/connected-apps/"+seg("id", id)+"/revoke", nil)
}
