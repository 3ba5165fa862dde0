package httpapi

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestLeaderMoveKeepsTheLeadersRequests: a request a follower forwards to the
// leader is not cut because another request, which read the leader's address
// just before it changed, was forwarded to the old address after it: only
// the leader's moving away ends a request in flight (leaderMoveGrace after).
// The request to the old address ends that way; then, with the leader gone
// elsewhere, so does the one to the former leader.
func TestLeaderMoveKeepsTheLeadersRequests(t *testing.T) {
	f := &forwarder{}
	lead := followLeader(f, "b:443")

	toLeader, done := f.untilLeaderMoves(context.Background(), "b:443")
	defer done()
	// Read "a:443" before b:443 led, here after the request above.
	toOld, doneOld := f.untilLeaderMoves(context.Background(), "a:443")
	defer doneOld()
	select {
	case <-toLeader.Done():
		t.Fatalf("a request in flight to the leader (b:443) was ended by a later request to a:443, which no longer leads")
	case <-time.After(leaderMoveGrace + time.Second):
	}
	select {
	case <-toOld.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("a request to a:443, which does not lead, still waits %s after", leaderMoveGrace+6*time.Second)
	}

	lead("c:443")
	endsAfterGrace(t, toLeader.Done(), "the request to the former leader b:443", "c:443 leads")
}

// endsAfterGrace checks that done is closed no earlier than leaderMoveGrace
// from now, when what happened, and within 5 s after it.
func endsAfterGrace(t *testing.T, done <-chan struct{}, request, what string) {
	t.Helper()
	start := time.Now()
	select {
	case <-done:
		if el := time.Since(start); el < leaderMoveGrace {
			t.Errorf("%s ended %s after %s, within the grace %s", request, el, what, leaderMoveGrace)
		}
	case <-time.After(leaderMoveGrace + 5*time.Second):
		t.Fatalf("%s still waits %s after %s", request, leaderMoveGrace+5*time.Second, what)
	}
}

// followLeader makes addr the leader f sees, until the returned lead names
// another ("": none).
func followLeader(f *forwarder, addr string) (lead func(addr string)) {
	var leader atomic.Pointer[string]
	lead = func(addr string) { leader.Store(&addr) }
	lead(addr)
	f.runs.leader = func() string { return *leader.Load() }
	return lead
}
