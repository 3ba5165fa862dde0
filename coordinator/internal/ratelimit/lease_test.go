package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a fake clock safe for the leases' background fetches.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestTakeDebitsTheWindow(t *testing.T) {
	c := newClock()
	l := New(c.now)
	if g := l.Take("k", 10, 0); g.Granted != 0 || g.Remaining != 10 || g.TTL != Window {
		t.Fatalf("report on an unused key: %+v", g)
	}
	if g := l.Take("k", 10, 4); g.Granted != 4 || g.Remaining != 6 || !g.Reset.Equal(c.now().Add(Window)) || g.TTL != Window {
		t.Fatalf("take 4 of 10: %+v", g)
	}
	if d := l.Allow("k", 10); !d.Allowed || d.Remaining != 5 {
		t.Fatalf("Allow after taking 4: %+v", d)
	}
	c.add(10 * time.Second)
	if g := l.Take("k", 10, 9); g.Granted != 5 || g.Remaining != 0 || g.TTL != 50*time.Second {
		t.Fatalf("take 9 of 5 left: %+v", g)
	}
	if d := l.Allow("k", 10); d.Allowed || d.Remaining != 0 {
		t.Fatalf("Allow with nothing left: %+v", d)
	}
	if g := l.Take("k", 10, 3); g.Granted != 0 || g.Remaining != 0 {
		t.Fatalf("take with nothing left: %+v", g)
	}
	c.add(50 * time.Second)
	if g := l.Take("k", 10, 3); g.Granted != 3 || g.Remaining != 7 {
		t.Fatalf("take in the next window: %+v", g)
	}
}

func TestLeaseSize(t *testing.T) {
	l := New(newClock().now)
	// 120 left, 3 holders: at most 120/6 = 20, then a sixth of what is left.
	for i, want := range []struct{ granted, remaining int }{{20, 100}, {16, 84}, {14, 70}} {
		if g := l.Lease("k", 120, 1000, 3); g.Granted != want.granted || g.Remaining != want.remaining {
			t.Fatalf("lease %d: %+v, want %+v", i, g, want)
		}
	}
	if g := l.Lease("k", 120, 5, 3); g.Granted != 5 {
		t.Fatalf("a lease asking for less than the size: %+v", g)
	}
	l.Take("k", 120, 63) // 2 left: leases of 1
	for i, want := range []struct{ granted, remaining int }{{1, 1}, {1, 0}, {0, 0}} {
		if g := l.Lease("k", 120, 1000, 3); g.Granted != want.granted || g.Remaining != want.remaining {
			t.Fatalf("lease %d near the end: %+v, want %+v", i, g, want)
		}
	}
	if s := Share(120, 3); s != 40 {
		t.Fatalf("Share(120, 3) = %d", s)
	}
	if s := Share(2, 3); s != 1 {
		t.Fatalf("Share(2, 3) = %d", s)
	}
}

// cluster is a leader's limiter and followers leasing from it.
type cluster struct {
	c       *clock
	leader  *Limiter
	ldr     atomic.Value // string
	down    atomic.Bool
	fetches atomic.Int64
}

func newCluster() *cluster {
	cl := &cluster{c: newClock()}
	cl.leader = New(cl.c.now)
	cl.ldr.Store("n1")
	return cl
}

func (cl *cluster) follower() *Leases {
	return NewLeases(cl.c.now, func(ctx context.Context, key string, limit, want int) (Grant, error) {
		cl.fetches.Add(1)
		if cl.down.Load() {
			return Grant{}, errors.New("unreachable")
		}
		return cl.leader.Lease(key, limit, want, 3), nil
	}, func() string { return cl.ldr.Load().(string) }, func() int { return 3 })
}

// settle waits for the followers' background fetches.
func settle(ls ...*Leases) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		busy := false
		for _, l := range ls {
			l.mu.Lock()
			for _, st := range l.m {
				busy = busy || st.inflight != nil
			}
			l.mu.Unlock()
		}
		if !busy {
			return
		}
	}
}

// TestLeasesShareTheWindow: reads spread over the leader and two followers
// are served at most the key's limit in a window, and at least the limit less
// what the followers hold unspent; the next window serves again.
func TestLeasesShareTheWindow(t *testing.T) {
	cl := newCluster()
	f := []*Leases{cl.follower(), cl.follower()}
	const limit = 120
	for window := 0; window < 2; window++ {
		served := 0
		for i := 0; i < 3*limit; i++ {
			var d Decision
			if i%3 == 0 {
				d = cl.leader.Allow("k", limit)
			} else {
				d = f[i%3-1].Allow(context.Background(), "k", limit)
			}
			if d.Allowed {
				served++
			}
			if d.Limit != limit || d.Remaining < 0 || d.Remaining > limit {
				t.Fatalf("window %d read %d: %+v", window, i, d)
			}
			settle(f...)
		}
		held := 0
		for _, l := range f {
			held += l.m["k"].tokens
		}
		if served > limit || served < limit-held {
			t.Fatalf("window %d: served %d of a limit of %d (followers hold %d unspent)", window, served, limit, held)
		}
		cl.c.add(Window)
	}
}

// TestLeaseRemainingAndRoundTrips: one follower serving a key alone reports
// the exact remaining count on every read; its leases grow with its reads, so
// it asks the leader a few dozen times for a window of 1200 and waits for the
// leader on the first read and near the end only; a read with more than half
// a lease left does not ask at all.
func TestLeaseRemainingAndRoundTrips(t *testing.T) {
	cl := newCluster()
	f := cl.follower()
	const limit = 1200
	quiet := 0
	for i := 0; i < limit; i++ {
		f.mu.Lock()
		st := f.m["k"]
		plenty := st != nil && st.tokens > st.last/2+1 && st.at.Add(f.Refresh).After(cl.c.now())
		f.mu.Unlock()
		before := cl.fetches.Load()
		d := f.Allow(context.Background(), "k", limit)
		if !d.Allowed || d.Remaining != limit-1-i || !d.Reset.Equal(cl.c.now().Add(Window)) {
			t.Fatalf("read %d: %+v, want allowed with %d remaining", i, d, limit-1-i)
		}
		if plenty {
			quiet++
			if n := cl.fetches.Load() - before; n != 0 {
				t.Fatalf("read %d with more than half a lease left asked the leader %d times", i, n)
			}
		}
		settle(f)
	}
	if quiet < limit/2 {
		t.Fatalf("only %d of %d reads had more than half a lease left", quiet, limit)
	}
	// 1200/6 = 200 at most per lease: 1, 2, 4, ... 128, then about a sixth
	// of what is left down to 12 left, then 1 at a time (waiting).
	t.Logf("%d reads: %d leases, %d waits", limit, cl.fetches.Load(), f.Waits.Load())
	if n := cl.fetches.Load(); n > 50 {
		t.Fatalf("%d reads asked the leader %d times", limit, n)
	}
	if w := f.Waits.Load(); w > 1+12 {
		t.Fatalf("%d reads waited for the leader %d times", limit, w)
	}
	if d := f.Allow(context.Background(), "k", limit); d.Allowed || d.Remaining != 0 {
		t.Fatalf("past the limit: %+v", d)
	}
	before := cl.fetches.Load()
	f.Allow(context.Background(), "k", limit)
	if n := cl.fetches.Load() - before; n != 0 {
		t.Fatalf("a read past an exhausted window asked the leader %d times", n)
	}
}

// TestLeasesHoldWhatTheyServe: a follower that served one read of a key has
// taken 3 of its budget (1, and 2 asked for ahead), not a sixth of it.
func TestLeasesHoldWhatTheyServe(t *testing.T) {
	cl := newCluster()
	f := cl.follower()
	if d := f.Allow(context.Background(), "k", 120); !d.Allowed || d.Remaining != 119 {
		t.Fatalf("first read: %+v", d)
	}
	settle(f)
	// It asked for 2 more in the background (speculation far from the end).
	if g := cl.leader.Take("k", 120, 0); g.Remaining != 117 {
		t.Fatalf("after one read and its next lease the leader has %d left, want 117", g.Remaining)
	}
}

// TestLeasesExpireAndFollowTheLeader: tokens are not spent past the window
// they were leased from, nor under another leader.
func TestLeasesExpireAndFollowTheLeader(t *testing.T) {
	cl := newCluster()
	f := cl.follower()
	f.Allow(context.Background(), "k", 120) // leases 1, then 2 in the background
	settle(f)
	cl.c.add(Window)
	before := cl.fetches.Load()
	if d := f.Allow(context.Background(), "k", 120); !d.Allowed || d.Remaining != 119 {
		t.Fatalf("first read of the next window: %+v", d)
	}
	if cl.fetches.Load() == before {
		t.Fatal("a token of the last window was spent in the next")
	}
	settle(f)
	cl.ldr.Store("n2")
	cl.leader = New(cl.c.now) // the new leader's window is fresh
	before = cl.fetches.Load()
	if d := f.Allow(context.Background(), "k", 120); !d.Allowed || d.Remaining != 119 {
		t.Fatalf("first read under the new leader: %+v", d)
	}
	if cl.fetches.Load() == before {
		t.Fatal("a token leased from the old leader was spent under the new one")
	}
}

// TestLeasesWithoutALeaderServeAShare: a follower that cannot reach the
// leader serves stale reads up to a third of the limit, asking once per
// Backoff, and leases again once the leader answers.
func TestLeasesWithoutALeaderServeAShare(t *testing.T) {
	cl := newCluster()
	cl.down.Store(true)
	f := cl.follower()
	served := 0
	for i := 0; i < 100; i++ {
		if d := f.Allow(context.Background(), "k", 120); d.Allowed {
			served++
			if d.Limit != 40 {
				t.Fatalf("read %d on the local share: %+v", i, d)
			}
		}
	}
	if served != 40 {
		t.Fatalf("served %d stale reads of a limit of 120 without a leader, want 40", served)
	}
	if n := cl.fetches.Load(); n != 1 {
		t.Fatalf("asked the unreachable leader %d times within Backoff", n)
	}
	cl.ldr.Store("") // no leader known: not even asked
	cl.c.add(f.Backoff)
	if d := f.Allow(context.Background(), "k2", 120); !d.Allowed || d.Limit != 40 || cl.fetches.Load() != 1 {
		t.Fatalf("without a leader: %+v, %d fetches", d, cl.fetches.Load())
	}
	cl.ldr.Store("n1")
	cl.down.Store(false)
	d := f.Allow(context.Background(), "k", 120)
	settle(f)
	// A lease of 1 for the read, and 2 asked for ahead.
	if !d.Allowed || d.Limit != 120 || d.Remaining != 119 || cl.fetches.Load() != 3 {
		t.Fatalf("leader back: %+v, %d fetches, want 3", d, cl.fetches.Load())
	}
}

// TestPeekCountsNothing: Peek says what the next Allow would count against,
// the leader's window on the leader, the lease or the share on a follower,
// and neither spends a token nor asks the leader.
func TestPeekCountsNothing(t *testing.T) {
	cl := newCluster()
	if d := cl.leader.Peek("k", 120); d.Limit != 120 || d.Remaining != 120 || !d.Allowed {
		t.Fatalf("leader, unused key: %+v", d)
	}
	cl.leader.Allow("k", 120)
	if d := cl.leader.Peek("k", 120); d.Remaining != 119 || !d.Reset.Equal(cl.c.now().Add(Window)) {
		t.Fatalf("leader after one request: %+v", d)
	}
	if d := cl.leader.Allow("k", 120); d.Remaining != 118 {
		t.Fatalf("Allow after two peeks: %+v, want 118 left", d)
	}
	f := cl.follower()
	if d := f.Peek("k", 120); d.Limit != 120 || d.Remaining != 120 || cl.fetches.Load() != 0 {
		t.Fatalf("follower without a lease: %+v, %d fetches", d, cl.fetches.Load())
	}
	f.Allow(context.Background(), "k", 120) // a lease of 1, then 2 ahead
	settle(f)
	before := cl.fetches.Load()
	for i := 0; i < 3; i++ {
		if d := f.Peek("k", 120); d.Limit != 120 || d.Remaining != 117 || cl.fetches.Load() != before {
			t.Fatalf("follower with 2 tokens, the leader at 115: %+v, %d fetches", d, cl.fetches.Load()-before)
		}
	}
	if d := f.Allow(context.Background(), "k", 120); !d.Allowed || d.Remaining != 116 {
		t.Fatalf("Allow after peeks: %+v, want 116 left", d)
	}
	cl.ldr.Store("")
	if d := f.Peek("k", 120); d.Limit != 40 || d.Remaining != 40 {
		t.Fatalf("follower without a leader: %+v, want the share, 40", d)
	}
	f.Allow(context.Background(), "k", 120)
	if d := f.Peek("k", 120); d.Limit != 40 || d.Remaining != 39 {
		t.Fatalf("follower without a leader after one stale read: %+v, want 39 of 40", d)
	}
}

// TestLeasesFollowANewLeaderAtOnce: a read waiting for a lease from a leader
// that stopped answering (paused: its Fetch hangs until Timeout) is leased
// by the new leader as soon as the follower knows it, not after Timeout, and
// the old leader's Fetch failing afterwards sends no read to the local share
// (the key's whole limit, leased from the new leader, not a third of it).
func TestLeasesFollowANewLeaderAtOnce(t *testing.T) {
	cl := newCluster()
	var asked sync.Map // leader -> true once asked
	f := NewLeases(cl.c.now, func(ctx context.Context, key string, limit, want int) (Grant, error) {
		ldr := cl.ldr.Load().(string)
		asked.Store(ldr, true)
		if ldr == "n1" {
			<-ctx.Done() // paused: no answer until the Fetch times out
			return Grant{}, ctx.Err()
		}
		return cl.leader.Lease(key, limit, want, 3), nil
	}, func() string { return cl.ldr.Load().(string) }, func() int { return 3 })
	f.Timeout = 2 * time.Second
	go func() {
		for {
			if _, ok := asked.Load("n1"); ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		cl.ldr.Store("n2") // the followers elected n2
	}()
	start := time.Now()
	d := f.Allow(context.Background(), "k", 120)
	took := time.Since(start)
	if !d.Allowed || d.Limit != 120 || d.Remaining != 119 {
		t.Fatalf("the read under the new leader: %+v, want a token leased from it (limit 120, 119 left)", d)
	}
	if took > time.Second {
		t.Fatalf("the read waited %s for the paused leader's lease; want it leased by the new leader at once (Timeout %s)", took, f.Timeout)
	}
	// The paused leader's Fetch fails now: reads still lease from n2.
	time.Sleep(f.Timeout - took + 100*time.Millisecond)
	if d := f.Allow(context.Background(), "k2", 120); !d.Allowed || d.Limit != 120 || d.Remaining != 119 {
		t.Fatalf("a read after the old leader's lease failed: %+v, want a token leased from n2 (limit 120), not the local share", d)
	}
}
