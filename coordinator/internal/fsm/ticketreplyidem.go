package fsm

import (
	"encoding/json"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// LevelTicketReplyIdem is the semantics level (level.go) from which the
// Idempotency-Key record of a ticket reply (CmdTicketReply; POST
// /v1/tickets/{id}/reply answers the whole ticket with its thread) keeps no
// body: store.IdemTicket, about 200 bytes, from which ResolveIdem rebuilds
// the answer. Below it the record holds the whole answer, as before: a
// thread of 199 replies of 4 KiB stored 111.6 MB of records
// (BenchmarkTicketReplyIdemRecords), on every replica and in every snapshot.
// A release before this level would replay such a record as an empty body;
// it never reads one, since the level rises only once every coordinator
// applies it, and a coordinator refuses to start on (raftnode) or restore
// (Restore) a state of a level above its own.
const LevelTicketReplyIdem = 5

// idemRecord is the record that keeps the answer val of env under its
// Idempotency-Key.
func idemRecord(c *applyCtx, env *Envelope, val any) (store.IdemRecord, error) {
	rec := store.IdemRecord{ReqHash: env.Idem.ReqHash, Status: env.Idem.Status, ExpiresAt: env.Idem.ExpiresAt}
	if t, ok := val.(api.Ticket); ok && env.Type == CmdTicketReply && c.level() >= LevelTicketReplyIdem {
		owner := c.r.TicketOwner(t.ID)
		if owner == "" {
			return rec, fmt.Errorf("ticket %s replied to has no owner", t.ID)
		}
		rec.Ticket = &store.IdemTicket{ID: t.ID, Owner: owner, Messages: len(t.Messages), Status: t.Status, UpdatedAt: t.UpdatedAt}
		return rec, nil
	}
	if body, ok := encodeAnswer(val); ok {
		rec.Body = body
		return rec, nil
	}
	body, err := json.Marshal(val)
	rec.Body = body
	return rec, err
}

// encodeAnswer writes a command's answer as json.Marshal writes it, without
// reflection, for the answers of the idempotent commands sent most (a
// server order, a ticket), or gives up (ok false) for any other answer or
// one outside its encoder's subset. Every replica writes the answer into
// the command's idempotency record (TestIdemAnswerMatchesEncodingJSON).
func encodeAnswer(val any) ([]byte, bool) {
	switch v := val.(type) {
	case api.ServerOrder:
		return store.EncodeAPIServerOrder(&v, 0)
	case api.Ticket:
		return EncodeTicket(&v)
	}
	return nil, false
}

// ResolveIdem is the record rec as it is replayed: rec itself, or, for a
// ticket reply's record (rec.Ticket), the answer rebuilt from the ticket as
// it is now in r: its thread cut to the messages it held then, its status
// and updated_at put back, encoded as the route encodes it (EncodeTicket,
// which writes json.Marshal's bytes). Both replays use it: the FSM's (a
// command sent again under the key) and httpapi's read before proposing.
//
// The rebuild is exact because a ticket's thread is append-only (a message
// is never edited nor removed, the only change to a thread is a reply
// appended), its other fields but status and updated_at never change after
// its creation, a ticket is never deleted nor moves to another account, and
// the record and the reply are written in one apply. Should any of that stop
// holding, this must change with it: a ticket missing or holding fewer
// messages than the record counts is an error (an internal one, a 500 and a
// log line, never a wrong answer).
func ResolveIdem(r store.ReadTx, rec store.IdemRecord) (store.IdemRecord, error) {
	k := rec.Ticket
	if k == nil {
		return rec, nil
	}
	t, err := r.Ticket(k.Owner, k.ID)
	if err != nil {
		// Not wrapped: a lost ticket is no business error (404) but a broken record.
		return rec, fmt.Errorf("idempotency record of a reply to ticket %s of %s cannot be replayed: the ticket: %v", k.ID, k.Owner, err)
	}
	if k.Messages < 1 || len(t.Messages) < k.Messages {
		return rec, fmt.Errorf("idempotency record of a reply to ticket %s of %s cannot be replayed: it counts %d messages, the thread holds %d (threads are append-only)", k.ID, k.Owner, k.Messages, len(t.Messages))
	}
	t.Messages = t.Messages[:k.Messages]
	t.Status, t.UpdatedAt = k.Status, k.UpdatedAt
	body, ok := EncodeTicket(&t)
	if !ok {
		if body, err = json.Marshal(t); err != nil {
			return rec, err
		}
	}
	rec.Body, rec.Ticket = body, nil
	return rec, nil
}
