package client

import (
	"context"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Products lists the orderable catalogue with the caller's own prices.
func (c *Client) Products(ctx context.Context) (api.ProductList, error) {
	return call[api.ProductList](ctx, c, "GET", "/v1/products", nil, nil)
}

// OSTemplates lists the installable OS templates (servers:read).
func (c *Client) OSTemplates(ctx context.Context) (api.OSTemplateList, error) {
	return call[api.OSTemplateList](ctx, c, "GET", "/v1/os-templates", nil, nil)
}

// OrderServer buys a server from the wallet. Send an idempotency key so a
// retry cannot order twice; the root password is only in the first response.
func (c *Client) OrderServer(ctx context.Context, req api.ServerOrderRequest, idemKey string) (api.ServerOrder, error) {
	return call[api.ServerOrder](ctx, c, "POST", "/v1/servers", req, idem(idemKey))
}

// Products lists the catalogue, retired products included.
func (a *Admin) Products(ctx context.Context) ([]api.AdminProduct, error) {
	return adminCall[[]api.AdminProduct](ctx, a, "GET", "/admin/products", nil)
}

// CreateProduct adds a product to the catalogue.
func (a *Admin) CreateProduct(ctx context.Context, slug string, req api.ProductRequest) (api.AdminProduct, error) {
	return adminCall[api.AdminProduct](ctx, a, "POST", "/admin/products/"+seg("slug", slug), req)
}

// UpdateProduct replaces a product's details and price (new orders pay it).
func (a *Admin) UpdateProduct(ctx context.Context, slug string, req api.ProductRequest) (api.AdminProduct, error) {
	return adminCall[api.AdminProduct](ctx, a, "PUT", "/admin/products/"+seg("slug", slug), req)
}

// UpdateProductIf is UpdateProduct applied only to the product as last
// changed at updatedAt (its updated_at as read, sent as If-Match): a product
// changed since is a 412 precondition_failed, nothing changed.
func (a *Admin) UpdateProductIf(ctx context.Context, slug string, req api.ProductRequest, updatedAt time.Time) (api.AdminProduct, error) {
	hdr := http.Header{"If-Match": {`"` + updatedAt.UTC().Format(time.RFC3339Nano) + `"`}}
	return adminCallWith[api.AdminProduct](ctx, a, "PUT", "/admin/products/"+seg("slug", slug), req, hdr)
}

// RetireProduct stops a product from being ordered.
func (a *Admin) RetireProduct(ctx context.Context, slug string) (api.AdminProduct, error) {
	return adminCall[api.AdminProduct](ctx, a, "POST", "/admin/products/"+seg("slug", slug)+"/retire", struct{}{})
}

// AccountPricing returns an account's reseller pricing.
func (a *Admin) AccountPricing(ctx context.Context, accountID string) (api.AccountPricing, error) {
	return adminCall[api.AccountPricing](ctx, a, "GET", "/admin/accounts/"+seg("accountID", accountID)+"/pricing", nil)
}

// SetAccountPricing sets an account's reseller pricing.
func (a *Admin) SetAccountPricing(ctx context.Context, accountID string, p api.AccountPricing) (api.AccountPricing, error) {
	return adminCall[api.AccountPricing](ctx, a, "PUT", "/admin/accounts/"+seg("accountID", accountID)+"/pricing", p)
}

// QuoteServer prices an order body without ordering.
func (c *Client) QuoteServer(ctx context.Context, req api.ServerOrderRequest) (api.ServerQuote, error) {
	return call[api.ServerQuote](ctx, c, "POST", "/v1/servers/quote", req, nil)
}

// OrderHosting buys a hosting account from the wallet (POST /v1/hosting); an
// idemKey makes a retry safe. The passwords are in the first answer only.
func (c *Client) OrderHosting(ctx context.Context, req api.HostingOrderRequest, idemKey string) (api.HostingOrder, error) {
	return call[api.HostingOrder](ctx, c, "POST", "/v1/hosting", req, idem(idemKey))
}

// QuoteHosting prices a hosting order without ordering.
func (c *Client) QuoteHosting(ctx context.Context, req api.HostingOrderRequest) (api.ServerQuote, error) {
	return call[api.ServerQuote](ctx, c, "POST", "/v1/hosting/quote", req, nil)
}

// Suspend suspends a server ("servers") or hosting account ("hosting") as an
// operator, with the reason the customer is shown.
func (a *Admin) Suspend(ctx context.Context, kind, id, reason string) (api.AdminSuspension, error) {
	return adminCall[api.AdminSuspension](ctx, a, "POST", "/admin/"+seg("kind", kind)+"/"+seg("id", id)+"/suspend", api.AdminSuspendRequest{Reason: reason})
}

// Unsuspend lifts an operator's suspension of a server ("servers") or
// hosting account ("hosting").
func (a *Admin) Unsuspend(ctx context.Context, kind, id string) (api.AdminSuspension, error) {
	return adminCall[api.AdminSuspension](ctx, a, "POST", "/admin/"+seg("kind", kind)+"/"+seg("id", id)+"/unsuspend", nil)
}

// OSTemplateLabels lists the operators' template labels.
func (a *Admin) OSTemplateLabels(ctx context.Context) ([]api.OSTemplateLabel, error) {
	return adminCall[[]api.OSTemplateLabel](ctx, a, "GET", "/admin/os-templates", nil)
}

// LabelOSTemplate sets the family, version and display name customers see
// of a template (GET /v1/os-templates); empty fields fall back to the name.
func (a *Admin) LabelOSTemplate(ctx context.Context, name string, req api.OSTemplateLabelRequest) (api.OSTemplateLabel, error) {
	return adminCall[api.OSTemplateLabel](ctx, a, "PUT", "/admin/os-templates/"+seg("name", name), req)
}

// ifLabel is the precondition header of a label write made from a read of
// the label: If-Match its updated_at, or If-None-Match: * when there was
// none (the zero time).
func ifLabel(updatedAt time.Time) http.Header {
	if updatedAt.IsZero() {
		return http.Header{"If-None-Match": {"*"}}
	}
	return http.Header{"If-Match": {`"` + updatedAt.UTC().Format(time.RFC3339Nano) + `"`}}
}

// LabelOSTemplateIf is LabelOSTemplate applied only onto the label as read,
// last changed at updatedAt (zero: the template had none): a label changed
// since is a 412 precondition_failed, nothing changed.
func (a *Admin) LabelOSTemplateIf(ctx context.Context, name string, req api.OSTemplateLabelRequest, updatedAt time.Time) (api.OSTemplateLabel, error) {
	return adminCallWith[api.OSTemplateLabel](ctx, a, "PUT", "/admin/os-templates/"+seg("name", name), req, ifLabel(updatedAt))
}

// UnlabelOSTemplateIf is UnlabelOSTemplate applied only to the label as read
// (LabelOSTemplateIf).
func (a *Admin) UnlabelOSTemplateIf(ctx context.Context, name string, updatedAt time.Time) (api.OSTemplateLabel, error) {
	return adminCallWith[api.OSTemplateLabel](ctx, a, "DELETE", "/admin/os-templates/"+seg("name", name), nil, ifLabel(updatedAt))
}

// UnlabelOSTemplate removes a template's label and returns it.
func (a *Admin) UnlabelOSTemplate(ctx context.Context, name string) (api.OSTemplateLabel, error) {
	return adminCall[api.OSTemplateLabel](ctx, a, "DELETE", "/admin/os-templates/"+seg("name", name), nil)
}
