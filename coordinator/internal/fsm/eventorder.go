package fsm

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/hlc"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
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

// LevelIDOrder is the semantics level (level.go) from which every id the
// FSM itself makes sorts in commit order, as event ids do from
// LevelEventOrder: a server's or hosting account's cleanup action and a
// sweep's actions (act), a refund's or a renewal's wallet transaction
// (wtx), a renewal's invoice and payment (inv, pay) and a domain renewal's
// operation (ren). Such an id is ids.Derived of a time, an index and a
// sequence; below this level the time is the command's (Envelope.At,
// stamped when the request started) and the index its Raft index, so two
// racing requests could commit in one order and take ids in the other,
// while the lists that show them (the wallet's transactions, invoices,
// actions) go newest first by id and page by an id cursor. From this level
// the time is the events' (eventTime: the command's, or the last one
// recorded when later, by at most hlc.MaxAhead) and the index the event
// index: these ids sort in commit order among themselves and against the
// events.
//
// The clamp is the events' own, store.EventAt, one meta key for "the time
// of the last id the FSM made": a clamp is a max, and one max over events
// and records puts every FSM-made id, of any kind, in one commit order (a
// refund's transaction sorts with its command's events), where two keys
// would order each kind alone and cost a second write. A record whose id
// the FSM makes takes that same time as its created_at, as an event does
// from LevelEventOrder, so a list read by id shows created_at in commit
// order too. Ids a handler makes before proposing (ids.New: an order's
// invoice, a top-up's transaction, a customer's action) keep the time their
// request started, and are not ordered against these: the clamp does not
// learn the time of a command that makes neither an event nor such an id,
// and ids.Derived of the clamp's millisecond sorts before most ids.New of
// the same one (its index's leading zero bytes against random ones), so a
// list that holds both kinds promises no "nothing committed later sorts
// before the newest id seen" (review57).
const LevelIDOrder = 13

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

// idTime is the time of the ids the FSM makes for this command's records
// (and their created_at): its own time below LevelIDOrder, its events'
// time (eventTime) from it.
func (c *applyCtx) idTime() time.Time {
	if c.level() < LevelIDOrder {
		return c.at
	}
	return c.eventTime()
}

// derivedID is the id the FSM makes for one of this command's records:
// ids.Derived of the command's time and Raft index below LevelIDOrder; of
// idTime and the event index from it (after a restored backup of a longer
// log, past every index the backup's ids carry).
func (c *applyCtx) derivedID(prefix string, seq uint16) string {
	if c.level() < LevelIDOrder {
		return ids.Derived(prefix, c.at, c.index, seq)
	}
	id := ids.Derived(prefix, c.idTime(), c.evIndex, seq)
	c.derived = append(c.derived, id)
	return id
}

// createdAt is the created_at of a record of this command whose id is id:
// idTime when derivedID made it (from LevelIDOrder), the command's own time
// for any other (an id its handler made).
func (c *applyCtx) createdAt(id string) time.Time {
	if c.level() >= LevelIDOrder && slices.Contains(c.derived, id) {
		return c.idTime()
	}
	return c.at
}

// eventIndex is the index an event id of this command carries: its Raft
// index below LevelEventOrder, its event index from it.
func (c *applyCtx) eventIndex() uint64 {
	if c.level() < LevelEventOrder {
		return c.index
	}
	return c.evIndex
}

// recordEventAt writes, once the command's events are in the outbox (and
// from LevelIDOrder once it made an id, events or not), the time they carried as the last event's (store.EventAt) when it differs
// from the one recorded: later, or earlier when the one recorded was a
// wrong clock's (eventTime did not hold to it). A time outside the years
// 1970 to 2261 (unix ns as int64) is not recorded.
func (c *applyCtx) recordEventAt() error {
	if !c.evAtSet || (len(c.events) == 0 && c.level() < LevelIDOrder) {
		// From LevelIDOrder the time is recorded as soon as an id took it.
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

// latestIDAt is the latest time part of the ids in the buckets whose
// records the FSM makes ids for (actions, wallet transactions, invoices; a
// payment's or a domain renewal's id takes the time of a transaction or
// invoice of its command) no more than hlc.MaxAhead past at (the zero time
// when there is none). Ids a handler made are read too: their time is their
// command's, no later than what the clamp may hold. Read once, at the raise
// to LevelIDOrder: below it such an id took its command's time, which no
// event recorded when the command emitted none (a cleanup action), or when
// it raced.
func latestIDAt(c *applyCtx, at time.Time) time.Time {
	var latest time.Time
	for _, b := range [][]byte{store.BucketActions, store.BucketWalletTx, store.BucketInvoices} {
		cur := c.tx.Bucket(b).Cursor()
		for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			if i := bytes.LastIndexByte(k, '/'); i >= 0 {
				k = k[i+1:]
			}
			if t, ok := idTimeOf(string(k)); ok && t.After(latest) && t.Sub(at) <= hlc.MaxAhead {
				latest = t
			}
		}
	}
	return latest
}

// idTimeOf is the time part of an id (ids.New's or ids.Derived's: prefix,
// underscore, 26 base32 characters whose first 10 hold 48 bits of unix
// milliseconds); ok is false for a key that is not such an id.
func idTimeOf(id string) (time.Time, bool) {
	i := strings.IndexByte(id, '_')
	if i <= 0 || !ids.Valid(id[:i], id) {
		return time.Time{}, false
	}
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	var v uint64
	for _, ch := range id[i+1 : i+11] { // 50 bits: 2 zero bits, then the 48 of the time
		v = v<<5 | uint64(strings.IndexRune(alphabet, ch))
	}
	return time.UnixMilli(int64(v)).UTC(), true
}
