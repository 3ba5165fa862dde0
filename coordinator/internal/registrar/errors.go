package registrar

import (
	"errors"
	"fmt"
)

// Kind classifies a registry error by what the caller should do about it;
// see the package documentation.
type Kind int

// The kinds of registry error.
const (
	// KindUnavailable: not applied; the registry was not reached or could
	// not process the command. Retry later with the same ClTRID, or roll
	// back.
	KindUnavailable Kind = iota + 1
	// KindUnknown: sent, no answer; may have been applied. Repeat with the
	// same ClTRID to learn the outcome.
	KindUnknown
	// KindRefused: the registry refused; Reason says why. Roll back.
	KindRefused
	// KindExists: the object exists already (EPP 2302).
	KindExists
	// KindNotFound: the object does not exist (EPP 2303).
	KindNotFound
)

func (k Kind) String() string {
	switch k {
	case KindUnavailable:
		return "unavailable"
	case KindUnknown:
		return "unknown outcome"
	case KindRefused:
		return "refused"
	case KindExists:
		return "exists"
	case KindNotFound:
		return "not found"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Sentinels for errors.Is: errors.Is(err, ErrRefused) is true for every
// *Error of KindRefused.
var (
	ErrUnavailable = &Error{Kind: KindUnavailable}
	ErrUnknown     = &Error{Kind: KindUnknown}
	ErrRefused     = &Error{Kind: KindRefused}
	ErrExists      = &Error{Kind: KindExists}
	ErrNotFound    = &Error{Kind: KindNotFound}
)

// Error is a registry error.
type Error struct {
	Kind Kind
	// Op is the operation ("domain:create", "contact:update", "connect").
	Op string
	// Object is the domain name or contact id the call was about.
	Object string
	// Code is the registry's result code (EPP 2xxx), 0 when the registry
	// did not answer.
	Code int
	// Reason is the registry's message and reason, safe to show a customer
	// (never an auth code).
	Reason string
	// ClTRID and SvTRID identify the command when the registry answered.
	ClTRID, SvTRID string
	// Err is the underlying cause (a network error), if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Object != "" {
		msg += " " + e.Object
	}
	if msg != "" {
		msg += ": "
	}
	msg += e.Kind.String()
	if e.Code != 0 {
		msg += fmt.Sprintf(" (%d)", e.Code)
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches a sentinel of the same Kind (a sentinel has no Op).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Op == "" && t.Code == 0 && t.Err == nil {
		return t.Kind == e.Kind
	}
	return t == e
}

// KindOf returns the Kind of err's *Error, or 0 when err is nil or not a
// registry error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Transient reports whether retrying the same call (same ClTRID) later may
// succeed: KindUnavailable and KindUnknown.
func Transient(err error) bool {
	k := KindOf(err)
	return k == KindUnavailable || k == KindUnknown
}

// Definite reports whether err is a definite answer that the change was not
// applied (every kind but KindUnknown): the caller may roll back.
func Definite(err error) bool {
	k := KindOf(err)
	return k != 0 && k != KindUnknown
}
