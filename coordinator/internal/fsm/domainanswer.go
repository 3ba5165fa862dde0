package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// LevelDomainAnswer is the semantics level from which the answer a domain
// order, transfer or change gives its Idempotency-Key is decided by the log
// rather than by the first send's clocks. The command that opens the
// operation with a key records the key's answer window on the operation
// (store.RegDomainOp.Answer), and whichever of two commands the log applies
// first rewrites the key's record, once:
//   - the operation's end (CmdDomainOpDone): 201 with the domain (a change,
//     200), or 409 with the registry's reason (DomainEndAnswer);
//   - the window's close (CmdDomainAnswerClose), proposed by the first send
//     when its wait for the registry runs out, or by a replay that waited as
//     long and found the window still open: 202 with the pending domain.
//
// The first send and every replay answer that record. A close after the end
// changes nothing; an end after a close leaves the record at 202 (the
// domain's GET shows the end). Below this level no window is opened and
// an end leaves the key's record alone, as before.
const LevelDomainAnswer = 14

// LevelDomainAnswerDecided is the semantics level from which a record an
// answer window's end or close rewrites is marked decided
// (store.IdemRecord.Decided). At level 14 a window decided leaves nothing on
// the operation (its Answer cleared by the close, the operation itself
// gone at its end), so a send that finds no window cannot tell a key the log
// decided from one whose operation was opened below level 14, without a
// window (whose first send answers by its clocks and records that answer
// itself): the mark tells them apart, on the record whose answer it is, and
// outlives the operation. Below this level the record is rewritten exactly
// as at level 14.
const LevelDomainAnswerDecided = 15

// DomainAnswerClose closes the answer window of operation OpID of domain
// DomainID: its key's record answers 202 with the domain pending, unless the
// operation has ended already (then it changes nothing).
type DomainAnswerClose struct {
	DomainID string `json:"domain_id"`
	OpID     string `json:"op_id"`
}

// DomainEndAnswer is the answer to the request that opened operation opID
// (of kind) once it has ended, d the domain after its end: 201 with the
// domain (a change, 200), or 409 with an *api.Error naming why: the
// registry refused the registration (registration_failed), the transfer
// (transfer_failed) or the change (change_failed, rolled back).
func DomainEndAnswer(d store.RegDomain, kind, opID string) (int, any) {
	if kind == store.RegOpChange {
		if d.Change != nil && d.Change.ID == opID && d.Change.Status == api.ChangeFailed {
			return http.StatusConflict, api.NewError(http.StatusConflict, "change_failed",
				fmt.Sprintf("the change of domain %s was rolled back (change %s): %s", d.Name, opID, d.Change.Reason))
		}
		return http.StatusOK, d.Domain
	}
	if d.Status == api.DomainFailed {
		code := "registration_failed"
		if kind == store.RegOpTransfer {
			code = "transfer_failed"
		}
		return http.StatusConflict, api.NewError(http.StatusConflict, code, fmt.Sprintf("domain %s (%s): %s", d.Name, d.ID, d.StatusReason))
	}
	return http.StatusCreated, d.Domain
}

// openAnswerWindow records on op the answer window of the command's
// Idempotency-Key, from LevelDomainAnswer (a command without a key opens
// none).
func openAnswerWindow(c *applyCtx, op *store.RegDomainOp) {
	if c.level() >= LevelDomainAnswer && c.env != nil && c.env.Idem != nil {
		op.Answer = &store.RegDomainAnswer{Scope: c.env.Idem.Scope, ReqHash: c.env.Idem.ReqHash}
	}
}

// decideAnswer rewrites the record of window w with status and body, marked
// decided from LevelDomainAnswerDecided. A record gone (expired by the
// command's time, swept) or of another request is left alone: the
// operation's end does not fail for it.
func decideAnswer(c *applyCtx, w store.RegDomainAnswer, status int, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var rec store.IdemRecord
	err = store.GetJSON(c.tx, store.BucketIdempotency, []byte(w.Scope), &rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case !rec.ExpiresAt.After(c.at) || rec.ReqHash != w.ReqHash:
		return nil
	}
	rec.Status, rec.Body, rec.Ticket = status, raw, nil
	rec.Decided = c.level() >= LevelDomainAnswerDecided
	return store.PutIdemRecord(c.tx, []byte(w.Scope), &rec)
}

func applyDomainAnswerClose(c *applyCtx, p DomainAnswerClose) (any, error) {
	if p.DomainID == "" || p.OpID == "" {
		return nil, fmt.Errorf("%w: closing an answer window needs the domain and operation ids", ErrInvalid)
	}
	d, err := c.r.RegDomainByID(p.DomainID)
	if err != nil {
		return nil, err
	}
	if d.Op == nil || d.Op.ID != p.OpID || d.Op.Answer == nil {
		return d.Domain, nil // ended (its end answered), or closed already
	}
	if err := decideAnswer(c, *d.Op.Answer, http.StatusAccepted, d.Domain); err != nil {
		return nil, err
	}
	d.Op.Answer = nil
	return d.Domain, putRegDomain(c, d)
}
