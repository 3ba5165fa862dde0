package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// ListQuery selects a page of a list that walks by number or by cursor
// (servers, account IPs, hosting, domains, tickets, webhooks, invoices,
// wallet transactions, a webhook's delivery log, a key's usage log); an empty field (a zero Page or Limit) is not sent.
// Walk by Cursor for a walk that neither repeats nor skips an item made or
// deleted meanwhile: page numbers shift under such writes.
type ListQuery struct {
	Page   int    // a page number (1 is the newest items); not with Cursor
	Limit  int    // items per page, 1 to 200; 0: the server's default (50)
	Cursor string // the previous page's NextCursor; "" the first page
}

func (q ListQuery) on(path string) string {
	return withQuery(path, nonEmpty(map[string]string{"page": count(q.Page), "limit": count(q.Limit), "cursor": q.Cursor}))
}

// ListServers returns a page of the account's servers, newest first.
func (c *Client) ListServers(ctx context.Context, q ListQuery) (api.Page[api.Server], error) {
	return get[api.Page[api.Server]](ctx, c, q.on("/v1/servers"))
}

// ListAccountIPs returns a page of AccountIPs (the cursor is a server id).
func (c *Client) ListAccountIPs(ctx context.Context, q ListQuery) (api.AccountIPList, error) {
	return get[api.AccountIPList](ctx, c, q.on("/v1/servers/ips"))
}

// ListHosting returns a page of the account's hosting accounts, newest first.
func (c *Client) ListHosting(ctx context.Context, q ListQuery) (api.HostingList, error) {
	return get[api.HostingList](ctx, c, q.on("/v1/hosting"))
}

// ListDomains returns a page of the account's domains, newest first.
func (c *Client) ListDomains(ctx context.Context, q ListQuery) (api.Page[api.Domain], error) {
	return get[api.Page[api.Domain]](ctx, c, q.on("/v1/domains"))
}

// ListTickets returns a page of the account's tickets, newest first.
func (c *Client) ListTickets(ctx context.Context, q ListQuery) (api.Page[api.Ticket], error) {
	return get[api.Page[api.Ticket]](ctx, c, q.on("/v1/tickets"))
}

// ListWebhooks returns a page of the account's webhook subscriptions, newest first.
func (c *Client) ListWebhooks(ctx context.Context, q ListQuery) (api.Page[api.Webhook], error) {
	return get[api.Page[api.Webhook]](ctx, c, q.on("/v1/webhooks"))
}

// ListInvoices returns a page of the account's invoices, newest first.
func (c *Client) ListInvoices(ctx context.Context, q ListQuery) (api.Page[api.Invoice], error) {
	return get[api.Page[api.Invoice]](ctx, c, q.on("/v1/billing/invoices"))
}

// ListWalletTransactions returns a page of the wallet's transactions, newest first.
func (c *Client) ListWalletTransactions(ctx context.Context, q ListQuery) (api.Page[api.WalletTransaction], error) {
	return get[api.Page[api.WalletTransaction]](ctx, c, q.on("/v1/billing/wallet/transactions"))
}

// ListWebhookDeliveries returns a page of the subscription's delivery log
// (as WebhookDeliveries orders it). Its cursor is an opaque token of this
// subscription's log: a walk by Cursor shows each delivery not attempted
// yet once, queued or attempted by the time the walk reaches it.
func (c *Client) ListWebhookDeliveries(ctx context.Context, id string, q ListQuery) (api.Page[api.WebhookAttempt], error) {
	return get[api.Page[api.WebhookAttempt]](ctx, c, q.on("/v1/webhooks/"+seg("id", id)+"/deliveries"))
}

// ListAPIKeyUsage returns a page of a key's usage log, newest request first.
// Its cursor is an opaque token of this key's log.
func (c *Client) ListAPIKeyUsage(ctx context.Context, id string, q ListQuery) (api.Page[api.KeyUsage], error) {
	return get[api.Page[api.KeyUsage]](ctx, c, q.on("/v1/account/api-keys/"+seg("id", id)+"/usage"))
}
