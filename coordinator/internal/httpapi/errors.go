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

// applyTimedOut is the answer to a write whose Raft apply did not finish
// within the apply timeout on a coordinator that still leads (no quorum
// answered: followers paused, cut off, or too slow): 503 leader_unreachable
// with Retry-After, the code README's retry policy documents for a write
// that may or may not have taken effect ("without a quorum"), so the client
// sends it again with its Idempotency-Key, as pkg/client does by itself. A
// proposal withdrawn from this node's queue never reached the log and was
// not applied; one Raft held may still commit. err stays the cause (logged
// by none: the answer says all the client can act on).
func applyTimedOut(err error) *httpError {
	if errors.Is(err, raftnode.ErrWithdrawn) {
		return &httpError{status: http.StatusServiceUnavailable, code: "leader_unreachable", cause: err,
			msg: "the cluster did not commit the write in time (no quorum answered) and it was not applied; send it again"}
	}
	return &httpError{status: http.StatusServiceUnavailable, code: "leader_unreachable", cause: err,
		msg: "the cluster did not commit the write in time (no quorum answered): it may or may not take effect; send it again with the same Idempotency-Key, or read before writing again"}
}

// toAPIError is the one place where an error becomes a status: typed HTTP errors
// pass through, FSM business errors map by errors.Is, anything else is a 500 whose
// cause is logged by the caller.
func toAPIError(err error) (*api.Error, bool) {
	var he *httpError
	if errors.As(err, &he) {
		return api.NewError(he.status, he.code, he.msg), false
	}
	for _, typed := range typedErrors {
		if e := typed(err); e != nil {
			return e, false
		}
	}
	for _, m := range sentinelErrors {
		if errors.Is(err, m.err) {
			msg := m.msg
			if msg == "" {
				msg = userMessage(err)
			}
			return api.NewError(m.status, m.code, msg), false
		}
	}
	return api.NewError(http.StatusInternalServerError, "internal_error", "internal error; the request id identifies it in the server log"), true
}

// typedErrors answer the FSM's typed refusals, tried in order: the first
// whose type err wraps gives the status and code, and its text the message.
var typedErrors = []func(error) *api.Error{
	// A server's one-mutating-action rule: the message names the blocking
	// action so the client can follow it (GET /v1/actions/:id).
	typedError[*fsm.ActionBusyError](http.StatusConflict, "action_in_progress"),
	// A node that filled up between placement and apply.
	typedError[*fsm.NoCapacityError](http.StatusConflict, "no_capacity"),
	// A hosting account whose state refuses the request, with its code.
	func(err error) *api.Error {
		var hst *fsm.HostingStateError
		if !errors.As(err, &hst) {
			return nil
		}
		return api.NewError(http.StatusConflict, hst.Code, userMessage(hst))
	},
	// A write sent with If-Match (If-None-Match): changed after its read.
	typedError[*fsm.ChangedError](http.StatusPreconditionFailed, "precondition_failed"),
	// A name taken (a hosting account's username or domain, a custom
	// domain): the field it is in.
	func(err error) *api.Error {
		var fc *fsm.FieldConflictError
		if !errors.As(err, &fc) {
			return nil
		}
		return api.NewError(http.StatusConflict, "conflict", fmt.Sprintf("field %q: %s", fc.Field, fc.Msg))
	},
	// A suspended server refuses power-on, saying why.
	typedError[*fsm.SuspendedError](http.StatusConflict, "suspended"),
	// A command of a newer release while some coordinator still runs an
	// older one (a rolling upgrade not finished).
	typedError[*fsm.LevelError](http.StatusServiceUnavailable, "cluster_upgrading"),
}

// typedError answers an error that wraps an E with status and code, the
// E's text the message; nil for any other error.
func typedError[E error](status int, code string) func(error) *api.Error {
	return func(err error) *api.Error {
		var e E
		if !errors.As(err, &e) {
			return nil
		}
		return api.NewError(status, code, userMessage(e))
	}
}

// sentinelErrors answer the FSM's (and Raft's) sentinel errors, tried in
// order by errors.Is after typedErrors; msg "" is the error's own text.
var sentinelErrors = []struct {
	err    error
	status int
	code   string
	msg    string
}{
	{fsm.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{fsm.ErrConflict, http.StatusConflict, "conflict", ""},
	{fsm.ErrInsufficientFunds, http.StatusConflict, "insufficient_funds", ""},
	{fsm.ErrIdemMismatch, http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used with a different request (method, path or body) in the last 24 hours"},
	{fsm.ErrKeyEscalation, http.StatusForbidden, "key_escalation", ""},
	{fsm.ErrInvalid, http.StatusBadRequest, "invalid_request", ""},
	{raftnode.ErrNotLeader, http.StatusServiceUnavailable, "no_leader", "the cluster is electing a leader; retry shortly"},
}

// userMessage is the FSM error text, which names the resource but holds no secret.
func userMessage(err error) string { return err.Error() }
