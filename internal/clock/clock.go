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

// Every calls fn at once and then every d of the wall clock until ctx is
// done (EveryOn with Real). The leader jobs' polling loops run on it.
func Every(ctx context.Context, d time.Duration, fn func()) { EveryOn(ctx, Real{}, d, fn) }

// EveryOn calls fn at once and then each time d has passed on c since the
// previous call began, until ctx is done: a call that runs longer than d is
// followed by the next at once (one at most, as a time.Ticker keeps one
// tick), not by one per period missed. With a fake clock (clocktest) the
// next call's wait is registered before fn runs, so a test that sees fn's
// effect can advance the clock to the next call.
func EveryOn(ctx context.Context, c Clock, d time.Duration, fn func()) {
	for {
		next := c.After(d)
		fn()
		select {
		case <-ctx.Done():
			return
		case <-next:
		}
	}
}
