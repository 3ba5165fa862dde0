package webhook

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// MaxQueuedScan is how many outbox entries past the dispatcher's cursor a
// delivery list reads for the queued rows (Queued): beyond them, an event's
// delivery is listed once the dispatcher's cursor has moved closer to it.
const MaxQueuedScan = 1000

// Matches reports whether the dispatcher makes a delivery of ev (an outbox
// entry, Seq set) to w: an event of w's account, committed while w takes
// events (Webhook.Takes), of a type w subscribes to in the dialect's names
// (nil: sunucu's). The dispatcher's fan-out and the delivery list's queued
// rows both ask it, so the list shows what the dispatcher will send.
func Matches(dialect *brand.Brand, w *store.Webhook, ev *store.Event) bool {
	if ev.AccountID != w.AccountID || len(ev.Seq) < 8 {
		return false
	}
	return w.Takes(binary.BigEndian.Uint64(ev.Seq[:8])) && w.Wants(dialect.Event(ev.Type))
}

// Queued lists w's deliveries not attempted yet, as rows of the delivery
// log with attempt 0, no attempt time and outcome and delivery status
// "queued", newest delivery first (by delivery id, which begins with the
// event's time, so a delivery keeps its place when the dispatcher records
// it held): those the dispatcher has yet to record, the events of up to
// maxScan outbox entries past its cursor that match w (Matches) and have
// no delivery record, with the delivery id the dispatcher will use; and
// those held by a pause before their first attempt (recorded pending,
// nothing logged) among the first maxScan pending deliveries of w in key
// order. more reports outbox entries past the maxScan read (their
// deliveries are not listed).
func Queued(tx store.ReadTx, dialect *brand.Brand, w *store.Webhook, maxScan int) (rows []api.WebhookAttempt, more bool) {
	more = tx.ScanOutboxFor(tx.WebhookCursor(), maxScan, func(accountID string) bool { return accountID == w.AccountID },
		func(ev store.Event, err error) {
			if err != nil || !Matches(dialect, w, &ev) {
				return
			}
			id := DeliveryID(ev.ID, w.ID, ev.CreatedAt)
			if tx.DeliveryExists(w.ID, id) {
				return
			}
			rows = append(rows, queuedRow(id, ev.ID, dialect.Event(ev.Type)))
		})
	var held []api.WebhookAttempt
	visited := 0
	_ = tx.ForEachPendingDeliveryHeadOf(w.ID, func(d store.DeliveryHead) error {
		// Bounded by the pending deliveries read, not by the held rows
		// found: every retrying delivery is pending too, and a receiver down
		// through its retry window would otherwise make each list call and
		// each redeliver 404 decode all of them.
		if visited++; visited > maxScan {
			return errStopScan
		}
		if d.Chain == 1 && d.Attempts == 0 {
			held = append(held, queuedRow(d.ID, d.EventID, d.EventType))
		}
		return nil
	})
	rows = append(rows, held...)
	slices.SortFunc(rows, func(a, b api.WebhookAttempt) int { return strings.Compare(b.DeliveryID, a.DeliveryID) })
	return rows, more
}

var errStopScan = errors.New("enough")

// queuedRow is the delivery log's row of a delivery not attempted yet.
func queuedRow(deliveryID, eventID, eventType string) api.WebhookAttempt {
	return api.WebhookAttempt{
		DeliveryID: deliveryID, EventID: eventID, EventType: eventType, Chain: 1,
		Outcome: api.AttemptQueued, DeliveryStatus: api.DeliveryQueued,
	}
}
