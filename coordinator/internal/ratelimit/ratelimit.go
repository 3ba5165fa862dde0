// Package ratelimit is the per-key fixed-window request limiter behind the
// X-RateLimit-* headers. It lives in each coordinator's memory and counts the
// requests that coordinator serves: a follower forwards every /v1 request but a
// stale read (?consistency=stale) to the leader, so the leader counts all of
// them for the cluster, and each coordinator counts the stale reads it serves
// itself (README "Rate limits are counted where a request is served").
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
	mu  sync.Mutex
	m   map[string]*bucket
	gc  time.Time
}

type bucket struct {
	start time.Time
	n     int
}

// Decision is the outcome of one Allow call, with what the headers need.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int
	Reset     time.Time
}

// New returns a limiter using clock now (time.Now when nil).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, m: map[string]*bucket{}}
}

// Allow counts one request for key against limit per Window.
func (l *Limiter) Allow(key string, limit int) Decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.gc) > 2*Window {
		for k, b := range l.m {
			if now.Sub(b.start) >= Window {
				delete(l.m, k)
			}
		}
		l.gc = now
	}
	b := l.m[key]
	if b == nil || now.Sub(b.start) >= Window {
		b = &bucket{start: now.Truncate(time.Second)}
		l.m[key] = b
	}
	d := Decision{Limit: limit, Reset: b.start.Add(Window)}
	if b.n >= limit {
		return d
	}
	b.n++
	d.Allowed = true
	d.Remaining = limit - b.n
	return d
}
