package fsm

import (
	"encoding/json"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/hlc"
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
//
// One exception, as the coordinators' clock (hlc.MaxAhead) makes: a last
// event's time more than hlc.MaxAhead past the command's is a wrong clock's
// (an entry stamped while a coordinator's clock was a year ahead), not
// another coordinator's skew; held to it, every later event would carry that
// future time. The command's own time is then taken, and recorded as the
// last event's: the ids after such a time sort before it, once.
const LevelEventOrder = 12

// eventTime is the time of the events this command emits: its own time
// below LevelEventOrder; from it, its own time or the last event's, when
// later by at most hlc.MaxAhead (the same for every event of the command:
// their ids then differ in their sequence alone).
func (c *applyCtx) eventTime() time.Time {
	if c.level() < LevelEventOrder {
		return c.at
	}
	if !c.evAtSet {
		c.evAt, c.evAtSet = c.at, true
		if last := store.EventAt(c.tx); last != 0 {
			if lt := time.Unix(0, last).UTC(); c.evAt.Before(lt) && lt.Sub(c.evAt) <= hlc.MaxAhead {
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
// time they carried as the last event's (store.EventAt) when it differs
// from the one recorded: later, or earlier when the one recorded was a
// wrong clock's (eventTime did not hold to it). A time outside the years
// 1970 to 2261 (unix ns as int64) is not recorded.
func (c *applyCtx) recordEventAt() error {
	if !c.evAtSet || len(c.events) == 0 {
		return nil
	}
	if y := c.evAt.Year(); y < 1970 || y > 2261 {
		return nil
	}
	if ns := c.evAt.UnixNano(); ns != store.EventAt(c.tx) {
		return store.SetEventAt(c.tx, ns)
	}
	return nil
}

// latestOutboxAt is the latest created_at of the events in the outbox no
// more than hlc.MaxAhead past at (the zero time when there is none; an
// entry that does not decode is passed over). Every entry is read: below
// LevelEventOrder the last entry by key (the last committed) need not carry
// the latest time, as two racing requests commit the later-stamped one
// first. Read once, at the raise to LevelEventOrder; an event pruned from
// the outbox was delivered already.
func latestOutboxAt(c *applyCtx, at time.Time) time.Time {
	var latest time.Time
	var ev struct {
		CreatedAt time.Time `json:"created_at"`
	}
	_ = c.tx.Bucket(store.BucketOutbox).ForEach(func(_, v []byte) error {
		ev.CreatedAt = time.Time{}
		if json.Unmarshal(v, &ev) == nil && ev.CreatedAt.After(latest) && ev.CreatedAt.Sub(at) <= hlc.MaxAhead {
			latest = ev.CreatedAt
		}
		return nil
	})
	return latest
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
