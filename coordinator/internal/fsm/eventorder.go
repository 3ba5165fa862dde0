package fsm

import (
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// LevelEventOrder is the semantics level (level.go) from which webhook event
// ids sort in the order their events were committed. An event id is
// ids.Derived of a time (48 bits of milliseconds first), an index and a
// sequence. Below this level the time is the command's (Envelope.At, which
// the handler stamps when the request starts) and the index its Raft index:
// two requests that race commit in one order and may take ids in the other,
// while the dispatcher sends, and lists, events in commit order (the
// outbox's). From this level the time is the command's, or the last event's
// when later (store.EventAt, written in the same transaction as the events,
// so every replica clamps alike and a snapshot carries it), and the index is
// the event index (the outbox key's: the Raft index plus
// store.EventIndexOffset, past every event of a restored backup): an id then
// sorts after every id made before it, as its outbox key does. The event's
// created_at is that same time, so a delivery id, which sorts by its event's
// created_at (webhook.DeliveryID), sorts by commit order to the
// millisecond too.
const LevelEventOrder = 12

// eventTime is the time of the events this command emits: its own time
// below LevelEventOrder; from it, its own time or the last event's, when
// later (the same for every event of the command: their ids then differ in
// their sequence alone).
func (c *applyCtx) eventTime() time.Time {
	if c.level() < LevelEventOrder {
		return c.at
	}
	if !c.evAtSet {
		c.evAt, c.evAtSet = c.at, true
		if last := store.EventAt(c.tx); last != 0 {
			if lt := time.Unix(0, last).UTC(); c.evAt.Before(lt) {
				c.evAt = lt
			}
		}
	}
	return c.evAt
}

// eventIndex is the index an event id of this command carries: its Raft
// index below LevelEventOrder, its event index from it.
func (c *applyCtx) eventIndex() uint64 {
	if c.level() < LevelEventOrder {
		return c.index
	}
	return c.evIndex
}

// recordEventAt writes, once the command's events are in the outbox, the
// time they carried as the last event's (store.EventAt) when it is later
// than the one recorded. A time outside the years 1970 to 2261 (unix ns as
// int64) is not recorded.
func (c *applyCtx) recordEventAt() error {
	if !c.evAtSet || len(c.events) == 0 {
		return nil
	}
	return raiseEventAt(c, c.evAt)
}

// raiseEventAt records t as store.EventAt when it is later than the one
// recorded and within the years 1970 to 2261.
func raiseEventAt(c *applyCtx, t time.Time) error {
	if y := t.Year(); y < 1970 || y > 2261 {
		return nil
	}
	if ns := t.UnixNano(); ns > store.EventAt(c.tx) {
		return store.SetEventAt(c.tx, ns)
	}
	return nil
}
