// Package hlc is the clock a coordinator makes ids and command times at: the
// wall clock, never earlier than what the entries it has applied carry (a
// hybrid logical clock's floor), and running on from that floor at half the
// rate time passes while the wall clock is behind it.
//
// Ids (coordinator/internal/ids) start with the millisecond they were made
// at, and lists sort by id, newest first. A leader makes them, and the time
// each command carries, from its own clock before it proposes; a new leader
// whose clock is behind the old one's would make ids that sort before the
// old leader's and times earlier than the ones already stored (a usage
// report refused as older than the figure it follows). The FSM keeps the
// latest time of the entries it has applied (fsm.FSM.AppliedAt), and a new
// leader has applied every earlier entry before it serves (the barrier of
// httpapi's leader readiness), so its clock starts past the old leader's.
//
// From there it runs on at half the rate time passes (measured on the
// monotonic clock) until the wall clock catches up with it, after twice the
// skew. Neither clock is known to be the right one: held at the floor (a
// nanosecond a call), deadlines and not-before times set on it (the
// dispatcher's) fell due only once the wall clock had caught up, late by
// the whole skew, on a leader whose clock is behind; run on at the full
// rate, a floor ahead because an earlier leader's clock was ahead would keep
// the cluster's times that far ahead of every later leader's wall clock for
// good, even after that clock was set right (every leader's first entries
// carry the skew on). At half the rate a deadline falls due after at most
// twice its duration, and the skew is gone after twice its size.
//
// A leader's own wall clock set back below a time it gave is the same case
// (its own entries are the floor then): it runs on from that time at half
// the rate too, not a nanosecond a call, which would stop the cluster's
// times for as long as the step and make every deadline set meanwhile late
// by it.
package hlc

import (
	"sync"
	"time"
)

// MaxAhead is how far past the wall clock a floor or the last time given
// may hold the clock. A time further ahead is not another coordinator's
// clock skew but a wrong clock (an entry made while one was a year ahead, a
// wall clock set back): kept to, it would hold every later id and command
// time that far in the future, a nanosecond a call, and the floor is kept
// across restarts and never moved back. It is left out instead.
const MaxAhead = 24 * time.Hour

// Clock is the wall clock held to the floor of the applied entries' times.
// It is safe for concurrent use.
type Clock struct {
	wall  func() time.Time
	floor func() time.Time
	// mono is the time passed since New, on the monotonic clock: a wall
	// clock set forward or back does not move it.
	mono func() time.Duration
	mu   sync.Mutex
	// issued is the last time Now returned (unix ns; 0: none yet).
	issued int64
	// ahead is the time (unix ns) Now gave at aheadAt (mono) when it last
	// moved past the wall clock to a later applied entry; 0: none. While
	// the wall clock is behind, Now runs on from it at half the rate time
	// passes (runOn).
	ahead   int64
	aheadAt time.Duration
}

// New returns the clock of wall (nil: time.Now) held to floor, the latest
// time of an applied entry (fsm.FSM.AppliedAt; the zero time when none).
func New(wall, floor func() time.Time) *Clock {
	if wall == nil {
		wall = time.Now
	}
	start := time.Now()
	return &Clock{wall: wall, floor: floor, mono: func() time.Duration { return time.Since(start) }}
}

// Now is the time to make ids and a command's time at, in UTC:
//   - the wall clock, when it is past every applied entry's time and every
//     time Now returned before;
//   - when an applied entry carries a time later than any this clock gave
//     (an entry of another coordinator, whose clock runs ahead of this
//     one's) and this clock is not past that entry's millisecond: the
//     start of the next millisecond, so the ids made at it sort after that
//     entry's, which were made in its millisecond at the latest;
//   - after that, while the wall clock is behind: that time plus half the
//     time passed since (on the monotonic clock), so times move on a
//     leader whose clock is behind (a deadline an hour on falls due two
//     hours later at the latest) and the wall clock catches up with them;
//   - otherwise (the clock at or behind the last time it gave, its own
//     entries' times): 1 ns past that time, so two reports of one account
//     made one after the other carry increasing times, and ids made in one
//     millisecond by one process sort in the order they were made
//     (ids.New). When the wall clock is behind that time (set back), the
//     clock runs on from it as from a later entry, above.
//
// Its own entries' times never move it past the wall clock by more than the
// nanoseconds above, so a leader whose clock is right keeps to it. A floor,
// last time or running-on time more than MaxAhead past the wall clock is
// left out.
func (c *Clock) Now() time.Time {
	w := c.wall()
	var f int64
	if c.floor != nil {
		if ft := c.floor(); !ft.IsZero() {
			f = ft.UnixNano()
		}
	}
	wt := w.UnixNano()
	limit := wt + int64(MaxAhead)
	if f > limit {
		f = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.issued > limit {
		c.issued = 0
	}
	t := wt
	if c.ahead != 0 {
		if on := c.ahead + runOn(c.mono()-c.aheadAt); on > wt && on <= limit {
			t = on
		} else {
			c.ahead = 0 // the wall clock caught up (or stepped far back)
		}
	}
	if f > c.issued && msOf(t) <= msOf(f) {
		t = (msOf(f) + 1) * int64(time.Millisecond)
		c.ahead, c.aheadAt = t, c.mono()
	}
	if t <= c.issued {
		t = c.issued + 1
		if wt < c.issued && c.ahead == 0 {
			// The wall clock is behind a time this clock gave (set back):
			// run on from here, as from a later applied entry.
			c.ahead, c.aheadAt = t, c.mono()
		}
	}
	c.issued = t
	if t == wt {
		return w.UTC()
	}
	return time.Unix(0, t).UTC()
}

// runOn is how far the clock runs on from a time past the wall clock when d
// has passed since: half of d (the package doc says why not all of it).
func runOn(d time.Duration) int64 { return int64(d / 2) }

// msOf is the millisecond of unix ns t (floored, as time.UnixMilli).
func msOf(t int64) int64 {
	ms := t / int64(time.Millisecond)
	if t < 0 && t%int64(time.Millisecond) != 0 {
		ms--
	}
	return ms
}
