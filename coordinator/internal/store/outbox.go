package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
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

// OutboxKey orders outbox entries by event index (EventIndexOffset) then
// sequence within the log entry.
func OutboxKey(index uint64, seq uint16) []byte {
	b := make([]byte, 10)
	binary.BigEndian.PutUint64(b, index)
	binary.BigEndian.PutUint16(b[8:], seq)
	return b
}

// keyEventIndexOffset (meta bucket) is EventIndexOffset's value, absent
// while it is 0.
var keyEventIndexOffset = []byte("event_index_offset")

// EventIndexOffset is what the FSM adds to a command's Raft index to make
// its event index: the index its outbox keys, the dispatcher's cursor and a
// webhook subscription's ActiveSince, PausedSince and Gaps are counted in.
// It is 0 (absent) in a cluster whose state was never restored from a
// backup of a longer log: the event index is then the Raft index itself. A
// `cluster restore` installs a backup at this cluster's next Raft index,
// which may be lower than the backup's own applied index (a backup from a
// longer log): the FSM's Restore then raises the offset by the difference
// (RaiseEventIndexOffset), so the events of the commands that follow sort
// after the backup's, past its cursor, and count as later than its
// subscriptions' indexes, instead of taking the keys of the backup's events
// (overwriting ones not yet delivered) behind its cursor (never delivered).
func EventIndexOffset(tx *bolt.Tx) uint64 {
	if v := metaFixed(tx, keyEventIndexOffset, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// RaiseEventIndexOffset is called by the FSM's Restore with the state just
// installed, the Raft index it is installed at (snapIndex) and the applied
// index the copy holds (its own, from the cluster it was taken in): every
// event index in the copy is at most copyApplied plus the copy's offset, and
// the next command's Raft index is past snapIndex, so the offset grows by
// how far copyApplied is past snapIndex. A snapshot of this cluster's own
// (InstallSnapshot, a restart) holds an applied index at or below its Raft
// index and keeps its offset; every replica that installs the same snapshot
// at the same index computes the same offset. It returns the offset now in
// force.
func RaiseEventIndexOffset(tx *bolt.Tx, snapIndex, copyApplied uint64) (uint64, error) {
	off := EventIndexOffset(tx)
	if copyApplied <= snapIndex {
		return off, nil
	}
	off += copyApplied - snapIndex
	return off, tx.Bucket(BucketMeta).Put(keyEventIndexOffset, u64(off))
}

// keyRestoreEpoch (meta bucket) is RestoreEpoch's value, absent while 0;
// keyRestoreMark marks a copy a `cluster restore` installs (MarkRestore).
var (
	keyRestoreEpoch = []byte("restore_epoch")
	keyRestoreMark  = []byte("restore_mark")
)

// RestoreEpoch names the state a replica holds as far as a `cluster
// restore` goes: 0 in a cluster whose state no restore replaced (since the
// cluster reached the semantics level that marks restores), else the Raft
// index at which the last restore installed its backup. It changes exactly
// when a foreign state is installed, and is the same on every replica: the
// FSM's Restore sets it from the snapshot itself (TakeRestoreMark), and a
// snapshot of the cluster's own (InstallSnapshot, a restart) carries it
// unchanged. A command the leader proposes from a read of the state (the
// webhook dispatcher's cursor) carries the epoch it read, so that its apply
// can tell a read of a state a restore has replaced since.
func RestoreEpoch(tx *bolt.Tx) uint64 {
	if v := metaFixed(tx, keyRestoreEpoch, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// RestoreEpoch is store.RestoreEpoch of the transaction.
func (r ReadTx) RestoreEpoch() uint64 { return RestoreEpoch(r.tx) }

// errNoMetaBucket is MarkRestore's and TakeRestoreMark's answer for a
// database that is not a hostplane state.
var errNoMetaBucket = errors.New("not a hostplane state: the database has no meta bucket")

// MarkRestore marks a backup's database as one a `cluster restore`
// installs: the leader writes it into the copy before handing it to Raft,
// so every replica installs the same marked bytes at the same index and
// TakeRestoreMark moves RestoreEpoch alike on each. A database without the
// meta bucket (not a hostplane state) is an error, with nothing written.
func MarkRestore(tx *bolt.Tx) error {
	meta := tx.Bucket(BucketMeta)
	if meta == nil {
		return errNoMetaBucket
	}
	return meta.Put(keyRestoreMark, []byte{1})
}

// TakeRestoreMark is called by the FSM's Restore with the state just
// installed and the Raft index it is installed at: a copy marked by
// MarkRestore has its mark removed (the state's own snapshots never carry
// it) and RestoreEpoch set to snapIndex alone. Every epoch a command of this
// cluster can carry is then 0 or the index of one of its own earlier
// restores, each below the next restore's (Raft's user restore installs
// past its log); the copy's own epoch (one of the cluster it was taken in,
// the same in every backup taken there since) never counts. (A snapIndex of
// 0, a stream of unknown index, takes the copy's epoch plus one.) An
// unmarked copy (a snapshot of the cluster's own) keeps the epoch it holds.
// It returns the epoch now in force and whether the copy was marked. A
// database without the meta bucket (not a hostplane state) is an error, with
// nothing written (as MarkRestore).
func TakeRestoreMark(tx *bolt.Tx, snapIndex uint64) (epoch uint64, marked bool, err error) {
	meta := tx.Bucket(BucketMeta)
	if meta == nil {
		return 0, false, errNoMetaBucket
	}
	epoch = RestoreEpoch(tx)
	if meta.Get(keyRestoreMark) == nil {
		return epoch, false, nil
	}
	if err := meta.Delete(keyRestoreMark); err != nil {
		return 0, false, err
	}
	if snapIndex > 0 {
		epoch = snapIndex
	} else {
		epoch++
	}
	return epoch, true, meta.Put(keyRestoreEpoch, u64(epoch))
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

// EventIndexOffset is store.EventIndexOffset of the transaction.
func (r ReadTx) EventIndexOffset() uint64 { return EventIndexOffset(r.tx) }
