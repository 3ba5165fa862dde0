package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// LevelWebhookHold is the semantics level from which a pause, or the
// disable after a 410, holds the subscription's pending deliveries (pending,
// not attempted) for the resume instead of failing them.
const LevelWebhookHold uint16 = 2

// LevelWebhookAttemptOnce is the semantics level from which an attempt is
// logged once. The dispatcher proposes a batch of attempts again when its
// apply answered an error although the entry committed (a timeout, a
// leadership change after the entry was replicated), so the same
// WebhookAttempts may apply twice: from this level an attempt whose id the
// subscription's log holds already (BucketWebhookAttemptIDs) is skipped, with
// no second row, count or change to its delivery or subscription. Below it
// every record is logged, as the releases before do: a replayed log must
// come out the same on every replica.
const LevelWebhookAttemptOnce = 9

// LevelRestoreEpoch is the semantics level from which a `cluster restore`
// names the state it installs (store.RestoreEpoch: the leader marks the
// backup, fsm.MarkRestore, only at this level, when every coordinator
// applies it) and a WebhookAttempts carries the epoch of the state its
// cursor was read from. One read from the state a restore replaced (the
// dispatcher's last flush, taken by the leader's group commit before the
// restore's barrier and applied after the restore) would move the restored
// cursor past the backup's undelivered events and prune them: its apply
// keeps the cursor and prunes nothing (its attempt records, each of one
// delivery, still apply). The check holds from this level or once the
// state holds an epoch (a restore at this level of a backup of a lower one
// installs that lower level until the leader raises it again, and the
// records of the replaced state apply in between).
const LevelRestoreEpoch = 11

// RestoreRulesHold reports whether LevelRestoreEpoch's rules hold for a
// state at level that holds the restore epoch epoch: from that level, or
// once the state holds an epoch (a restore at that level of a backup of a
// lower one installs the lower level until the leader raises it again, and
// records read from the replaced state apply in between).
func RestoreRulesHold(level uint16, epoch uint64) bool {
	return level >= LevelRestoreEpoch || epoch != 0
}

// restoreEpoch is the state's restore epoch (store.RestoreEpoch) and
// whether LevelRestoreEpoch's rules hold for this command (RestoreRulesHold).
func (c *applyCtx) restoreEpoch() (epoch uint64, rules bool) {
	epoch = store.RestoreEpoch(c.tx)
	return epoch, RestoreRulesHold(c.level(), epoch)
}

// OutcomeHeld is the outcome of a record the dispatcher writes, in place of
// an attempt, for an event committed before its subscription's pause that it
// had not handed out yet: the delivery is created pending (held), nothing is
// logged. Only a dispatcher reading a subscription paused at level 2 writes it.
const OutcomeHeld = "held"

// WebhookCreate subscribes a URL. The secret arrives sealed.
type WebhookCreate struct {
	ID            string   `json:"id"`
	AccountID     string   `json:"account_id"`
	URL           string   `json:"url"`
	Events        []string `json:"events"`
	Description   string   `json:"description"`
	SealedSecret  string   `json:"sealed_secret"`
	SecretHint    string   `json:"secret_hint"`
	MaxPerAccount int      `json:"max_per_account"` // 0: no cap
}

// WebhookUpdate changes a subscription; nil fields stay.
type WebhookUpdate struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	URL         *string   `json:"url,omitempty"`
	Events      *[]string `json:"events,omitempty"`
	Description *string   `json:"description,omitempty"`
	Active      *bool     `json:"active,omitempty"`
}

// WebhookDelete removes a subscription with its deliveries and log.
type WebhookDelete struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
}

// WebhookRotateSecret replaces the sealed secret; the old one stops at once.
type WebhookRotateSecret struct {
	ID           string `json:"id"`
	AccountID    string `json:"account_id"`
	SealedSecret string `json:"sealed_secret"`
	SecretHint   string `json:"secret_hint"`
}

// WebhookRedeliver starts a new attempt chain for a past delivery.
type WebhookRedeliver struct {
	WebhookID  string `json:"webhook_id"`
	AccountID  string `json:"account_id"`
	DeliveryID string `json:"delivery_id"`
}

// WebhookAttempts is a batch of delivery attempts recorded by the leader's
// dispatcher, with the outbox cursor it reached and retention settings.
type WebhookAttempts struct {
	Attempts []WebhookAttemptRecord `json:"attempts"`
	// Cursor, if set, is the outbox key up to which every event has a delivery
	// record for each matching subscription (or needed none).
	Cursor []byte `json:"cursor,omitempty"`
	// Keep is how many log entries (and terminal deliveries) each subscription keeps.
	Keep int `json:"keep"`
	// Outbox entries at or below Cursor created before PruneOutboxBefore are
	// removed, at most PruneOutboxLimit per command.
	PruneOutboxBefore time.Time `json:"prune_outbox_before"`
	PruneOutboxLimit  int       `json:"prune_outbox_limit"`
	// StateEpoch is the store.RestoreEpoch of the state Cursor was read
	// from (0 when never restored: the field is then left out). From
	// LevelRestoreEpoch, a command whose epoch is not the state's was read
	// from a state a restore has replaced: Cursor and the prune are ignored.
	StateEpoch uint64 `json:"state_epoch,omitempty"`
}

// WebhookAttemptRecord is one HTTP attempt.
type WebhookAttemptRecord struct {
	ID            string       `json:"id"`
	WebhookID     string       `json:"webhook_id"`
	DeliveryID    string       `json:"delivery_id"`
	Chain         int          `json:"chain"`
	Number        int          `json:"n"`
	At            time.Time    `json:"at"`
	StatusCode    int          `json:"code"`
	DurationMs    int64        `json:"ms"`
	Error         string       `json:"err,omitempty"`
	Response      string       `json:"resp,omitempty"`
	Outcome       string       `json:"outcome"`
	NextAttemptAt *time.Time   `json:"next,omitempty"`
	Event         *store.Event `json:"event,omitempty"`  // set on the first attempt of chain 1
	Reason        string       `json:"reason,omitempty"` // why the subscription was disabled
}

func webhookNotFound(id string) error { return fmt.Errorf("webhook %s: %w", id, ErrNotFound) }

// loadOwnedWebhook loads a subscription of accountID.
func loadOwnedWebhook(tx *bolt.Tx, id, accountID string) (store.Webhook, error) {
	var w store.Webhook
	if err := store.GetJSON(tx, store.BucketWebhooks, store.OwnedKey(accountID, id), &w); err != nil {
		if err == store.ErrNotFound {
			return w, webhookNotFound(id)
		}
		return w, err
	}
	return w, nil
}

func (c *applyCtx) bumpWebhookVersion(key []byte) error {
	return store.PutWebhookMetaU64(c.tx, key, c.index)
}

func applyWebhookCreate(c *applyCtx, p WebhookCreate) (any, error) {
	if p.ID == "" || p.URL == "" || len(p.Events) == 0 || p.SealedSecret == "" {
		return nil, fmt.Errorf("%w: webhook create needs id, url, events and a sealed secret", ErrInvalid)
	}
	if _, err := getAccount(c.tx, p.AccountID); err != nil {
		return nil, err
	}
	if c.tx.Bucket(store.BucketWebhookIDs).Get([]byte(p.ID)) != nil {
		return nil, fmt.Errorf("%w: webhook %s exists", ErrConflict, p.ID)
	}
	if p.MaxPerAccount > 0 {
		n := 0
		prefix := store.OwnedPrefix(p.AccountID)
		cur := c.tx.Bucket(store.BucketWebhooks).Cursor()
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			n++
		}
		if n >= p.MaxPerAccount {
			return nil, fmt.Errorf("%w: this account already has %d webhook subscriptions, the maximum", ErrConflict, n)
		}
	}
	w := store.Webhook{
		ID: p.ID, AccountID: p.AccountID, URL: p.URL, Events: p.Events, Description: p.Description, Active: true,
		SealedSecret: p.SealedSecret, SecretHint: p.SecretHint, ActiveSince: c.evIndex, CreatedAt: c.at, UpdatedAt: c.at,
	}
	if err := store.PutJSON(c.tx, store.BucketWebhooks, store.OwnedKey(w.AccountID, w.ID), w); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketWebhookIDs).Put([]byte(w.ID), []byte(w.AccountID)); err != nil {
		return nil, err
	}
	return w.Public(), c.bumpWebhookVersion(store.WebhookSubsVersionKey)
}

// putWebhook stores a subscription, bumps the subscriptions version (the
// dispatcher reloads) and answers with its public view.
func putWebhook(c *applyCtx, w store.Webhook) (any, error) {
	if err := store.PutJSON(c.tx, store.BucketWebhooks, store.OwnedKey(w.AccountID, w.ID), w); err != nil {
		return nil, err
	}
	return w.Public(), c.bumpWebhookVersion(store.WebhookSubsVersionKey)
}

func applyWebhookUpdate(c *applyCtx, p WebhookUpdate) (any, error) {
	w, err := loadOwnedWebhook(c.tx, p.ID, p.AccountID)
	if err != nil {
		return nil, err
	}
	if (p.URL != nil && *p.URL == "") || (p.Events != nil && len(*p.Events) == 0) {
		return nil, fmt.Errorf("%w: url and events cannot be empty", ErrInvalid)
	}
	setIfGiven(&w.URL, p.URL)
	setIfGiven(&w.Events, p.Events)
	setIfGiven(&w.Description, p.Description)
	if p.Active != nil && *p.Active != w.Active {
		w.Active = *p.Active
		hold := c.level() >= LevelWebhookHold
		if w.Active {
			w.DisabledReason = ""
			if hold && w.PausedSince != 0 {
				if err := setPendingNext(c, w.ID, &c.at); err != nil {
					return nil, err
				}
				var read uint64
				if cur := c.r.WebhookCursor(); len(cur) == 10 {
					read = binary.BigEndian.Uint64(cur[:8])
				}
				if read < w.PausedSince {
					// The dispatcher has not read every event committed
					// before the pause: they are still delivered, this
					// pause's are not, nor an earlier pause's it has not
					// read past either.
					w.Gaps = store.AddWebhookGap(w.Gaps, store.IndexRange{From: w.PausedSince, To: c.evIndex}, read)
				} else {
					w.ActiveSince, w.Gaps = c.evIndex, nil
				}
			} else {
				w.ActiveSince = c.evIndex
			}
			w.PausedSince = 0
		} else {
			w.DisabledReason = "paused"
			if err := pauseDeliveries(c, &w, hold); err != nil {
				return nil, err
			}
		}
	}
	w.UpdatedAt = c.at
	return putWebhook(c, w)
}

// pauseDeliveries deals with a subscription's pending deliveries as it
// becomes inactive: from level 2 (hold) they stay pending with no attempt
// scheduled, held for the resume, and the subscription records the index of
// the pause; below it they are failed, as the releases before did.
func pauseDeliveries(c *applyCtx, w *store.Webhook, hold bool) error {
	if !hold {
		return failPendingDeliveries(c, w.ID)
	}
	w.PausedSince = c.evIndex
	return setPendingNext(c, w.ID, nil)
}

// setPendingNext sets the next attempt time of every pending delivery of a
// subscription: nil while it is paused, the resume's time when it resumes.
func setPendingNext(c *applyCtx, webhookID string, next *time.Time) error {
	for _, k := range pendingKeys(c, webhookID) {
		var d store.Delivery
		if err := store.GetJSON(c.tx, store.BucketWebhookDeliveries, k, &d); err != nil || d.Status != api.DeliveryPending {
			continue
		}
		d.NextAttemptAt, d.UpdatedAt = nil, c.at
		if next != nil {
			at := *next
			d.NextAttemptAt = &at
		}
		if err := store.PutJSON(c.tx, store.BucketWebhookDeliveries, k, d); err != nil {
			return err
		}
	}
	return nil
}

// pendingKeys lists the keys of a subscription's pending deliveries (copied:
// the caller rewrites their records).
func pendingKeys(c *applyCtx, webhookID string) [][]byte {
	prefix := []byte(webhookID + "/")
	var keys [][]byte
	cur := c.tx.Bucket(store.BucketWebhookPending).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, append([]byte{}, k...))
	}
	return keys
}

// failPendingDeliveries marks every pending delivery of a subscription failed.
func failPendingDeliveries(c *applyCtx, webhookID string) error {
	for _, k := range pendingKeys(c, webhookID) {
		var d store.Delivery
		if err := store.GetJSON(c.tx, store.BucketWebhookDeliveries, k, &d); err == nil && d.Status == api.DeliveryPending {
			d.Status, d.NextAttemptAt, d.UpdatedAt = api.DeliveryFailed, nil, c.at
			if err := store.PutJSON(c.tx, store.BucketWebhookDeliveries, k, d); err != nil {
				return err
			}
		}
		if err := c.tx.Bucket(store.BucketWebhookPending).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func deletePrefix(tx *bolt.Tx, bucket, prefix []byte) error {
	b := tx.Bucket(bucket)
	var keys [][]byte
	cur := b.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, append([]byte{}, k...))
	}
	return deleteKeys(b, keys)
}

func applyWebhookDelete(c *applyCtx, p WebhookDelete) (any, error) {
	w, err := loadOwnedWebhook(c.tx, p.ID, p.AccountID)
	if err != nil {
		return nil, err
	}
	prefix := []byte(w.ID + "/")
	for _, b := range [][]byte{store.BucketWebhookDeliveries, store.BucketWebhookPending, store.BucketWebhookAttempts, store.BucketWebhookAttemptIDs} {
		if err := deletePrefix(c.tx, b, prefix); err != nil {
			return nil, err
		}
	}
	meta := c.tx.Bucket(store.BucketWebhookMeta)
	for _, k := range counterKeys(w.ID) {
		if err := meta.Delete(k); err != nil {
			return nil, err
		}
	}
	if err := c.tx.Bucket(store.BucketWebhooks).Delete(store.OwnedKey(w.AccountID, w.ID)); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketWebhookIDs).Delete([]byte(w.ID)); err != nil {
		return nil, err
	}
	return nil, c.bumpWebhookVersion(store.WebhookSubsVersionKey)
}

func applyWebhookRotate(c *applyCtx, p WebhookRotateSecret) (any, error) {
	if p.SealedSecret == "" {
		return nil, fmt.Errorf("%w: rotate needs a sealed secret", ErrInvalid)
	}
	w, err := loadOwnedWebhook(c.tx, p.ID, p.AccountID)
	if err != nil {
		return nil, err
	}
	w.SealedSecret, w.SecretHint, w.UpdatedAt = p.SealedSecret, p.SecretHint, c.at
	return putWebhook(c, w)
}

func applyWebhookRedeliver(c *applyCtx, p WebhookRedeliver) (any, error) {
	w, err := loadOwnedWebhook(c.tx, p.WebhookID, p.AccountID)
	if err != nil {
		return nil, err
	}
	key := store.WebhookKey(w.ID, p.DeliveryID)
	var d store.Delivery
	if err := store.GetJSON(c.tx, store.BucketWebhookDeliveries, key, &d); err != nil {
		if err == store.ErrNotFound {
			return nil, fmt.Errorf("delivery %s: %w", p.DeliveryID, ErrNotFound)
		}
		return nil, err
	}
	if !w.Active {
		return nil, fmt.Errorf("%w: webhook %s is paused or disabled; resume it (isActive: true) before redelivering", ErrConflict, w.ID)
	}
	at := c.at
	d.Chain++
	d.Status, d.Attempts, d.NextAttemptAt, d.UpdatedAt, d.ChainStart = api.DeliveryPending, 0, &at, c.at, time.Time{}
	if c.level() >= LevelWebhookHold {
		// The new chain's window starts now (level 2): held by a pause
		// before its first attempt, it still expires a window after this.
		d.ChainStart = c.at
	}
	if err := store.PutJSON(c.tx, store.BucketWebhookDeliveries, key, d); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketWebhookPending).Put(key, []byte{}); err != nil {
		return nil, err
	}
	return d.WebhookDelivery, c.bumpWebhookVersion(store.WebhookRedeliverVersionKey)
}

func counterKeys(webhookID string) [][]byte {
	return [][]byte{[]byte("seq_att/" + webhookID), []byte("n_att/" + webhookID), []byte("n_dlv/" + webhookID)}
}

// attemptSub is one subscription's state while a batch of attempts applies:
// the record is decoded only when an outcome needs it, and the counters are
// read once and written once per batch.
type attemptSub struct {
	id, account     string
	w               *store.Webhook
	dirty           bool
	seq, nAtt, nDlv uint64
	// once: level LevelWebhookAttemptOnce, the log's attempts are indexed
	// by id; nAtt0 is the log's count before this command.
	once  bool
	nAtt0 uint64
}

func (s *attemptSub) load(tx *bolt.Tx) (*store.Webhook, error) {
	if s.w == nil {
		var w store.Webhook
		if err := store.GetJSON(tx, store.BucketWebhooks, store.OwnedKey(s.account, s.id), &w); err != nil {
			return nil, err
		}
		s.w = &w
	}
	return s.w, nil
}

func metaGet(tx *bolt.Tx, key string) uint64 {
	v := tx.Bucket(store.BucketWebhookMeta).Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func metaPut(tx *bolt.Tx, key string, v uint64) error {
	return tx.Bucket(store.BucketWebhookMeta).Put([]byte(key), binary.BigEndian.AppendUint64(nil, v))
}

func applyWebhookAttempts(c *applyCtx, p WebhookAttempts) (any, error) {
	if p.Keep <= 0 {
		p.Keep = 1000
	}
	subs := map[string]*attemptSub{}
	var order []*attemptSub
	recorded := 0
	once := c.level() >= LevelWebhookAttemptOnce
	for i := range p.Attempts {
		r := &p.Attempts[i]
		s, ok := subs[r.WebhookID]
		if !ok {
			if owner := c.r.WebhookOwner(r.WebhookID); owner != "" {
				s = &attemptSub{id: r.WebhookID, account: owner, once: once}
				s.seq, s.nAtt, s.nDlv = metaGet(c.tx, "seq_att/"+s.id), metaGet(c.tx, "n_att/"+s.id), metaGet(c.tx, "n_dlv/"+s.id)
				s.nAtt0 = s.nAtt
				order = append(order, s)
			}
			subs[r.WebhookID] = s // nil: deleted since, its log went with it
		}
		if s == nil {
			continue
		}
		if s.once && r.Outcome != OutcomeHeld && r.ID != "" &&
			c.tx.Bucket(store.BucketWebhookAttemptIDs).Get(store.WebhookKey(s.id, r.ID)) != nil {
			continue // recorded already: this command (or its batch) applies again
		}
		ok, err := recordAttempt(c, s, r)
		if err != nil {
			return nil, err
		}
		if ok {
			recorded++
		}
		if r.Outcome == api.AttemptDisabled {
			w, err := s.load(c.tx)
			if err != nil {
				return nil, err
			}
			if w.Active {
				w.Active, w.UpdatedAt, w.DisabledReason = false, c.at, r.Reason
				if w.DisabledReason == "" {
					w.DisabledReason = "disabled after the receiver answered 410 Gone"
				}
				s.dirty = true
				if err := pauseDeliveries(c, w, c.level() >= LevelWebhookHold); err != nil {
					return nil, err
				}
			}
		}
	}
	anyDirty := false
	for _, s := range order {
		if s.dirty {
			anyDirty = true
			if err := store.PutJSON(c.tx, store.BucketWebhooks, store.OwnedKey(s.account, s.id), s.w); err != nil {
				return nil, err
			}
		}
		if err := trimSub(c.tx, s, p.Keep); err != nil {
			return nil, err
		}
	}
	if anyDirty {
		if err := c.bumpWebhookVersion(store.WebhookSubsVersionKey); err != nil {
			return nil, err
		}
	}
	if epoch, rules := c.restoreEpoch(); rules && p.StateEpoch != epoch {
		// Read from a state a `cluster restore` replaced since: its
		// cursor and prune belong to that state.
		if c.log != nil && (len(p.Cursor) == 10 || p.PruneOutboxLimit > 0) {
			c.log.Debug("webhook attempts read from a state a restore replaced: cursor and outbox prune ignored",
				"index", c.index, "command_epoch", p.StateEpoch, "restore_epoch", epoch, "cursor", fmt.Sprintf("%x", p.Cursor))
		}
		return recorded, nil
	}
	cursor := c.r.WebhookCursor()
	if len(p.Cursor) == 10 && bytes.Compare(p.Cursor, cursor) > 0 {
		cursor = p.Cursor
		if err := c.tx.Bucket(store.BucketWebhookMeta).Put(store.WebhookCursorKey, p.Cursor); err != nil {
			return nil, err
		}
	}
	if cursor != nil && p.PruneOutboxLimit > 0 && !p.PruneOutboxBefore.IsZero() {
		if err := pruneOutbox(c.tx, cursor, p.PruneOutboxBefore, p.PruneOutboxLimit); err != nil {
			return nil, err
		}
	}
	return recorded, nil
}

// trimSub prunes a subscription's log and terminal deliveries to keep entries
// and stores its counters.
func trimSub(tx *bolt.Tx, s *attemptSub, keep int) error {
	if s.nAtt > uint64(keep) {
		var removed int
		if err := trimAttempts(tx, s, int(s.nAtt)-keep, &removed); err != nil {
			return err
		}
		s.nAtt -= uint64(removed)
	}
	if s.nDlv > uint64(keep) {
		pend := tx.Bucket(store.BucketWebhookPending)
		skip := func(k []byte) bool { return pend.Get(k) != nil } // never drop a pending delivery
		var removed int
		if err := trimFrontCount(tx, store.BucketWebhookDeliveries, s.id, int(s.nDlv)-keep, skip, nil, &removed); err != nil {
			return err
		}
		s.nDlv -= uint64(removed)
	}
	for _, kv := range []struct {
		k string
		v uint64
	}{{"seq_att/", s.seq}, {"n_att/", s.nAtt}, {"n_dlv/", s.nDlv}} {
		if err := metaPut(tx, kv.k+s.id, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// recordAttempt applies one attempt to its delivery and appends it to the log.
func recordAttempt(c *applyCtx, s *attemptSub, r *WebhookAttemptRecord) (bool, error) {
	key := store.WebhookKey(s.id, r.DeliveryID)
	var d store.Delivery
	err := store.GetJSON(c.tx, store.BucketWebhookDeliveries, key, &d)
	if r.Outcome == OutcomeHeld {
		return false, recordHeld(c, s, r, key, err)
	}
	hold := c.level() >= LevelWebhookHold
	switch {
	case err == store.ErrNotFound:
		if r.Event == nil {
			return false, nil // pruned or unknown delivery: nothing to attach the attempt to
		}
		d = store.Delivery{WebhookDelivery: api.WebhookDelivery{
			ID: r.DeliveryID, WebhookID: s.id, EventID: r.Event.ID, EventType: r.Event.Type,
			Status: api.DeliveryPending, Chain: r.Chain, CreatedAt: c.at,
		}, Event: *r.Event, ChainStart: r.At}
		s.nDlv++
	case err != nil:
		return false, err
	}
	applies := r.Chain == d.Chain && d.Status == api.DeliveryPending && r.Number > d.Attempts
	if !applies && hold && r.Outcome == api.AttemptExpired {
		// Level 2: a delivery expires once. Expiry follows from the
		// delivery's ChainStart, so another leader's dispatcher (or this
		// one's after a leader change) may send the same verdict again:
		// no request was made, nothing to log.
		return false, nil
	}
	if applies {
		d.Attempts, d.UpdatedAt = r.Number, c.at
		if r.Number == 1 && (!hold || d.ChainStart.IsZero()) {
			// The chain's window starts at its first attempt, unless (level
			// 2) it started already: a delivery held before its first
			// attempt counts from its event's time, a redeliver from its
			// own (recordHeld, applyWebhookRedeliver).
			d.ChainStart = r.At
		}
		switch r.Outcome {
		case api.AttemptSucceeded:
			d.Status, d.NextAttemptAt = api.DeliverySucceeded, nil
		case api.AttemptRetrying:
			w, err := s.load(c.tx)
			if err != nil {
				return false, err
			}
			switch {
			case w.Active && r.NextAttemptAt != nil:
				next := *r.NextAttemptAt
				d.NextAttemptAt = &next
			case hold && w.Holding() && r.NextAttemptAt != nil:
				d.NextAttemptAt = nil // paused since: held for the resume
			default:
				d.Status, d.NextAttemptAt = api.DeliveryFailed, nil
			}
		case api.AttemptDisabled:
			if hold {
				// The 410 disables the subscription (applyWebhookAttempts);
				// the delivery is held with the others for the resume.
				d.NextAttemptAt = nil
			} else {
				d.Status, d.NextAttemptAt = api.DeliveryFailed, nil
			}
		default: // failed, expired
			d.Status, d.NextAttemptAt = api.DeliveryFailed, nil
		}
		pend := c.tx.Bucket(store.BucketWebhookPending)
		if d.Status == api.DeliveryPending {
			if err := pend.Put(key, []byte{}); err != nil {
				return false, err
			}
		} else if pend.Get(key) != nil {
			if err := pend.Delete(key); err != nil {
				return false, err
			}
		}
	}
	if err := store.PutJSON(c.tx, store.BucketWebhookDeliveries, key, d); err != nil {
		return false, err
	}
	s.seq++
	entry := api.WebhookAttempt{
		ID: r.ID, DeliveryID: r.DeliveryID, EventID: d.EventID, EventType: d.EventType, Attempt: r.Number, Chain: r.Chain,
		AttemptedAt: r.At, StatusCode: r.StatusCode, DurationMs: r.DurationMs, Error: r.Error, ResponseBody: r.Response,
		Outcome: r.Outcome, NextAttemptAt: r.NextAttemptAt,
	}
	if err := store.PutJSON(c.tx, store.BucketWebhookAttempts, store.WebhookAttemptKey(s.id, s.seq), entry); err != nil {
		return false, err
	}
	if s.once && r.ID != "" {
		if err := c.tx.Bucket(store.BucketWebhookAttemptIDs).Put(store.WebhookKey(s.id, r.ID), binary.BigEndian.AppendUint64(nil, s.seq)); err != nil {
			return false, err
		}
	}
	s.nAtt++
	return true, nil
}

// recordHeld creates, pending and held, the delivery of an event its
// subscription was paused before the dispatcher handed it out (err is the
// delivery's lookup). An existing delivery is left as it is; nothing is logged.
func recordHeld(c *applyCtx, s *attemptSub, r *WebhookAttemptRecord, key []byte, err error) error {
	if err != store.ErrNotFound {
		return err
	}
	if r.Event == nil || c.level() < LevelWebhookHold {
		return nil
	}
	w, err := s.load(c.tx)
	if err != nil {
		return err
	}
	// Its retry window runs from the event's time, not from an attempt
	// made after the resume: a delivery held longer than the window expires
	// whichever leader reads it (the dispatcher's attempt).
	d := store.Delivery{WebhookDelivery: api.WebhookDelivery{
		ID: r.DeliveryID, WebhookID: s.id, EventID: r.Event.ID, EventType: r.Event.Type,
		Status: api.DeliveryPending, Chain: r.Chain, CreatedAt: c.at, UpdatedAt: c.at,
	}, Event: *r.Event, ChainStart: r.Event.CreatedAt}
	if !w.Holding() {
		// Resumed since: the dispatcher sends it with the other held ones.
		at := c.at
		d.NextAttemptAt = &at
	}
	s.nDlv++
	if err := store.PutJSON(c.tx, store.BucketWebhookDeliveries, key, d); err != nil {
		return err
	}
	return c.tx.Bucket(store.BucketWebhookPending).Put(key, []byte{})
}

// trimAttempts prunes the n oldest entries of a subscription's log. From
// level LevelWebhookAttemptOnce their ids leave the index with them, and a
// command prunes only entries older than itself: the command proposed again
// finds every attempt it logged in the index (a batch of more than keep
// attempts of one subscription leaves the log longer than keep until the
// next command). An attempt recorded again after its entry was pruned is
// logged again.
func trimAttempts(tx *bolt.Tx, s *attemptSub, n int, removed *int) error {
	if !s.once {
		return trimFrontCount(tx, store.BucketWebhookAttempts, s.id, n, nil, nil, removed)
	}
	n = min(n, int(s.nAtt0))
	var ids [][]byte
	gone := func(v []byte) {
		var a struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(v, &a) == nil && a.ID != "" {
			ids = append(ids, store.WebhookKey(s.id, a.ID))
		}
	}
	if err := trimFrontCount(tx, store.BucketWebhookAttempts, s.id, n, nil, gone, removed); err != nil {
		return err
	}
	return deleteKeys(tx.Bucket(store.BucketWebhookAttemptIDs), ids)
}

// trimFrontCount deletes up to n of the oldest keys under webhookID/ (skipping
// those skip reports, showing each it deletes to gone when not nil),
// counting them in removed.
func trimFrontCount(tx *bolt.Tx, bucket []byte, webhookID string, n int, skip func([]byte) bool, gone func(v []byte), removed *int) error {
	prefix := []byte(webhookID + "/")
	b := tx.Bucket(bucket)
	var keys [][]byte
	cur := b.Cursor()
	scanned := 0
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < n && scanned < n+1000; k, v = cur.Next() {
		scanned++
		if skip != nil && skip(k) {
			continue
		}
		if gone != nil {
			gone(v)
		}
		keys = append(keys, append([]byte{}, k...))
	}
	if err := deleteKeys(b, keys); err != nil {
		return err
	}
	*removed = len(keys)
	return nil
}

// deleteKeys deletes keys (collected first: a bbolt cursor must not see its
// bucket change under it) from b.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneOutbox removes delivered-past outbox entries older than before.
func pruneOutbox(tx *bolt.Tx, cursor []byte, before time.Time, limit int) error {
	b := tx.Bucket(store.BucketOutbox)
	var keys [][]byte
	cur := b.Cursor()
	for k, v := cur.First(); k != nil && len(keys) < limit && bytes.Compare(k, cursor) <= 0; k, v = cur.Next() {
		var ev struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if json.Unmarshal(v, &ev) == nil && !ev.CreatedAt.Before(before) {
			break
		}
		keys = append(keys, append([]byte{}, k...))
	}
	return deleteKeys(b, keys)
}
