// Package clock is the one time-source abstraction of the coordinator and the
// agent: code that waits or stamps times takes a Clock, so tests can run hours
// of back-off in milliseconds (clocktest.Fake).
package clock

import (
	"context"
	"time"
)

// Clock is a time source.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// After implements Clock.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Every calls fn at once and then at each tick of a wall-clock ticker of
// period d until ctx is done; a tick that comes while fn runs is kept (one at
// most, as time.Ticker keeps it) and a later one dropped. The leader jobs'
// polling loops run on it.
func Every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
