package httpapi

import (
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// TestLeaderAPIAddrFollowsRegistration: the leader's address a follower
// forwards to is cached, and the cache follows the leader's record when it
// registers again with another address (a coordinator restarted with a new
// --advertise address).
func TestLeaderAPIAddrFollowsRegistration(t *testing.T) {
	w := newWHAPI(t)
	if got := w.a.LeaderAPIAddr(); got != "" {
		t.Fatalf("before n1 registered: %q, want empty", got)
	}
	for _, addr := range []string{"10.0.0.1:8443", "10.0.0.2:8443"} {
		w.apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: "n1", APIAddr: addr})
		for i := 0; i < 3; i++ { // the second and third answers come from the cache
			if got := w.a.LeaderAPIAddr(); got != addr {
				t.Fatalf("after n1 registered %s: LeaderAPIAddr = %q", addr, got)
			}
		}
	}
}
