package hlc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
)

// TestNowHeldToTheFloor: a clock hours behind the latest applied time
// gives times past it, in the next millisecond, so ids made at them sort
// after the ids of that millisecond; its own times then advance (1 ns a
// call) without running away from the floor, and it follows the wall
// clock again once that is past the floor.
func TestNowHeldToTheFloor(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 123456789, time.UTC)
	var wall, floor atomic.Int64
	wall.Store(base.Add(-3 * time.Hour).UnixNano())
	floor.Store(base.UnixNano())
	c := New(func() time.Time { return time.Unix(0, wall.Load()) }, func() time.Time { return time.Unix(0, floor.Load()) })
	c.mono = func() time.Duration { return 0 } // the wall clock's moves below are steps, not time passing

	first := c.Now()
	if want := base.Truncate(time.Millisecond).Add(time.Millisecond); !first.Equal(want) {
		t.Fatalf("first time: %s, want %s (the millisecond after the floor's)", first, want)
	}
	old := ids.New("tkt", base) // made by the old leader in the floor's millisecond
	prev, prevID := first, ids.New("tkt", first)
	if prevID <= old {
		t.Fatalf("id %s made at the clock sorts before the old leader's %s", prevID, old)
	}
	for i := 0; i < 1000; i++ {
		floor.Store(prev.UnixNano()) // its own entry applied
		wall.Add(int64(time.Millisecond))
		now := c.Now()
		if !now.After(prev) || now.Sub(first) > time.Millisecond {
			t.Fatalf("call %d: %s after %s (first %s): want later, within a millisecond of the first", i, now, prev, first)
		}
		id := ids.New("tkt", now)
		if id <= prevID {
			t.Fatalf("call %d: id %s sorts before the one made before it, %s", i, id, prevID)
		}
		prev, prevID = now, id
	}
	// Another coordinator's entry, later still: past it again.
	floor.Store(prev.Add(time.Minute).UnixNano())
	if now := c.Now(); !now.Equal(prev.Add(time.Minute).Truncate(time.Millisecond).Add(time.Millisecond)) {
		t.Fatalf("after a later foreign entry: %s", now)
	}
	// The wall clock past everything: it is the clock.
	w := base.Add(time.Hour)
	wall.Store(w.UnixNano())
	if now := c.Now(); !now.Equal(w) {
		t.Fatalf("wall clock past the floor: %s, want %s", now, w)
	}
}

// TestNowFollowsARightClock: on a leader whose clock is right, its own
// entries' times (the floor) never move the clock off the wall clock.
func TestNowFollowsARightClock(t *testing.T) {
	var floor atomic.Int64
	c := New(nil, func() time.Time { return time.Unix(0, floor.Load()) })
	for i := 0; i < 10000; i++ {
		now := c.Now()
		floor.Store(now.UnixNano())
		if ahead := time.Until(now); ahead > time.Microsecond {
			t.Fatalf("call %d: %s ahead of the wall clock", i, ahead)
		}
	}
	if New(nil, nil).Now().IsZero() {
		t.Fatal("a clock without a floor gives no time")
	}
}

// TestNowIgnoresATimeFarAhead: one entry made on a coordinator whose clock
// was a year ahead (the floor, kept across restarts and never moved back) or
// a wall clock that stepped back by a year after this clock gave a time
// does not hold every later id and command time a year in the future, a
// nanosecond a call: a floor or a last time more than MaxAhead past the
// wall clock is left out, and the clock is the wall clock again.
func TestNowIgnoresATimeFarAhead(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 123456789, time.UTC)
	var wall, floor atomic.Int64
	wall.Store(base.UnixNano())
	floor.Store(base.AddDate(1, 0, 0).UnixNano()) // the bad entry
	c := New(func() time.Time { return time.Unix(0, wall.Load()) }, func() time.Time { return time.Unix(0, floor.Load()) })
	for i := 0; i < 3; i++ {
		w := base.Add(time.Duration(i) * time.Second)
		wall.Store(w.UnixNano())
		if now := c.Now(); !now.Equal(w) {
			t.Fatalf("call %d, floor a year ahead: %s, want the wall clock %s", i, now, w)
		}
	}
	// A floor within MaxAhead is still kept to.
	near := base.Add(time.Second + MaxAhead - time.Minute)
	floor.Store(near.UnixNano())
	if now, want := c.Now(), near.Truncate(time.Millisecond).Add(time.Millisecond); !now.Equal(want) {
		t.Fatalf("floor within MaxAhead: %s, want %s", now, want)
	}

	// The wall clock a year ahead, then set right.
	floor.Store(0)
	c = New(func() time.Time { return time.Unix(0, wall.Load()) }, func() time.Time { return time.Unix(0, floor.Load()) })
	wall.Store(base.AddDate(1, 0, 0).UnixNano())
	c.Now()
	wall.Store(base.UnixNano())
	if now := c.Now(); !now.Equal(base) {
		t.Fatalf("wall clock set back a year: %s, want the wall clock %s", now, base)
	}
}

// fakeClock is a wall clock and a monotonic clock a test moves: pass moves
// both (time passing), step only the wall clock (one set forward or back).
type fakeClock struct{ wall, mono atomic.Int64 }

func (f *fakeClock) pass(d time.Duration) { f.wall.Add(int64(d)); f.mono.Add(int64(d)) }
func (f *fakeClock) step(d time.Duration) { f.wall.Add(int64(d)) }

func (f *fakeClock) clock(floor func() time.Time) *Clock {
	c := New(func() time.Time { return time.Unix(0, f.wall.Load()) }, floor)
	c.mono = func() time.Duration { return time.Duration(f.mono.Load()) }
	return c
}

// TestNowRunsOnFromTheFloor: on a leader whose wall clock is 3 h behind
// the latest applied entry's time, the clock starts past that entry and
// then advances at half the rate time passes (10 min later it gives a time
// 5 min on),
// not a nanosecond a call until the wall clock catches up; its own entries
// (the floor it then has) do not push it further. A wall clock set
// forward, still behind, does not move it (the time passed is the
// monotonic clock's); set back, it runs on; set past it, the wall clock is
// the clock again.
func TestNowRunsOnFromTheFloor(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 123456789, time.UTC)
	var fc fakeClock
	var floor atomic.Int64
	fc.wall.Store(base.Add(-3 * time.Hour).UnixNano())
	floor.Store(base.UnixNano())
	c := fc.clock(func() time.Time { return time.Unix(0, floor.Load()) })

	first := c.Now()
	if want := base.Truncate(time.Millisecond).Add(time.Millisecond); !first.Equal(want) {
		t.Fatalf("first time: %s, want %s (the millisecond after the floor's)", first, want)
	}
	floor.Store(first.UnixNano()) // its own entry applied
	fc.pass(10 * time.Minute)
	if now, want := c.Now(), first.Add(5*time.Minute); !now.Equal(want) {
		t.Fatalf("10 min later: %s (%s after the first), want %s", now, now.Sub(first), want)
	}
	passed := 5 * time.Minute // on the clock: half the time passed
	for i := 0; i < 100; i++ {
		now := c.Now()
		floor.Store(now.UnixNano())
		fc.pass(2 * time.Second)
		passed += time.Second
		if now, want := c.Now(), first.Add(passed); !now.Equal(want) {
			t.Fatalf("call %d, %s after the first: %s, want %s", i, passed, now, want)
		}
	}
	prev := first.Add(passed)

	fc.step(time.Hour) // set forward, still 2 h behind
	if now := c.Now(); !now.Equal(prev.Add(time.Nanosecond)) {
		t.Fatalf("wall clock set forward an hour: %s, want %s (the time passed is the monotonic clock's)", now, prev.Add(time.Nanosecond))
	}
	fc.step(-time.Hour) // set back
	fc.pass(2 * time.Minute)
	if now := c.Now(); !now.Equal(prev.Add(time.Minute)) {
		t.Fatalf("wall clock set back an hour, two minutes later: %s, want %s", now, prev.Add(time.Minute))
	}

	fc.step(4 * time.Hour) // past everything
	w := time.Unix(0, fc.wall.Load()).UTC()
	if now := c.Now(); !now.Equal(w) {
		t.Fatalf("wall clock past the clock: %s, want %s", now, w)
	}
	fc.pass(time.Minute)
	if now, want := c.Now(), w.Add(time.Minute); !now.Equal(want) {
		t.Fatalf("then a minute later: %s, want the wall clock %s", now, want)
	}
}

// TestNowRunsOnAfterItsOwnClockStepsBack: a leader whose own wall clock is
// set back 10 min, below the times it gave (its own entries, the floor),
// runs on from the last of them at half the rate time passes, as it runs on
// from another coordinator's later entry, not a nanosecond a call: 2 min
// later its times are 1 min on, and the wall clock is the clock again once
// it has caught up (after twice the step).
func TestNowRunsOnAfterItsOwnClockStepsBack(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	var fc fakeClock
	var floor atomic.Int64
	fc.wall.Store(base.UnixNano())
	c := fc.clock(func() time.Time { return time.Unix(0, floor.Load()) })
	var prev time.Time
	for i := 0; i < 10; i++ { // a right clock, its own entries applied
		prev = c.Now()
		floor.Store(prev.UnixNano())
		fc.pass(time.Second)
	}
	prev = c.Now()
	floor.Store(prev.UnixNano())
	fc.step(-10 * time.Minute)
	if now := c.Now(); !now.Equal(prev.Add(time.Nanosecond)) {
		t.Fatalf("wall clock set back 10 min: %s, want %s (just past the last time given)", now, prev.Add(time.Nanosecond))
	}
	fc.pass(2 * time.Minute)
	if now, want := c.Now(), prev.Add(time.Nanosecond+time.Minute); !now.Equal(want) {
		t.Fatalf("2 min after the wall clock was set back 10 min: %s (%s past the last time given before), want %s", now, now.Sub(prev), want)
	}
	fc.pass(20 * time.Minute)
	w := time.Unix(0, fc.wall.Load()).UTC()
	if now := c.Now(); !now.Equal(w) {
		t.Fatalf("22 min after the wall clock was set back 10 min: %s, want the wall clock %s", now, w)
	}
}

// TestNowRunsOnNoFurtherThanMaxAhead: a wall clock set back by more than
// MaxAhead below the time the clock runs on from leaves that time out, as
// it leaves out a floor that far ahead.
func TestNowRunsOnNoFurtherThanMaxAhead(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	var fc fakeClock
	fc.wall.Store(base.Add(-3 * time.Hour).UnixNano())
	c := fc.clock(func() time.Time { return base })
	if now := c.Now(); !now.Equal(base.Add(time.Millisecond)) {
		t.Fatalf("first time: %s", now)
	}
	fc.step(-2 * MaxAhead)
	fc.pass(time.Second)
	w := time.Unix(0, fc.wall.Load()).UTC()
	if now := c.Now(); !now.Equal(w) {
		t.Fatalf("wall clock set back two days: %s, want the wall clock %s", now, w)
	}
}

// TestDeadlineFallsDueAfterItsDuration: an action opened at the last
// applied entry's time with a deadline an hour on falls due two hours later
// (the clock runs on at half the rate) on a leader whose wall clock is 3 h
// behind, with no entry applied since, not once that wall clock has passed
// the deadline (4 h).
func TestDeadlineFallsDueAfterItsDuration(t *testing.T) {
	opened := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	deadline := opened.Add(time.Hour)
	var fc fakeClock
	fc.wall.Store(opened.Add(-3 * time.Hour).UnixNano())
	c := fc.clock(func() time.Time { return opened })
	if now := c.Now(); now.After(deadline) {
		t.Fatalf("at once: %s, past the deadline %s", now, deadline)
	}
	fc.pass(119 * time.Minute)
	if now := c.Now(); now.After(deadline) {
		t.Fatalf("119 min on: %s, past the deadline %s", now, deadline)
	}
	fc.pass(2 * time.Minute)
	if now := c.Now(); !now.After(deadline) {
		t.Fatalf("121 min on: %s, not past the deadline %s", now, deadline)
	}
}

// TestNowConcurrentCallsGetDistinctTimes: calls made at once never get
// the same time (ids made at them stay distinct and ordered), and each
// caller's times increase, on a right clock, on one held to a floor ahead
// (the 1 ns steps) and on one running on from it.
func TestNowConcurrentCallsGetDistinctTimes(t *testing.T) {
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	for name, c := range map[string]*Clock{
		"right":  New(nil, nil),
		"held":   New(func() time.Time { return time.Unix(0, 0) }, func() time.Time { return time.Unix(3600, 0) }),
		"behind": New(nil, ahead),
	} {
		const callers, calls = 4, 5000
		got := make([][]int64, callers)
		var wg sync.WaitGroup
		for g := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < calls; i++ {
					got[g] = append(got[g], c.Now().UnixNano())
				}
			}()
		}
		wg.Wait()
		seen := make(map[int64]bool, callers*calls)
		for g, ts := range got {
			for i, ns := range ts {
				if seen[ns] {
					t.Fatalf("%s: caller %d, call %d: time %d given twice", name, g, i, ns)
				}
				seen[ns] = true
				if i > 0 && ns <= ts[i-1] {
					t.Fatalf("%s: caller %d, call %d: %d not after %d", name, g, i, ns, ts[i-1])
				}
			}
		}
	}
}

// BenchmarkNow: hlc.Now on a leader whose clock is right (its own entries
// the floor) and on one running on ahead of its wall clock, beside
// time.Now, one goroutine and parallel; compare within one run.
func BenchmarkNow(b *testing.B) {
	var floor atomic.Int64
	right := New(nil, func() time.Time { return time.Unix(0, floor.Load()) })
	behind := New(func() time.Time { return time.Now().Add(-3 * time.Hour) }, func() time.Time { return time.Unix(0, floor.Load()) })
	for _, bc := range []struct {
		name string
		now  func() time.Time
	}{{"time.Now", time.Now}, {"right", right.Now}, {"behind", behind.Now}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				floor.Store(bc.now().UnixNano())
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					floor.Store(bc.now().UnixNano())
				}
			})
		})
	}
}

// TestNowCatchesUpWithARightClock: a leader whose clock is right takes over
// from one whose clock ran 10 min ahead (the floor, its last entry, is
// 10 min past this wall clock). Its times start past the floor and move on,
// and the skew is gone after twice its size: from then on the clock is the
// wall clock again, not 10 min ahead of it for good (every entry it makes
// then carries the skew on to the next leader, and on across restarts).
func TestNowCatchesUpWithARightClock(t *testing.T) {
	base := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	var fc fakeClock
	var floor atomic.Int64
	fc.wall.Store(base.UnixNano())
	floor.Store(base.Add(10 * time.Minute).UnixNano()) // the ex-leader's last entry
	c := fc.clock(func() time.Time { return time.Unix(0, floor.Load()) })
	prev := c.Now()
	if want := base.Add(10*time.Minute + time.Millisecond); !prev.Equal(want) {
		t.Fatalf("first time: %s, want %s (past the floor)", prev, want)
	}
	for passed := time.Duration(0); passed < 30*time.Minute; passed += 10 * time.Second {
		floor.Store(prev.UnixNano()) // its own entry applied
		fc.pass(10 * time.Second)
		now := c.Now()
		if !now.After(prev) {
			t.Fatalf("%s on: %s, not after %s", passed, now, prev)
		}
		prev = now
	}
	w := time.Unix(0, fc.wall.Load()).UTC()
	if !prev.Equal(w) {
		t.Fatalf("30 min after a floor 10 min ahead: %s, want the wall clock %s (still %s ahead)", prev, w, prev.Sub(w))
	}
}
