package store

import (
	"time"
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
