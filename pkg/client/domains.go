package client

import (
	"context"
	"net/url"

	"github.com/hostplane/hostplane/pkg/api"
)

// Registered domains (/v1/domains).

// Domains lists the account's registered domains.
func (c *Client) Domains(ctx context.Context, page, limit int) (api.Page[api.Domain], error) {
	return get[api.Page[api.Domain]](ctx, c, "/v1/domains"+pageQuery(page, limit))
}

// Domain returns one domain with its latest change.
func (c *Client) Domain(ctx context.Context, id string) (api.Domain, error) {
	return get[api.Domain](ctx, c, "/v1/domains/"+seg("id", id))
}

// CheckDomain asks the registry whether name can be registered, with the
// caller's yearly price.
func (c *Client) CheckDomain(ctx context.Context, name string) (api.DomainCheck, error) {
	return get[api.DomainCheck](ctx, c, "/v1/domains/check?name="+url.QueryEscape(name))
}

// RegisterDomain buys a registration from the wallet. The domain comes back
// active when the registry answered in time, else registering (follow it
// with Domain). Send an idempotency key so a retry cannot order twice.
func (c *Client) RegisterDomain(ctx context.Context, req api.DomainOrderRequest, idemKey string) (api.Domain, error) {
	return call[api.Domain](ctx, c, "POST", "/v1/domains", req, idem(idemKey))
}

// UpdateDomain changes auto-renew, transfer lock, WHOIS privacy or
// nameservers; the domain comes back with the change applied, or pending
// when the registry has not answered yet (a refused change is an error).
func (c *Client) UpdateDomain(ctx context.Context, id string, req api.DomainUpdateRequest, idemKey string) (api.Domain, error) {
	return call[api.Domain](ctx, c, "PATCH", "/v1/domains/"+seg("id", id), req, idem(idemKey))
}

// SetDomainHost creates or changes a child name server of a domain (a host
// name inside it, e.g. ns1.example.com of example.com) with its glue
// addresses: the domain comes back with the change pending at the registry
// (follow it with Domain; applied, the host is listed in Hosts and can be
// this or another domain's name server), or as it is when the host has
// these addresses already.
func (c *Client) SetDomainHost(ctx context.Context, id, name string, req api.DomainHostRequest, idemKey string) (api.Domain, error) {
	return call[api.Domain](ctx, c, "PUT", "/v1/domains/"+seg("id", id)+"/hosts/"+seg("name", name), req, idem(idemKey))
}

// DeleteDomainHost deletes a child name server of a domain at the
// registry (refused there while a domain names it): the domain comes back
// with the change pending.
func (c *Client) DeleteDomainHost(ctx context.Context, id, name, idemKey string) (api.Domain, error) {
	return call[api.Domain](ctx, c, "DELETE", "/v1/domains/"+seg("id", id)+"/hosts/"+seg("name", name), nil, idem(idemKey))
}

// Domains lists the registered domains of every account, or of one
// (operator; the registry operation in flight included).
func (a *Admin) Domains(ctx context.Context, accountID string) ([]api.AdminDomain, error) {
	path := "/admin/domains"
	if accountID != "" {
		path += "?account=" + url.QueryEscape(accountID)
	}
	return adminCall[[]api.AdminDomain](ctx, a, "GET", path, nil)
}

// Domain returns one registered domain (operator).
func (a *Admin) Domain(ctx context.Context, id string) (api.AdminDomain, error) {
	return adminCall[api.AdminDomain](ctx, a, "GET", "/admin/domains/"+seg("id", id), nil)
}

// QuoteDomain prices a registration body without ordering.
func (c *Client) QuoteDomain(ctx context.Context, req api.DomainOrderRequest) (api.DomainQuote, error) {
	return call[api.DomainQuote](ctx, c, "POST", "/v1/domains/quote", req, nil)
}

// QuoteDomainTransfer prices a transfer body without ordering; a body the
// transfer refuses is refused alike.
func (c *Client) QuoteDomainTransfer(ctx context.Context, req api.DomainTransferRequest) (api.DomainTransferQuote, error) {
	return call[api.DomainTransferQuote](ctx, c, "POST", "/v1/domains/transfer/quote", req, nil)
}

// TransferDomain moves a domain registered elsewhere here with its auth
// code, paid from the wallet for one year.
func (c *Client) TransferDomain(ctx context.Context, req api.DomainTransferRequest, idemKey string) (api.Domain, error) {
	return call[api.Domain](ctx, c, "POST", "/v1/domains/transfer", req, idem(idemKey))
}
