package store

// Webhook buckets. Subscription and delivery keys start with the owner so a prefix
// scan lists one account's subscriptions or one subscription's deliveries.
var (
	BucketWebhooks          = []byte("webhooks")           // accountID/webhookID → Webhook
	BucketWebhookIDs        = []byte("webhook_ids")        // webhookID → accountID
	BucketWebhookDeliveries = []byte("webhook_deliveries") // webhookID/deliveryID → Delivery
	BucketWebhookPending    = []byte("webhook_pending")    // webhookID/deliveryID → "" for deliveries awaiting an attempt
	BucketWebhookAttempts   = []byte("webhook_attempts")   // webhookID/<8-byte seq> → api.WebhookAttempt (the delivery log)
	BucketWebhookMeta       = []byte("webhook_meta")       // dispatcher cursor, change versions, per-subscription counters
)

// WebhookBuckets are the webhook subscription and delivery buckets.
var WebhookBuckets = [][]byte{
	BucketWebhooks, BucketWebhookIDs, BucketWebhookDeliveries, BucketWebhookPending,
	BucketWebhookAttempts, BucketWebhookMeta,
}
