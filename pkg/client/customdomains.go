package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// CustomDomain returns a hosting account's custom domain and the DNS records
// it needs.
func (c *Client) CustomDomain(ctx context.Context, hostingID string) (api.CustomDomain, error) {
	return get[api.CustomDomain](ctx, c, hostingPath(hostingID, "custom-domain"))
}

// SetCustomDomain attaches domain to a hosting account and returns the DNS
// records to create; idemKey may be empty.
func (c *Client) SetCustomDomain(ctx context.Context, hostingID, domain, idemKey string) (api.CustomDomain, error) {
	return call[api.CustomDomain](ctx, c, "PUT", hostingPath(hostingID, "custom-domain"), api.CustomDomainRequest{Domain: domain}, idem(idemKey))
}

// VerifyCustomDomain checks the custom domain's DNS records at its
// authoritative nameservers (a 422 names each missing or wrong record).
func (c *Client) VerifyCustomDomain(ctx context.Context, hostingID string) (api.CustomDomainVerification, error) {
	return call[api.CustomDomainVerification](ctx, c, "POST", hostingPath(hostingID, "custom-domain", "verify"), nil, nil)
}

// DeleteCustomDomain detaches the custom domain; idemKey may be empty.
func (c *Client) DeleteCustomDomain(ctx context.Context, hostingID, idemKey string) error {
	_, err := c.Do(ctx, "DELETE", hostingPath(hostingID, "custom-domain"), nil, nil, idem(idemKey))
	return err
}

// RetryCertificate asks for the custom domain's certificate now (a failed
// order again, or an issued certificate renewed).
func (c *Client) RetryCertificate(ctx context.Context, hostingID string) (api.CustomDomain, error) {
	return call[api.CustomDomain](ctx, c, "POST", hostingPath(hostingID, "ssl", "retry"), nil, nil)
}
