package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// HostingPasswordReset opens a hosting.password_reset action on an active
// account. The new passwords ride in the dispatcher's secrets to the node,
// never here: Action.Params holds the target alone.
type HostingPasswordReset struct {
	Action store.Action `json:"action"`
}

// Refusal codes of a hosting password reset on an account that cannot take
// one (HostingStateError.Code).
const (
	CodeHostingNotActive = "not_active" // provisioning, failed or deleted
	CodeHostingDeleting  = "deleting"   // its hosting.delete is running
)

// HostingStateError is a 409 about the account's state, with its code.
type HostingStateError struct {
	Code string
	Msg  string
}

func (e *HostingStateError) Error() string { return e.Msg }

// Is makes a HostingStateError an ErrConflict.
func (e *HostingStateError) Is(target error) bool { return target == ErrConflict }

// hostingPasswordParams is what params may hold: the target, no password.
type hostingPasswordParams struct {
	Target string `json:"target"`
}

func applyHostingPasswordReset(c *applyCtx, p HostingPasswordReset) (any, error) {
	a := p.Action
	if a.Command != api.ActionHostingPasswordReset || a.ResourceType != ResourceHosting {
		return nil, fmt.Errorf("%w: the action is not a hosting password reset", ErrInvalid)
	}
	var params hostingPasswordParams
	dec := json.NewDecoder(bytes.NewReader(a.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&params); err != nil || !slices.Contains(api.HostingPasswordTargets, params.Target) {
		// Unknown keys refused: a password must never reach the log here.
		return nil, fmt.Errorf("%w: a hosting password reset's params are its target alone", ErrInvalid)
	}
	if !a.NeedsSecret {
		return nil, fmt.Errorf("%w: a hosting password reset carries its passwords as a secret", ErrInvalid)
	}
	h, err := hostingActionOn(c, &a)
	if err != nil {
		return nil, err
	}
	if h.ActionID != "" {
		if cur, err := c.r.Action(h.ActionID); err == nil && !cur.Finished() && cur.Command == api.ActionHostingDelete {
			return nil, &HostingStateError{Code: CodeHostingDeleting, Msg: fmt.Sprintf("hosting account %s is being deleted (action %s)", h.ID, cur.ID)}
		}
	}
	switch {
	case h.Status == api.HostingDeleted:
		return nil, &HostingStateError{Code: CodeHostingNotActive, Msg: fmt.Sprintf("hosting account %s is deleted", h.ID)}
	case h.Status == api.HostingProvisioning:
		return nil, &HostingStateError{Code: CodeHostingNotActive, Msg: fmt.Sprintf("hosting account %s is still being provisioned; its passwords can be reset once it is active", h.ID)}
	case h.Status == api.HostingError:
		return nil, &HostingStateError{Code: CodeHostingNotActive, Msg: fmt.Sprintf("hosting account %s failed to provision; it can only be deleted", h.ID)}
	case h.Suspension != nil:
		return nil, &SuspendedError{ServerID: h.ID, Reason: h.Suspension.Reason + "; its passwords can be reset once it is unsuspended", Resource: "hosting account"}
	case h.Status == api.HostingSuspended:
		return nil, &SuspendedError{ServerID: h.ID, Reason: "unsuspend it first to reset its passwords", Resource: "hosting account"}
	case h.Status != api.HostingActive:
		return nil, &HostingStateError{Code: CodeHostingNotActive, Msg: fmt.Sprintf("hosting account %s is %s, not active", h.ID, h.Status)}
	}
	if err := c.busyWith(h.ID, h.ActionID, "hosting account"); err != nil {
		return nil, err
	}
	a.Status, a.CreatedAt, a.Progress, a.Mutating = api.ActionPending, c.at, 0, true
	a.StartedAt, a.FinishedAt, a.Error, a.Meta = nil, nil, nil, map[string]string{"target": params.Target}
	return startHostingAction(c, h, a)
}
