package hosting

import (
	"context"
	"testing"
	"time"
)

// TestResultWalkWithoutAFigureIsWhole: an action's result reports the
// account's usage (siteBytes), which the coordinator writes over what it
// holds. The walk is bounded only when the node has a figure of its own to
// give instead: on a slow disk, right after the agent started (no figure
// yet), the result waits for the whole walk rather than reporting 0 over
// the coordinator's good figure; once it has a figure, a walk past the bound
// gives that figure.
func TestResultWalkWithoutAFigureIsWhole(t *testing.T) {
	n := newRootedNode(t)
	n.resultWalkBound = 20 * time.Millisecond
	size := uint64(7 << 20)
	// A slow disk: a walk takes 200 ms, ten times the bound.
	n.walk = func(ctx context.Context, _ string) (uint64, error) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
			return size, nil
		}
	}
	if b := n.siteBytes("ada"); b != size {
		t.Fatalf("first result since the agent started, on a slow disk: %d bytes, want the whole walk's %d", b, size)
	}
	size = 9 << 20
	if b := n.siteBytes("ada"); b != 7<<20 {
		t.Fatalf("a result whose walk ran past the bound: %d bytes, want the last figure %d", b, 7<<20)
	}
}
