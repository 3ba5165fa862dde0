// Package ratelimit is the per-key fixed-window request limiter behind the
// X-RateLimit-* headers (README "A key's rate limit is one budget").
//
// The leader's Limiter is the one counter of a key's window for the cluster.
// A follower forwards every /v1 request but a stale read (?consistency=stale)
// to the leader, which counts it with Allow. A follower serving stale reads
// itself spends tokens it leased from the leader's window (Leases; the leader
// debits what it grants with Lease, at most LeaseSize of what is left): the
// cluster never serves more than the key's limit in one window of the leader.
// Tokens a follower leased and did not spend before the window ends are lost,
// so a key can be limited early, never late, by at most the tokens the
// followers hold unspent (each at most its last lease plus half the one
// before). A follower that cannot reach a leader serves stale reads on a
// window of its own at Share of the limit (Leases).
//
// The counts live in memory: a leader change starts every key's window afresh
// on the new leader, and followers drop what they leased from the old one.
//
// Every coordinator also counts, in a Limiter of its own made by NewCapped,
// the per-address budgets of requests without a valid key (httpapi
// iplimit.go, --ip-rate-limit; the OAuth endpoints' included): each
// coordinator for what it answers itself, never leased. That table has a
// size, as a client can spray requests from as many addresses as it holds.
package ratelimit

import (
	"sync"
	"time"
)

// Window is the length of one counting window.
const Window = time.Minute

// Limiter counts requests per key per window.
type Limiter struct {
	now func() time.Time
	max int // the most windows held (0: no bound)
	mu  sync.Mutex
	m   map[string]*bucket
	// The windows in m, oldest start first (a window that starts again
	// moves to the back), so that the ended ones are dropped from the front
	// as new ones come.
	head, tail *bucket
	// over is the one window the keys a full table has no room for share
	// (NewCapped), and overflowed counts the requests counted in it.
	over       bucket
	overflowed uint64
}

type bucket struct {
	start      time.Time
	n          int
	key        string
	prev, next *bucket
}

// Decision is the outcome of one Allow call, with what the headers need.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int
	Reset     time.Time
}

// New returns a limiter using clock now (time.Now when nil), with no bound
// on the windows it holds: the keys' windows, one per key that made a request
// in the last minute (a key is a credential, so there are no more than
// the live ones; a running window is never dropped).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, m: map[string]*bucket{}}
}

// NewCapped is a limiter that holds at most size windows (size >= 1), for
// keys anyone can make up (client addresses): memory stays bounded however
// many a client sprays requests from. Ended windows are dropped first,
// oldest first, as new keys come. A running window is never dropped, since
// its key would come back to a fresh budget: while the table is full of
// running windows, a key it holds no window for is counted in one window
// that all such keys share, at the same limit, until the oldest window ends.
// So a full table limits a newcomer early, never a key late.
func NewCapped(now func() time.Time, size int) *Limiter {
	l := New(now)
	l.max = max(size, 1)
	return l
}

// Len is the number of windows held (ended ones not yet dropped included).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Overflowed is the number of requests counted in the shared window of a
// full table (NewCapped) since the limiter was made.
func (l *Limiter) Overflowed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overflowed
}

func (l *Limiter) pushBack(b *bucket) {
	b.prev, b.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = b
	} else {
		l.head = b
	}
	l.tail = b
}

func (l *Limiter) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		l.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// bucketLocked is key's bucket for the window holding now, started when
// create (nil when there is none and !create): the shared window when a full
// capped table has no room for key. l.mu is held.
func (l *Limiter) bucketLocked(key string, now time.Time, create bool) *bucket {
	// Drop the ended windows at the front (each once: O(1) a call amortized).
	for l.head != nil && now.Sub(l.head.start) >= Window {
		b := l.head
		l.unlink(b)
		delete(l.m, b.key)
	}
	b := l.m[key]
	if b != nil && now.Sub(b.start) < Window {
		return b
	}
	full := b == nil && l.max > 0 && len(l.m) >= l.max
	switch {
	case full && now.Sub(l.over.start) < Window:
		if create {
			l.overflowed++
		}
		return &l.over
	case !create:
		return nil
	case full:
		l.over = bucket{start: now.Truncate(time.Second)}
		l.overflowed++
		return &l.over
	case b != nil: // ended, behind a younger window (the clock stepped back)
		l.unlink(b)
		b.start, b.n = now.Truncate(time.Second), 0
	default:
		b = &bucket{start: now.Truncate(time.Second), key: key}
		l.m[key] = b
	}
	l.pushBack(b)
	return b
}

// Allow counts one request for key against limit per Window.
func (l *Limiter) Allow(key string, limit int) Decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now, true)
	d := Decision{Limit: limit, Reset: b.start.Add(Window)}
	if b.n >= limit {
		return d
	}
	b.n++
	d.Allowed = true
	d.Remaining = limit - b.n
	return d
}

// Peek is key's window as Allow would count it now (limit per Window),
// without counting anything or starting a window.
func (l *Limiter) Peek(key string, limit int) Decision {
	g := l.Take(key, limit, 0)
	return Decision{Allowed: g.Remaining > 0, Limit: limit, Remaining: g.Remaining, Reset: g.Reset}
}

// Grant is what the leader answers a follower's lease request.
type Grant struct {
	Granted   int           // tokens taken from the window for the follower
	Remaining int           // the window's remaining count after the grant
	Reset     time.Time     // the window's end, on the leader's clock
	TTL       time.Duration // Reset less the leader's now: the tokens' life
}

// Take debits up to n requests from key's window (limit per Window) at once:
// Granted is min(n, what remains). n == 0 only reports (and starts no window).
func (l *Limiter) Take(key string, limit, n int) Grant {
	return l.take(key, limit, func(int) int { return n })
}

// Lease is Take for a follower that asks for want tokens while holders
// coordinators share the key: it grants at most LeaseSize(remaining, holders).
func (l *Limiter) Lease(key string, limit, want, holders int) Grant {
	return l.take(key, limit, func(remaining int) int { return min(want, LeaseSize(remaining, holders)) })
}

func (l *Limiter) take(key string, limit int, size func(remaining int) int) Grant {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := size(max(limit, 0))
	b := l.bucketLocked(key, now, n > 0)
	if b == nil {
		return Grant{Remaining: max(limit, 0), Reset: now.Add(Window), TTL: Window}
	}
	remaining := max(limit-b.n, 0)
	n = min(max(size(remaining), 0), remaining)
	b.n += n
	reset := b.start.Add(Window)
	return Grant{Granted: n, Remaining: remaining - n, Reset: reset, TTL: reset.Sub(now)}
}

// LeaseSize is the most a follower is granted at once when remaining requests
// are left in a key's window shared by holders coordinators: a fraction small
// enough that the tokens the followers hold unspent (lost at the window's end)
// stay a small part of the budget, and 1 near its end.
func LeaseSize(remaining, holders int) int {
	if remaining <= 0 {
		return 0
	}
	return max(1, remaining/(2*max(holders, 1)))
}

// Share is a coordinator's limit for a key while it cannot reach a leader:
// limit over the voters (at least 1), so that voters coordinators serving on
// their own serve about the key's limit in all.
func Share(limit, voters int) int {
	return max(1, limit/max(voters, 1))
}
