package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Fetch asks the leader for want tokens of key's window (limit per Window):
// the leader's Limiter.Lease. want == 0 only asks for the window's state.
type Fetch func(ctx context.Context, key string, limit, want int) (Grant, error)

// ErrNoLeader is what a Fetch answers when there is no leader to ask.
var ErrNoLeader = errors.New("ratelimit: no leader to lease from")

// Leases is a follower's side of the shared window: the stale reads it serves
// spend tokens leased from the leader (Fetch), so they count against the
// key's one budget. A follower asks for twice its last grant (1 for a key's
// first read in a window), and the leader grants at most LeaseSize of what is
// left, so a follower holds tokens in proportion to the reads it serves. The
// next lease is asked for in the background when half of the last is spent,
// unless the budget is near its end (LeaseSize under 2: then every token is
// leased when a read needs it), and a lease in use is renewed when older than
// Refresh. A read waits for the leader only when this follower holds no
// token: a key's first read in a window, a read faster than the lease under
// way, or near the end of the budget. Tokens expire with the leader's window
// (measured on this clock from before the lease was asked for, so never after
// it) and with a leader change.
//
// X-RateLimit-Remaining on a read served from a lease is the leader's
// remaining count at the last grant plus the tokens this follower still holds
// unspent: below the truth by the tokens other followers hold unspent, above
// it by at most what the other coordinators served for the key since that
// grant (at most Refresh plus a round trip ago while the key is in use).
//
// Without a leader (leader returns "", or a Fetch from the current leader
// failed less than Backoff ago) the follower counts stale reads on a window
// of its own at Share of the limit over the voters, so n coordinators each
// cut off from a leader serve at most about the limit in all; a follower cut
// off from a leader that still serves serves up to its share on top of the
// leader's limit.
//
// A leader change ends what the old leader holds up: a read waiting for a
// lease from it (one that stopped answering: paused, hung, cut off) asks the
// new leader as soon as leader names it (looked at every Poll), and a Fetch
// from it that fails after the change sends no read to the local share.
type Leases struct {
	now    func() time.Time
	fetch  Fetch
	leader func() string
	voters func() int
	local  *Limiter

	// Waits counts the reads that waited for a lease.
	Waits atomic.Int64

	// Refresh is the age past which a lease in use is renewed; Backoff how
	// long a failed Fetch sends reads to the local share; Timeout bounds a
	// Fetch; Poll is how often a read waiting for a lease looks whether the
	// leader changed.
	Refresh, Backoff, Timeout, Poll time.Duration

	mu        sync.Mutex
	m         map[string]*lease
	downUntil time.Time
	// downLeader is the leader a Fetch from failed (downUntil holds for it
	// alone).
	downLeader string
	gc         time.Time
}

type lease struct {
	leader    string
	known     bool      // a grant for this window arrived: remaining, reset, expires hold
	tokens    int       // leased and not spent
	remaining int       // the leader's remaining count at the last grant
	reset     time.Time // the leader's window end (headers)
	expires   time.Time // on this clock: tokens are spendable before it
	at        time.Time // when the last grant was asked for
	last      int       // the last grant's size (0: none yet in this window)
	inflight  chan struct{}
}

// NewLeases returns a follower's leases: fetch asks the leader, leader names
// the current leader ("" none), voters counts the coordinators sharing a
// key's budget; now is the clock (time.Now when nil).
func NewLeases(now func() time.Time, fetch Fetch, leader func() string, voters func() int) *Leases {
	if now == nil {
		now = time.Now
	}
	return &Leases{now: now, fetch: fetch, leader: leader, voters: voters, local: New(now),
		Refresh: time.Second, Backoff: 5 * time.Second, Timeout: 2 * time.Second, Poll: 20 * time.Millisecond, m: map[string]*lease{}}
}

// Allow counts one stale read of key against limit per Window.
func (ls *Leases) Allow(ctx context.Context, key string, limit int) Decision {
	for {
		ldr := ls.leader()
		now := ls.now()
		ls.mu.Lock()
		if ls.downLocked(ldr, now) {
			ls.mu.Unlock()
			return ls.local.Allow(key, Share(limit, ls.voters()))
		}
		st := ls.stateLocked(key, ldr, now)
		if st.tokens > 0 {
			st.tokens--
			d := Decision{Allowed: true, Limit: limit, Remaining: st.remaining + st.tokens, Reset: st.reset}
			if st.inflight == nil {
				// Speculate only far from the budget's end, where a lease is
				// more than 1 token.
				if st.tokens <= st.last/2 && LeaseSize(st.remaining, ls.voters()) > 1 {
					ls.startLocked(key, st, limit, min(limit, 2*st.last))
				} else if now.Sub(st.at) >= ls.Refresh {
					ls.startLocked(key, st, limit, 0)
				}
			}
			ls.mu.Unlock()
			return d
		}
		if st.known && st.remaining == 0 {
			// The window has nothing left to lease: tokens never return.
			ls.mu.Unlock()
			return Decision{Limit: limit, Reset: st.reset}
		}
		if st.inflight == nil {
			ls.startLocked(key, st, limit, min(limit, max(1, 2*st.last)))
		}
		done := st.inflight
		ls.mu.Unlock()
		ls.Waits.Add(1)
		if !ls.await(ctx, done, ldr) {
			return Decision{Limit: limit, Reset: now.Add(Window)}
		}
	}
}

// await waits until done is closed or leader no longer names ldr (true), or
// ctx ends (false).
func (ls *Leases) await(ctx context.Context, done <-chan struct{}, ldr string) bool {
	tick := time.NewTicker(ls.Poll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		case <-tick.C:
			if ls.leader() != ldr {
				return true
			}
		}
	}
}

// downLocked reports whether reads go to the local share: no leader, or a
// Fetch from this one failed less than Backoff ago. ls.mu is held.
func (ls *Leases) downLocked(ldr string, now time.Time) bool {
	return ldr == "" || ldr == ls.downLeader && now.Before(ls.downUntil)
}

// Peek is what this follower knows of key's budget now (limit per Window),
// for an answer that serves nothing (a 503 while the leader is unreachable):
// it spends no token and asks no leader. Without a leader it is the local
// share's window, as Allow would count a stale read; with one, the leader's
// remaining count at the last grant plus the tokens still held, until the
// window ends; with no grant for the window, the full limit (nothing counted
// that this follower saw), its reset a Window from now.
func (ls *Leases) Peek(key string, limit int) Decision {
	ldr := ls.leader()
	now := ls.now()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.downLocked(ldr, now) {
		share := Share(limit, ls.voters())
		g := ls.local.Take(key, share, 0)
		return Decision{Allowed: g.Remaining > 0, Limit: share, Remaining: g.Remaining, Reset: g.Reset}
	}
	if st := ls.m[key]; st != nil && st.leader == ldr && st.known && now.Before(st.expires) {
		rem := st.remaining + st.tokens
		return Decision{Allowed: rem > 0, Limit: limit, Remaining: rem, Reset: st.reset}
	}
	return Decision{Allowed: limit > 0, Limit: limit, Remaining: max(limit, 0), Reset: now.Add(Window)}
}

// stateLocked is key's lease under leader ldr, emptied when the leader
// changed or its window ended. ls.mu is held.
func (ls *Leases) stateLocked(key, ldr string, now time.Time) *lease {
	if now.Sub(ls.gc) > 2*Window {
		for k, st := range ls.m {
			if st.inflight == nil && (!st.known || !now.Before(st.expires)) {
				delete(ls.m, k)
			}
		}
		ls.gc = now
	}
	st := ls.m[key]
	if st == nil {
		st = &lease{leader: ldr}
		ls.m[key] = st
	}
	if st.leader != ldr {
		// What was leased from another leader is lost, and a lease asked of
		// it and still under way no longer holds up a read: its answer is
		// dropped when it comes.
		*st = lease{leader: ldr}
	} else if st.known && !now.Before(st.expires) {
		// Likewise for a window that has ended (an answer still under way
		// is for the old one too).
		*st = lease{leader: ldr, inflight: st.inflight}
	}
	return st
}

// startLocked asks the leader for want tokens of key in the background. ls.mu
// is held.
func (ls *Leases) startLocked(key string, st *lease, limit, want int) {
	done := make(chan struct{})
	st.inflight = done
	ldr := st.leader
	go func() {
		asked := ls.now()
		ctx, cancel := context.WithTimeout(context.Background(), ls.Timeout)
		g, err := ls.fetch(ctx, key, limit, want)
		cancel()
		ls.mu.Lock()
		defer ls.mu.Unlock()
		defer close(done)
		if ls.m[key] == st && st.inflight == done {
			st.inflight = nil
		}
		if err != nil {
			// Only this leader's: a read under a new one asks it at once.
			ls.downUntil, ls.downLeader = ls.now().Add(ls.Backoff), ldr
			return
		}
		if ls.m[key] != st || st.leader != ldr || g.Granted < 0 || g.Granted > want || g.Remaining < 0 || g.TTL < 0 || g.TTL > Window {
			return // the lease was dropped meanwhile, or a nonsensical answer: the tokens are lost
		}
		if want > 0 && g.Granted == 0 {
			g.Remaining = 0 // nothing granted to a request: nothing left
		}
		if !st.known || !g.Reset.Equal(st.reset) {
			st.tokens = 0 // another window: what is left of the old one is lost
		}
		st.known, st.tokens, st.remaining, st.reset, st.expires, st.at = true, st.tokens+g.Granted, g.Remaining, g.Reset, asked.Add(g.TTL), asked
		if want > 0 {
			st.last = g.Granted
		}
	}()
}
