package fsm

import (
	"errors"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestLiveErr: liveServer's and liveHosting's refusal of an ended resource
// is a conflict naming it, exactly as each wrote it before they shared
// liveErr; a failed load keeps its own error; a live one loads.
func TestLiveErr(t *testing.T) {
	for _, c := range []struct {
		noun, id, state, want string
	}{
		{"server", "srv_1", "terminated", "conflict: server srv_1 is terminated"},
		{"hosting account", "hst_1", "deleted", "conflict: hosting account hst_1 is deleted"},
	} {
		err := liveErr(nil, true, c.noun, c.id, c.state)
		if !errors.Is(err, ErrConflict) || err.Error() != c.want {
			t.Errorf("ended %s: %v, want ErrConflict %q", c.noun, err, c.want)
		}
		if err := liveErr(nil, false, c.noun, c.id, c.state); err != nil {
			t.Errorf("live %s: %v", c.noun, err)
		}
		for _, ended := range []bool{false, true} {
			if err := liveErr(store.ErrNotFound, ended, c.noun, c.id, c.state); err != store.ErrNotFound {
				t.Errorf("a %s that did not load (ended %v): %v, want the load's error", c.noun, ended, err)
			}
		}
	}
}
