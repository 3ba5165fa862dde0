package httpapi

import (
	"context"
	"testing"
	"time"
)

// TestLeaderLostEndsForwardedRequests: a follower cut off from the leader
// stops knowing any leader (it stands for election) and hears nothing more
// from the old one, whose answers are lost in the cut: a request it forwarded
// before ends once no leader has been known for leaderMoveGrace, as one does
// after another coordinator leads, not after the proxy's 30 s. A leader
// unknown for less (a missed heartbeat, then the same leader again) cuts
// nothing.
func TestLeaderLostEndsForwardedRequests(t *testing.T) {
	f := &forwarder{}
	lead := followLeader(f, "b:443")

	// A blip: no leader for less than the grace, then b:443 again.
	blip, doneBlip := f.untilLeaderMoves(context.Background(), "b:443")
	defer doneBlip()
	lead("")
	time.Sleep(leaderMoveGrace / 2)
	lead("b:443")
	select {
	case <-blip.Done():
		t.Fatalf("a request to b:443 was ended by %s without a leader, after which b:443 led again", leaderMoveGrace/2)
	case <-time.After(leaderMoveGrace + time.Second):
	}

	// Cut off: no leader from now on.
	lead("")
	endsAfterGrace(t, blip.Done(), "the request to b:443", "this follower lost its leader")
}
