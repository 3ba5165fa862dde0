package webhook

import (
	"encoding/binary"

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

// Queued lists w's deliveries the dispatcher has yet to record (their first
// attempt, or their hold while w is paused, has not applied): the events of
// up to maxScan outbox entries past the dispatcher's cursor that match w
// (Matches) and have no delivery record, newest first. Each is a row of the
// delivery log with the delivery id the dispatcher will use, attempt 0, no
// attempt time and outcome and delivery status "queued". more reports
// outbox entries past the maxScan read (their deliveries are not listed).
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
			rows = append(rows, api.WebhookAttempt{
				DeliveryID: id, EventID: ev.ID, EventType: dialect.Event(ev.Type), Chain: 1,
				Outcome: api.AttemptQueued, DeliveryStatus: api.DeliveryQueued,
			})
		})
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows, more
}
