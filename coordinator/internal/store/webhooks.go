package store

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// Keys of BucketWebhookMeta.
var (
	// WebhookCursorKey holds the outbox key up to which every event has been
	// handed to the dispatcher's durable state (a delivery record per match).
	WebhookCursorKey = []byte("cursor")
	// WebhookSubsVersionKey holds the Raft index of the last subscription change.
	WebhookSubsVersionKey = []byte("subs_version")
	// WebhookRedeliverVersionKey holds the Raft index of the last redeliver.
	WebhookRedeliverVersionKey = []byte("redeliver_version")
)

// Webhook is a stored subscription. The signing secret is sealed under the
// coordinators' key-encryption key; the FSM never sees it in plaintext.
type Webhook struct {
	ID             string   `json:"id"`
	AccountID      string   `json:"account_id"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Description    string   `json:"description"`
	Active         bool     `json:"active"`
	SealedSecret   string   `json:"sealed_secret"`
	SecretHint     string   `json:"secret_hint"` // last 4 characters, for the masked form
	DisabledReason string   `json:"disabled_reason,omitempty"`
	// ActiveSince is the Raft index from which events are delivered: the create or
	// the last resume. Events committed while paused or before creation never are.
	ActiveSince uint64    `json:"active_since"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Public is the API form with the secret masked.
func (w Webhook) Public() api.Webhook {
	return api.Webhook{
		ID: w.ID, URL: w.URL, Events: append([]string{}, w.Events...), Description: w.Description,
		IsActive: w.Active, Secret: MaskSecret(w.SecretHint), DisabledReason: w.DisabledReason,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
}

// MaskSecret is the masked form of a secret ending in hint.
func MaskSecret(hint string) string { return "whsec_" + strings.Repeat("•", 8) + hint }

// Wants reports whether the subscription takes events of type typ.
func (w Webhook) Wants(typ string) bool {
	for _, e := range w.Events {
		if e == api.WebhookEventAll || e == typ {
			return true
		}
	}
	return false
}

// Delivery is a stored (event, subscription) pair with a copy of the event, so a
// retry or a redeliver works after the outbox entry is pruned.
type Delivery struct {
	api.WebhookDelivery
	Event      Event     `json:"event"`
	ChainStart time.Time `json:"chain_start"` // first attempt of the current chain
}

// WebhookKey is the "<webhookID>/<id>" key of a subscription's delivery.
func WebhookKey(webhookID, id string) []byte { return []byte(webhookID + "/" + id) }

// WebhookAttemptKey is the delivery-log key of attempt seq of a subscription.
func WebhookAttemptKey(webhookID string, seq uint64) []byte {
	k := make([]byte, 0, len(webhookID)+9)
	k = append(k, webhookID...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

// WebhookOwner returns the account owning a subscription, or "".
func WebhookOwner(tx *bolt.Tx, webhookID string) string {
	return string(tx.Bucket(BucketWebhookIDs).Get([]byte(webhookID)))
}

// GetWebhook loads a subscription by id alone (any account).
func GetWebhook(tx *bolt.Tx, webhookID string) (Webhook, error) {
	var w Webhook
	owner := WebhookOwner(tx, webhookID)
	if owner == "" {
		return w, ErrNotFound
	}
	return w, GetJSON(tx, BucketWebhooks, OwnedKey(owner, webhookID), &w)
}

// WebhookMetaU64 reads an 8-byte value of BucketWebhookMeta (0 if absent).
func WebhookMetaU64(tx *bolt.Tx, key []byte) uint64 {
	v := tx.Bucket(BucketWebhookMeta).Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// PutWebhookMetaU64 writes an 8-byte value of BucketWebhookMeta.
func PutWebhookMetaU64(tx *bolt.Tx, key []byte, v uint64) error {
	return tx.Bucket(BucketWebhookMeta).Put(key, u64(v))
}

// WebhookCursor is the dispatcher's outbox cursor (nil before the first event).
func WebhookCursor(tx *bolt.Tx) []byte {
	v := tx.Bucket(BucketWebhookMeta).Get(WebhookCursorKey)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}
