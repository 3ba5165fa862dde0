package fsm

import (
	"errors"
	"testing"
)

// TestSuspendedErrorText: a suspended server's refusal names a server unless
// Resource names what else is suspended; either is an ErrConflict.
func TestSuspendedErrorText(t *testing.T) {
	for _, c := range []struct {
		err  *SuspendedError
		want string
	}{
		{&SuspendedError{ServerID: "srv_1", Reason: "unpaid"}, "server srv_1 is suspended: unpaid"},
		{&SuspendedError{ServerID: "hst_1", Reason: "abuse", Resource: "hosting account"}, "hosting account hst_1 is suspended: abuse"},
	} {
		if got := c.err.Error(); got != c.want || !errors.Is(c.err, ErrConflict) {
			t.Errorf("%+v: %q (conflict %v), want %q", c.err, got, errors.Is(c.err, ErrConflict), c.want)
		}
	}
}
