package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateWebhook subscribes a URL; the returned Secret is the only copy of it.
// idemKey may be empty.
func (c *Client) CreateWebhook(ctx context.Context, req api.WebhookCreateRequest, idemKey string) (api.Webhook, error) {
	var w api.Webhook
	_, err := c.Do(ctx, "POST", "/v1/webhooks", req, &w, idem(idemKey))
	return w, err
}

// Webhooks lists subscriptions (secrets masked).
func (c *Client) Webhooks(ctx context.Context, page, limit int) (api.Page[api.Webhook], error) {
	var p api.Page[api.Webhook]
	_, err := c.Do(ctx, "GET", "/v1/webhooks?page="+strconv.Itoa(page)+"&limit="+strconv.Itoa(limit), nil, &p, nil)
	return p, err
}

// Webhook returns one subscription (secret masked).
func (c *Client) Webhook(ctx context.Context, id string) (api.Webhook, error) {
	var w api.Webhook
	_, err := c.Do(ctx, "GET", "/v1/webhooks/"+url.PathEscape(id), nil, &w, nil)
	return w, err
}

// UpdateWebhook changes a subscription; nil fields stay.
func (c *Client) UpdateWebhook(ctx context.Context, id string, req api.WebhookUpdateRequest) (api.Webhook, error) {
	var w api.Webhook
	_, err := c.Do(ctx, "PATCH", "/v1/webhooks/"+url.PathEscape(id), req, &w, nil)
	return w, err
}

// DeleteWebhook removes a subscription with its delivery log.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/webhooks/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// RotateWebhookSecret issues a new secret (returned once); the old one stops at once.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (api.Webhook, error) {
	var w api.Webhook
	_, err := c.Do(ctx, "POST", "/v1/webhooks/"+url.PathEscape(id)+"/rotate-secret", nil, &w, nil)
	return w, err
}

// WebhookDeliveries returns a page of the subscription's delivery log, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string, page, limit int) (api.Page[api.WebhookAttempt], error) {
	var p api.Page[api.WebhookAttempt]
	_, err := c.Do(ctx, "GET", "/v1/webhooks/"+url.PathEscape(id)+"/deliveries?page="+strconv.Itoa(page)+"&limit="+strconv.Itoa(limit), nil, &p, nil)
	return p, err
}

// RedeliverWebhook re-queues a past delivery as a new attempt chain.
func (c *Client) RedeliverWebhook(ctx context.Context, id, deliveryID string) (api.WebhookDelivery, error) {
	var d api.WebhookDelivery
	_, err := c.Do(ctx, "POST", "/v1/webhooks/"+url.PathEscape(id)+"/deliveries/"+url.PathEscape(deliveryID)+"/redeliver", nil, &d, nil)
	return d, err
}
