package client

import (
	"context"
	"strconv"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateWebhook subscribes a URL; the returned Secret is the only copy of it.
// idemKey may be empty.
func (c *Client) CreateWebhook(ctx context.Context, req api.WebhookCreateRequest, idemKey string) (api.Webhook, error) {
	return call[api.Webhook](ctx, c, "POST", "/v1/webhooks", req, idem(idemKey))
}

// Webhooks lists subscriptions (secrets masked).
func (c *Client) Webhooks(ctx context.Context, page, limit int) (api.Page[api.Webhook], error) {
	return call[api.Page[api.Webhook]](ctx, c, "GET", "/v1/webhooks?page="+strconv.Itoa(page)+"&limit="+strconv.Itoa(limit), nil, nil)
}

// Webhook returns one subscription (secret masked).
func (c *Client) Webhook(ctx context.Context, id string) (api.Webhook, error) {
	return call[api.Webhook](ctx, c, "GET", "/v1/webhooks/"+seg("id", id), nil, nil)
}

// UpdateWebhook changes a subscription; nil fields stay.
func (c *Client) UpdateWebhook(ctx context.Context, id string, req api.WebhookUpdateRequest) (api.Webhook, error) {
	return call[api.Webhook](ctx, c, "PATCH", "/v1/webhooks/"+seg("id", id), req, nil)
}

// DeleteWebhook removes a subscription with its delivery log.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/webhooks/"+seg("id", id), nil, nil, nil)
	return err
}

// RotateWebhookSecret issues a new secret (returned once); the old one stops at once.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (api.Webhook, error) {
	return call[api.Webhook](ctx, c, "POST", "/v1/webhooks/"+seg("id", id)+"/rotate-secret", nil, nil)
}

// WebhookDeliveries returns a page of the subscription's delivery log: the
// deliveries not attempted yet first (outcome api.AttemptQueued), newest
// first, then the attempts, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string, page, limit int) (api.Page[api.WebhookAttempt], error) {
	return call[api.Page[api.WebhookAttempt]](ctx, c, "GET", "/v1/webhooks/"+seg("id", id)+"/deliveries?page="+strconv.Itoa(page)+"&limit="+strconv.Itoa(limit), nil, nil)
}

// RedeliverWebhook re-queues a past delivery as a new attempt chain; a
// queued delivery (not attempted yet) is a 409 not_attempted_yet.
func (c *Client) RedeliverWebhook(ctx context.Context, id, deliveryID string) (api.WebhookDelivery, error) {
	return call[api.WebhookDelivery](ctx, c, "POST", "/v1/webhooks/"+seg("id", id)+"/deliveries/"+seg("deliveryID", deliveryID)+"/redeliver", nil, nil)
}
