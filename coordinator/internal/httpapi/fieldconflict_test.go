package httpapi

import (
	"fmt"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// TestFieldConflictNamesField: a name taken (fsm.FieldConflictError, as the
// apply returns it or wrapped) is a 409 conflict naming its field on every
// route, not only on those that used to map it themselves (the custom
// domain PUT did not).
func TestFieldConflictNamesField(t *testing.T) {
	for _, err := range []error{
		&fsm.FieldConflictError{Field: "username", Msg: "username ada is taken"},
		fmt.Errorf("hosting order: %w", &fsm.FieldConflictError{Field: "username", Msg: "username ada is taken"}),
	} {
		ae, internal := toAPIError(err)
		if internal || ae.StatusCode != 409 || ae.Code != "conflict" || ae.Message != `field "username": username ada is taken` {
			t.Errorf("%v: %+v (internal %v), want a 409 conflict naming field \"username\"", err, ae, internal)
		}
	}
}
