// Package clocktest holds the manually advanced clock tests inject. Only test
// files import it.
package clocktest

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Fake is a manually advanced clock (a clock.Clock).
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a clock stopped at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now implements clock.Clock.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After implements clock.Clock.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward and fires the waiters that became due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.Slice(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// Offset is the wall clock plus an offset the test moves forward (to expire
// codes and tokens, or reach a renewal date) while the code under test still
// waits in real time. The zero Offset is the wall clock; it is safe for
// concurrent use.
type Offset struct{ d atomic.Int64 }

// Now is the wall clock plus the offset.
func (c *Offset) Now() time.Time { return time.Now().Add(time.Duration(c.d.Load())) }

// Advance moves the clock forward by d.
func (c *Offset) Advance(d time.Duration) { c.d.Add(int64(d)) }
