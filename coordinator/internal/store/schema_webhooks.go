package store

// WebhookBuckets are the webhook subscription and delivery buckets.
var WebhookBuckets [][]byte
