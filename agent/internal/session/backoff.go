package session

import (
	"math/rand/v2"
	"time"
)

// Backoff is exponential back-off with jitter: attempt n waits a random time
// in [d/2, d], d = min(Max, Min·2ⁿ), so a fleet of agents does not reconnect in
// lock-step after a leader change.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a number in [0, 1); default math/rand/v2.
	Rand func() float64
}

// DefaultBackoff starts at 200 ms and stays under 30 s.
var DefaultBackoff = Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second}

// Delay is the wait before retry number attempt (0-based).
func (b Backoff) Delay(attempt int) time.Duration {
	if b.Min <= 0 {
		b.Min = DefaultBackoff.Min
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d/2))
}
