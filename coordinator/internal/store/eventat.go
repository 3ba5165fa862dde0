package store

import bolt "go.etcd.io/bbolt"

// keyEventAt (meta bucket) is EventAt's value, absent while 0.
var keyEventAt = []byte("event_at")

// EventAt is the time (unix ns) of the last outbox event written, as the
// FSM clamps it from semantics level 12 (fsm.LevelEventOrder): an event's
// time, and the time part of its id, is its command's time or this, when
// later, so event ids sort in the order their events were committed. From
// level 13 (fsm.LevelIDOrder) it is the time of the last id the FSM made,
// an event's or a record's (an action, a wallet transaction, an invoice, a
// payment, a domain renewal): one clamp for every id it makes. 0 while no
// event was written at level 12 (nor the level raised to it). It
// is part of the replicated state: every replica writes it alike, and a
// snapshot or backup carries it.
func EventAt(tx *bolt.Tx) int64 { return metaInt64(tx, keyEventAt) }

// SetEventAt records EventAt.
func SetEventAt(tx *bolt.Tx, ns int64) error { return setMetaInt64(tx, keyEventAt, ns) }
