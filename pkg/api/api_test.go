package api

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestStatusOf: the status of the *Error an error wraps, however deep, and 0
// for no error or one that wraps no *Error.
func TestStatusOf(t *testing.T) {
	notFound := NewError(404, "not_found", "no such server")
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("dial tcp: connection refused"), 0},
		{context.DeadlineExceeded, 0},
		{notFound, 404},
		{fmt.Errorf("GET /v1/servers/x: %w", notFound), 404},
		{errors.Join(context.Canceled, NewError(503, "no_leader", "no leader")), 503},
	} {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
