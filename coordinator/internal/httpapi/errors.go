package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/pkg/api"
)

// httpError is an error with the status, code and safe message the client sees;
// cause is logged, never shown.
type httpError struct {
	status int
	code   string
	msg    string
	cause  error
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %v", e.msg, e.cause)
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.cause }

func errf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *httpError {
	return errf(http.StatusBadRequest, "invalid_request", format, args...)
}

func notFound(what string) *httpError {
	return errf(http.StatusNotFound, "not_found", "%s not found", what)
}

// toAPIError is the one place where an error becomes a status: typed HTTP errors
// pass through, FSM business errors map by errors.Is, anything else is a 500 whose
// cause is logged by the caller.
func toAPIError(err error) (*api.Error, bool) {
	var he *httpError
	if errors.As(err, &he) {
		return api.NewError(he.status, he.code, he.msg), false
	}
	// A server's one-mutating-action rule: the message names the blocking
	// action so the client can follow it (GET /v1/actions/:id).
	var busy *fsm.ActionBusyError
	if errors.As(err, &busy) {
		return api.NewError(http.StatusConflict, "action_in_progress", userMessage(busy)), false
	}
	// A node that filled up between placement and apply.
	var full *fsm.NoCapacityError
	if errors.As(err, &full) {
		return api.NewError(http.StatusConflict, "no_capacity", userMessage(full)), false
	}
	// A suspended server refuses power-on, saying why.
	// A hosting account whose state refuses the request, with its code.
	var hst *fsm.HostingStateError
	if errors.As(err, &hst) {
		return api.NewError(http.StatusConflict, hst.Code, userMessage(hst)), false
	}
	// A write sent with If-Match (If-None-Match): changed after its read.
	var changed *fsm.ChangedError
	if errors.As(err, &changed) {
		return api.NewError(http.StatusPreconditionFailed, "precondition_failed", userMessage(changed)), false
	}
	var susp *fsm.SuspendedError
	if errors.As(err, &susp) {
		return api.NewError(http.StatusConflict, "suspended", userMessage(susp)), false
	}
	// A command of a newer release while some coordinator still runs an
	// older one (a rolling upgrade not finished).
	var lvl *fsm.LevelError
	if errors.As(err, &lvl) {
		return api.NewError(http.StatusServiceUnavailable, "cluster_upgrading", userMessage(lvl)), false
	}
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		return api.NewError(http.StatusNotFound, "not_found", userMessage(err)), false
	case errors.Is(err, fsm.ErrConflict):
		return api.NewError(http.StatusConflict, "conflict", userMessage(err)), false
	case errors.Is(err, fsm.ErrInsufficientFunds):
		return api.NewError(http.StatusConflict, "insufficient_funds", userMessage(err)), false
	case errors.Is(err, fsm.ErrIdemMismatch):
		return api.NewError(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used with a different request body in the last 24 hours"), false
	case errors.Is(err, fsm.ErrKeyEscalation):
		return api.NewError(http.StatusForbidden, "key_escalation", userMessage(err)), false
	case errors.Is(err, fsm.ErrInvalid):
		return api.NewError(http.StatusBadRequest, "invalid_request", userMessage(err)), false
	case errors.Is(err, raftnode.ErrNotLeader):
		return api.NewError(http.StatusServiceUnavailable, "no_leader", "the cluster is electing a leader; retry shortly"), false
	}
	return api.NewError(http.StatusInternalServerError, "internal_error", "internal error; the request id identifies it in the server log"), true
}

// userMessage is the FSM error text, which names the resource but holds no secret.
func userMessage(err error) string { return err.Error() }
