package store

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
	bolt "go.etcd.io/bbolt"
)

// IdemRecord is a stored Idempotency-Key response: its status and Body, or,
// for a customer's ticket reply at semantics level 5 and later
// (fsm.LevelTicketReplyIdem), Ticket and no Body: what fsm.ResolveIdem
// rebuilds the answer from. A reader replays a record only through
// fsm.ResolveIdem.
type IdemRecord struct {
	ReqHash   string      `json:"req_hash"`
	Status    int         `json:"status"`
	Body      []byte      `json:"body"`
	ExpiresAt time.Time   `json:"expires_at"`
	Ticket    *IdemTicket `json:"ticket,omitempty"`
	// Decided marks an answer the log decided once for all: a domain
	// operation's answer window, rewritten by the operation's end or the
	// window's close (from semantics level 15, fsm.LevelDomainAnswerDecided).
	// A send of the key answers it as stored, whatever the operation's state.
	Decided bool `json:"decided,omitempty"`
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
	if rec.Decided {
		b = append(b, `,"decided":true`...)
	}
	return closeObject(b, ok)
}
