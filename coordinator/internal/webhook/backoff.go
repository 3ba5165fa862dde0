package webhook

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
)

// Backoff is the retry schedule of one delivery chain: Initial, doubling per
// failed attempt, capped at Max, each delay spread by ±Jitter, until the next
// attempt would fall more than Window after the chain's first attempt.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Window  time.Duration
	Jitter  float64 // fraction, 0.1 = ±10 %
}

// DefaultBackoff is 1 m, 2 m, 4 m … 6 h for about a day (12 attempts).
var DefaultBackoff = Backoff{Initial: time.Minute, Max: 6 * time.Hour, Window: 24 * time.Hour, Jitter: 0.1}

// Delay is the nominal wait after failed attempt n (1-based), before jitter.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n; i++ {
		d *= 2
		if d >= b.Max {
			return b.Max
		}
	}
	if d > b.Max {
		d = b.Max
	}
	return d
}

// Next returns when attempt n+1 runs after attempt n failed at now, or false when
// the chain that started at chainStart is over. rnd is uniform in [0, 1).
func (b Backoff) Next(n int, chainStart, now time.Time, rnd float64) (time.Time, bool) {
	d := b.Delay(n)
	if b.Jitter > 0 {
		d += time.Duration((rnd*2 - 1) * b.Jitter * float64(d))
	}
	next := now.Add(d)
	if next.Sub(chainStart) > b.Window {
		return time.Time{}, false
	}
	return next, true
}

// DeliveryID is the stable id of the (event, subscription) pair: it sorts by the
// event's time and is the same on every coordinator.
func DeliveryID(eventID, webhookID string, eventTime time.Time) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + webhookID))
	return ids.Derived("dlv", eventTime, binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint16(h[8:10]))
}
