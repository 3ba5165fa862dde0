package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
	bolt "go.etcd.io/bbolt"
)

// IdemRecord is a stored Idempotency-Key response: its status and Body, or,
// for a customer's ticket reply at semantics level 5 and later
// (fsm.LevelTicketReplyIdem), Ticket and no Body: what fsm.ResolveIdem
// rebuilds the answer from, or, from semantics level 11 on
// (fsm.LevelIdemBodies), BodyRef and no Body: the body is in
// BucketIdemBodies under the key BodyRef names. A reader replays a record
// only through fsm.ResolveIdem.
type IdemRecord struct {
	ReqHash   string      `json:"req_hash"`
	Status    int         `json:"status"`
	Body      []byte      `json:"body"`
	ExpiresAt time.Time   `json:"expires_at"`
	Ticket    *IdemTicket `json:"ticket,omitempty"`
	// BodyRef is the body's key in BucketIdemBodies in hex (IdemBodyKey);
	// "" when the record holds its body (or Ticket) itself.
	BodyRef string `json:"body_ref,omitempty"`
}

// IdemBodyKey is the key in BucketIdemBodies of the body of the n-th
// command (from 0) of the Raft entry at index: keys sort in the log's
// order, so the bodies a commit writes append to the bucket's last leaf and
// the oldest are at its front.
func IdemBodyKey(index uint64, n uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint64(make([]byte, 0, 10), index), n)
}

// idemBodyKeyOf is the key BodyRef names, or false when ref names none.
func idemBodyKeyOf(ref string) ([]byte, bool) {
	k, err := hex.DecodeString(ref)
	return k, err == nil && len(k) == 10
}

// PutIdemBody stores body under IdemBodyKey(index, n) and returns the
// BodyRef that names it (the FSM writes, from semantics level 11 on), or
// "" and writes nothing when that key holds a body already: Raft indexes
// are not unique across a cluster restore (a backup installed on a
// cluster whose log is behind the backup's goes on at its own indexes, so
// its commands reach the indexes the backup's bodies were written at), and
// a body is never replaced by another record's. The caller then keeps the
// body in its record.
func PutIdemBody(tx *bolt.Tx, index uint64, n uint16, body []byte) (string, error) {
	k := IdemBodyKey(index, n)
	b := tx.Bucket(BucketIdemBodies)
	if b.Get(k) != nil {
		return "", nil
	}
	if err := b.Put(k, body); err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// DeleteIdemBody removes the body ref names ("" names none: nothing to do),
// when its record is removed or rewritten with its body in it.
func DeleteIdemBody(tx *bolt.Tx, ref string) error {
	if ref == "" {
		return nil
	}
	k, ok := idemBodyKeyOf(ref)
	if !ok {
		return fmt.Errorf("idempotency record's body_ref %q is not a body key", ref)
	}
	return tx.Bucket(BucketIdemBodies).Delete(k)
}

// IdemBody is a copy of the body ref names.
func (r ReadTx) IdemBody(ref string) ([]byte, error) {
	k, ok := idemBodyKeyOf(ref)
	if !ok {
		return nil, fmt.Errorf("idempotency record's body_ref %q is not a body key", ref)
	}
	v := r.tx.Bucket(BucketIdemBodies).Get(k)
	if v == nil {
		return nil, fmt.Errorf("idempotency body %s: %w", ref, ErrNotFound)
	}
	return append([]byte(nil), v...), nil
}

// IdemTicket is what the record of a ticket reply keeps of its answer (the
// ticket with its thread): the ticket, its owner, how many messages the
// thread held, and the fields of the answer that change after the reply
// (status and updated_at: later replies, a close, a status change). The
// rest of the answer is the ticket as it is now, its thread cut to Messages.
type IdemTicket struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"`
	Messages  int       `json:"messages"`
	Status    string    `json:"status"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Idempotency loads the stored response of an Idempotency-Key scope
// ("<keyID>/<key>"), expired or not.
func (r ReadTx) Idempotency(scope string) (IdemRecord, error) {
	var rec IdemRecord
	err := r.get(BucketIdempotency, []byte(scope), &rec)
	return rec, err
}

// PutIdemRecord stores rec under scope. Every idempotent command writes one
// on every replica.
func PutIdemRecord(tx *bolt.Tx, scope []byte, rec *IdemRecord) error {
	if raw, ok := EncodeIdemRecord(rec); ok {
		return tx.Bucket(BucketIdempotency).Put(scope, raw)
	}
	return PutJSON(tx, BucketIdempotency, scope, *rec)
}

// EncodeIdemRecord writes rec as json.Marshal writes it (the body in
// base64, null when nil), without reflection, or gives up (ok false) when
// one of its times is not UTC within years 0-9999
// (TestIdemRecordEncodingMatchesEncodingJSON, FuzzIdemRecordEncoding).
func EncodeIdemRecord(rec *IdemRecord) ([]byte, bool) {
	b := make([]byte, 0, 128+len(rec.ReqHash)+base64.StdEncoding.EncodedLen(len(rec.Body)))
	b = plainjson.AppendStringField(b, `{"req_hash":`, rec.ReqHash)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, `,"body":`...)
	if rec.Body == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, rec.Body)
		b = append(b, '"')
	}
	b = append(b, `,"expires_at":`...)
	b, ok := plainjson.AppendTime(b, rec.ExpiresAt)
	if k := rec.Ticket; k != nil && ok {
		b = plainjson.AppendStringField(b, `,"ticket":{"id":`, k.ID)
		b = plainjson.AppendStringField(b, `,"owner":`, k.Owner)
		b = append(b, `,"messages":`...)
		b = strconv.AppendInt(b, int64(k.Messages), 10)
		b = plainjson.AppendStringField(b, `,"status":`, k.Status)
		b = append(b, `,"updated_at":`...)
		b, ok = plainjson.AppendTime(b, k.UpdatedAt)
		b = append(b, '}')
	}
	if rec.BodyRef != "" && ok {
		b = plainjson.AppendStringField(b, `,"body_ref":`, rec.BodyRef)
	}
	return closeObject(b, ok)
}
