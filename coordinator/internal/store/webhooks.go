package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
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
	ActiveSince uint64 `json:"active_since"`
	// PausedSince is the Raft index of the pause (or the disable after a 410)
	// that holds the subscription's pending deliveries, set from semantics
	// level 2: while it is set and the subscription is inactive, a pending
	// delivery stays pending and is not attempted, and events committed
	// before it are still delivered; the resume sends them. 0: not paused,
	// or paused before level 2 (its pending deliveries were failed).
	PausedSince uint64 `json:"paused_since,omitempty"`
	// Gaps are the pauses, each from its start to its resume (Raft indexes),
	// kept (level 2) when the resume came before the dispatcher had read
	// every event committed before the pause: those are still delivered,
	// the pauses' are not. Every such pause is kept, oldest first, until the
	// dispatcher's cursor is past it (at most MaxWebhookGaps: see
	// AddWebhookGap).
	Gaps      []IndexRange `json:"gaps,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// IndexRange is a range of Raft indexes, both ends included.
type IndexRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// MaxWebhookGaps bounds a subscription's Gaps: pauses and resumes faster
// than the dispatcher reads would otherwise grow its record without end.
const MaxWebhookGaps = 16

// AddWebhookGap is gaps with g (a pause that just ended) appended, less the
// gaps the dispatcher has read past (read is its cursor's index): no event
// it has yet to read is in those. Past MaxWebhookGaps the two oldest are
// merged into one: the events committed between them, while the
// subscription was active, are then not delivered (a pause's never are).
func AddWebhookGap(gaps []IndexRange, g IndexRange, read uint64) []IndexRange {
	out := make([]IndexRange, 0, len(gaps)+1)
	for _, x := range gaps {
		if x.To > read {
			out = append(out, x)
		}
	}
	out = append(out, g)
	for len(out) > MaxWebhookGaps {
		out[1].From = out[0].From
		out = out[1:]
	}
	return out
}

// Holding reports whether the subscription is paused with its pending
// deliveries held for the resume.
func (w Webhook) Holding() bool { return !w.Active && w.PausedSince != 0 }

// Takes reports whether an event committed at Raft index index is delivered
// to the subscription: committed after the create or last resume (or before
// it, outside every pause's gap), and before the pause that holds it if
// paused.
func (w Webhook) Takes(index uint64) bool {
	if index <= w.ActiveSince {
		return false
	}
	for _, g := range w.Gaps {
		if index >= g.From && index <= g.To {
			return false
		}
	}
	return w.Active || (w.PausedSince != 0 && index < w.PausedSince)
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
	Event Event `json:"event"`
	// ChainStart is where the current chain's retry window starts: its first
	// attempt; from semantics level 2 the event's time for a delivery held
	// (paused) before its first attempt, and the redeliver's time for a
	// redelivered chain.
	ChainStart time.Time `json:"chain_start"`
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

// PutWebhookMetaU64 writes an 8-byte value of BucketWebhookMeta.
func PutWebhookMetaU64(tx *bolt.Tx, key []byte, v uint64) error {
	return tx.Bucket(BucketWebhookMeta).Put(key, u64(v))
}

// WebhookOwner returns the account owning a subscription, or "".
func (r ReadTx) WebhookOwner(webhookID string) string {
	return string(r.value(BucketWebhookIDs, []byte(webhookID)))
}

// WebhookByID loads a subscription by id alone (any account).
func (r ReadTx) WebhookByID(webhookID string) (Webhook, error) {
	owner := r.WebhookOwner(webhookID)
	if owner == "" {
		return Webhook{}, ErrNotFound
	}
	return r.Webhook(owner, webhookID)
}

// Webhook loads an account's subscription; another account's is not found.
func (r ReadTx) Webhook(accountID, webhookID string) (Webhook, error) {
	var w Webhook
	err := r.get(BucketWebhooks, OwnedKey(accountID, webhookID), &w)
	return w, err
}

// Webhooks pages an account's subscriptions, newest first, with the total count.
func (r ReadTx) Webhooks(accountID string, offset, limit int) ([]Webhook, int, error) {
	return ListOwned[Webhook](r.tx, BucketWebhooks, accountID, offset, limit)
}

// WebhooksAt is Webhooks from at, with the next page's Below (ListOwnedAt).
func (r ReadTx) WebhooksAt(accountID string, at PageAt, limit int) ([]Webhook, int, string, error) {
	return ListOwnedAt[Webhook](r.tx, BucketWebhooks, accountID, at, limit)
}

// ForEachWebhook visits every subscription of every account; an undecodable
// record is visited with its key and the error.
func (r ReadTx) ForEachWebhook(visit func(key string, w Webhook, err error)) {
	_ = r.tx.Bucket(BucketWebhooks).ForEach(func(k, v []byte) error {
		var w Webhook
		err := json.Unmarshal(v, &w)
		visit(string(k), w, err)
		return nil
	})
}

// DeliveryLog pages the attempt log of an account's subscription, newest first,
// with the total count; each attempt carries its delivery's current status. A
// subscription of another account is ErrNotFound.
func (r ReadTx) DeliveryLog(accountID, webhookID string, offset, limit int) ([]api.WebhookAttempt, int, error) {
	if !r.has(BucketWebhooks, OwnedKey(accountID, webhookID)) {
		return nil, 0, ErrNotFound
	}
	items, total, err := ListOwned[api.WebhookAttempt](r.tx, BucketWebhookAttempts, webhookID, offset, limit)
	if err != nil {
		return nil, 0, err
	}
	for i := range items {
		if d, err := r.Delivery(webhookID, items[i].DeliveryID); err == nil {
			items[i].DeliveryStatus = d.Status
		}
	}
	return items, total, nil
}

// Delivery loads a delivery of a subscription.
func (r ReadTx) Delivery(webhookID, deliveryID string) (Delivery, error) {
	var d Delivery
	err := r.get(BucketWebhookDeliveries, WebhookKey(webhookID, deliveryID), &d)
	return d, err
}

// DeliveryExists reports whether a delivery of a subscription was recorded.
func (r ReadTx) DeliveryExists(webhookID, deliveryID string) bool {
	return r.has(BucketWebhookDeliveries, WebhookKey(webhookID, deliveryID))
}

// ForEachPendingDelivery visits the deliveries awaiting an attempt
// (undecodable or no longer pending records are skipped).
func (r ReadTx) ForEachPendingDelivery(visit func(d Delivery) error) error {
	deliveries := r.tx.Bucket(BucketWebhookDeliveries)
	return r.tx.Bucket(BucketWebhookPending).ForEach(func(k, _ []byte) error {
		var d Delivery
		raw := deliveries.Get(k)
		if raw == nil || json.Unmarshal(raw, &d) != nil || d.Status != api.DeliveryPending {
			return nil
		}
		return visit(d)
	})
}

// DeliveryHead is what a list of pending deliveries reads of each: the
// delivery without its event's copy, which decoding it would allocate.
type DeliveryHead struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	Chain     int    `json:"chain"`
}

// ForEachPendingDeliveryHeadOf is ForEachPendingDelivery for one
// subscription, in key order, reading each delivery's head only; visiting
// stops at the first error, which it returns.
func (r ReadTx) ForEachPendingDeliveryHeadOf(webhookID string, visit func(d DeliveryHead) error) error {
	deliveries := r.tx.Bucket(BucketWebhookDeliveries)
	prefix := WebhookKey(webhookID, "")
	c := r.tx.Bucket(BucketWebhookPending).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		var d DeliveryHead
		raw := deliveries.Get(k)
		if raw == nil || json.Unmarshal(raw, &d) != nil || d.Status != api.DeliveryPending {
			continue
		}
		if err := visit(d); err != nil {
			return err
		}
	}
	return nil
}

// WebhookMeta reads an 8-byte value of BucketWebhookMeta (0 if absent).
func (r ReadTx) WebhookMeta(key []byte) uint64 {
	v := r.tx.Bucket(BucketWebhookMeta).Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// WebhookCursor is the dispatcher's outbox cursor (nil before the first event).
func (r ReadTx) WebhookCursor() []byte { return r.value(BucketWebhookMeta, WebhookCursorKey) }

// DeliveryLogSize is the number of attempts in the log of an account's
// subscription and the seq of the newest (0 when none was ever logged:
// seqs start at 1); a subscription of another account is ErrNotFound. It
// reads keys only.
func (r ReadTx) DeliveryLogSize(accountID, webhookID string) (count int, newest uint64, err error) {
	if !r.has(BucketWebhooks, OwnedKey(accountID, webhookID)) {
		return 0, 0, ErrNotFound
	}
	prefix := WebhookKey(webhookID, "")
	c := r.tx.Bucket(BucketWebhookAttempts).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		count++
		if len(k) == len(prefix)+8 {
			newest = binary.BigEndian.Uint64(k[len(prefix):])
		}
	}
	return count, newest, nil
}

// DeliveryLogBelow visits a subscription's logged attempts newest first,
// starting at the newest whose seq is below below (0: at the newest), the
// first skip of them passed over undecoded, until visit returns false. The
// attempts carry no DeliveryStatus (DeliveryStatus reads it).
func (r ReadTx) DeliveryLogBelow(webhookID string, below uint64, skip int, visit func(seq uint64, a api.WebhookAttempt) (more bool, err error)) error {
	prefix := WebhookKey(webhookID, "")
	c := r.tx.Bucket(BucketWebhookAttempts).Cursor()
	var k, v []byte
	start := append(append([]byte{}, prefix...), 0xff)
	if below != 0 {
		start = WebhookAttemptKey(webhookID, below)
	}
	if k, _ = c.Seek(start); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && hasPrefix(k, prefix); k, v = c.Prev() {
		if len(k) != len(prefix)+8 {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		var a api.WebhookAttempt
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode %s/%x: %w", BucketWebhookAttempts, k, err)
		}
		more, err := visit(binary.BigEndian.Uint64(k[len(prefix):]), a)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// DeliveryStatus is the current status of a subscription's delivery, ""
// when it is not recorded (pruned, or not made yet).
func (r ReadTx) DeliveryStatus(webhookID, deliveryID string) string {
	var d struct {
		Status string `json:"status"`
	}
	if r.get(BucketWebhookDeliveries, WebhookKey(webhookID, deliveryID), &d) != nil {
		return ""
	}
	return d.Status
}
