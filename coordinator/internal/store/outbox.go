package store

import (
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is an outbox entry: a webhook event written with the change it describes.
type Event struct {
	Seq       []byte          `json:"-"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	AccountID string          `json:"account_id"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// OutboxKey orders outbox entries by Raft index then sequence within the command.
func OutboxKey(index uint64, seq uint16) []byte {
	b := make([]byte, 10)
	binary.BigEndian.PutUint64(b, index)
	binary.BigEndian.PutUint16(b[8:], seq)
	return b
}

// ScanOutbox visits, in order, up to max outbox entries after the key after
// (from the first when after is nil). Each event's Seq is a copy of its key; an
// undecodable entry is visited with its error. more reports whether entries
// remain past the last one visited.
func (r ReadTx) ScanOutbox(after []byte, max int, visit func(ev Event, err error)) (more bool) {
	return r.ScanOutboxFor(after, max, nil, visit)
}

// SkipOutbox walks up to max outbox entries after the key after (from the
// first when after is nil) without reading them, for a reader that wants no
// account: last is a copy of the last key walked (nil when there is none), and
// more reports whether entries remain past it (as ScanOutbox's more).
func (r ReadTx) SkipOutbox(after []byte, max int) (last []byte, more bool) {
	c := r.tx.Bucket(BucketOutbox).Cursor()
	k, _ := firstAfter(c, after)
	var prev []byte
	for n := 0; k != nil; k, _ = c.Next() {
		if n >= max {
			more = true
			break
		}
		n++
		prev = k
	}
	if prev == nil {
		return nil, more
	}
	return append([]byte{}, prev...), more
}

// ScanOutboxFor is ScanOutbox that first reads only each entry's account and
// asks want (nil: every account is wanted): an entry of an account it does not
// want is visited with only Seq and AccountID set, its other fields left
// undecoded. A reader with no subscriber for most accounts then skips most of
// the decoding.
func (r ReadTx) ScanOutboxFor(after []byte, max int, want func(accountID string) bool, visit func(ev Event, err error)) (more bool) {
	c := r.tx.Bucket(BucketOutbox).Cursor()
	k, v := firstAfter(c, after)
	for n := 0; k != nil; k, v = c.Next() {
		if n >= max {
			return true
		}
		n++
		if want != nil {
			var acct struct {
				AccountID string `json:"account_id"`
			}
			if json.Unmarshal(v, &acct) == nil && !want(acct.AccountID) {
				visit(Event{Seq: append([]byte{}, k...), AccountID: acct.AccountID}, nil)
				continue
			}
		}
		var ev Event
		err := json.Unmarshal(v, &ev)
		ev.Seq = append([]byte{}, k...)
		visit(ev, err)
	}
	return false
}

// firstAfter moves c to the first entry whose key is past after (the first
// entry when after is nil) and returns it (nil key: none).
func firstAfter(c *bolt.Cursor, after []byte) (k, v []byte) {
	if after == nil {
		return c.First()
	}
	k, v = c.Seek(after)
	if k != nil && string(k) == string(after) {
		k, v = c.Next()
	}
	return k, v
}
