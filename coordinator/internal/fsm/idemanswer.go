package fsm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// IdemAnswer is the payload of CmdIdemAnswer: the key's scope and the
// request's hash (as the command's IdemRequest had them), and the answer.
// Body never holds a once-only secret.
type IdemAnswer struct {
	Scope   string          `json:"scope"`
	ReqHash string          `json:"req_hash"`
	Status  int             `json:"status"`
	Body    json.RawMessage `json:"body"`
}

// applyIdemAnswer replaces the status and body of the record under p.Scope,
// keeping its expiry. A record that is absent, expired (by the command's
// time) or of another request is left alone: ErrNotFound, nothing written.
func applyIdemAnswer(c *applyCtx, p IdemAnswer) (any, error) {
	if p.Scope == "" || p.Status < 100 || p.Status > 599 || !json.Valid(p.Body) {
		return nil, fmt.Errorf("%w: idempotency answer for %q: status %d, body valid %v", ErrInvalid, p.Scope, p.Status, json.Valid(p.Body))
	}
	var rec store.IdemRecord
	err := store.GetJSON(c.tx, store.BucketIdempotency, []byte(p.Scope), &rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: no idempotency record %q", ErrNotFound, p.Scope)
	case err != nil:
		return nil, err
	case !rec.ExpiresAt.After(c.at) || rec.ReqHash != p.ReqHash:
		return nil, fmt.Errorf("%w: no idempotency record %q of this request", ErrNotFound, p.Scope)
	}
	rec.Status, rec.Body, rec.Ticket = p.Status, p.Body, nil
	return nil, store.PutJSON(c.tx, store.BucketIdempotency, []byte(p.Scope), rec)
}
