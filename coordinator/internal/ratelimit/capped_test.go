package ratelimit

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCappedTableStaysBounded: a client spraying requests from more
// addresses than the table holds, all in one window, never grows it past its
// size. Before, every address was a new window until the sweep two minutes
// on: 10,000 addresses were 10,000 windows.
func TestCappedTableStaysBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewCapped(func() time.Time { return now }, 100)
	for i := range 10000 {
		l.Allow(fmt.Sprintf("v1-ip:2001:db8:%x::/64", i), 5)
		if i%7 == 0 {
			now = now.Add(time.Millisecond)
		}
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d addresses: %d windows, want at most 100", i+1, n)
		}
	}
}

// TestFullTableLetsNoAddressEscape: a full table of live windows evicts none
// of them (an evicted address would come back to a fresh budget): an address
// that spent its budget stays refused until its window ends, however many
// other addresses arrive, and the addresses the table has no room for share
// one budget of the same size (they are limited early, never late) until the
// oldest window ends. Then the oldest window goes first: a new address takes
// its place, with a budget of its own, while a younger window is kept.
func TestFullTableLetsNoAddressEscape(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	l := NewCapped(func() time.Time { return now }, 3)
	spend := func(key string) {
		t.Helper()
		for i := range 3 {
			if d := l.Allow(key, 3); !d.Allowed {
				t.Fatalf("%s request %d refused: %+v", key, i+1, d)
			}
		}
	}
	spend("a")
	now = t0.Add(20 * time.Second)
	spend("b")
	now = t0.Add(40 * time.Second)
	spend("c")
	allowed := 0
	for i := range 1000 {
		if l.Allow(fmt.Sprintf("new%d", i), 3).Allowed {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("1,000 addresses the full table has no room for: %d allowed, want the one shared budget of 3", allowed)
	}
	if d := l.Peek("new5000", 3); d.Remaining != 0 {
		t.Errorf("Peek of another address while the table is full: %+v, want the shared budget's 0", d)
	}
	for _, k := range []string{"a", "b", "c"} {
		if d := l.Allow(k, 3); d.Allowed {
			t.Errorf("%s after 1,000 other addresses: allowed (%+v); its spent window must be kept", k, d)
		}
	}
	if n := l.Len(); n != 3 {
		t.Errorf("%d windows, want 3", n)
	}

	// a's window ends: it goes first, and a newcomer has its own budget.
	now = t0.Add(Window + time.Second)
	if d := l.Allow("d", 3); !d.Allowed || d.Remaining != 2 {
		t.Errorf("a new address once the oldest window ended: %+v, want its own budget (2 left)", d)
	}
	if d := l.Allow("b", 3); d.Allowed {
		t.Errorf("b, whose window has 19 s to run: allowed (%+v)", d)
	}
	// a's window ended and was dropped; the table is full again (b, c, d),
	// so a comes back to the shared budget, spent until it ends: early,
	// never late.
	if d := l.Allow("a", 3); d.Allowed {
		t.Errorf("a, back while the table is full and the shared budget spent: allowed (%+v)", d)
	}
	now = t0.Add(Window + 21*time.Second) // b's window has ended too
	if d := l.Allow("a", 3); !d.Allowed || d.Remaining != 2 {
		t.Errorf("a once b's window ended: %+v, want a budget of its own (2 left)", d)
	}
}

// TestUncappedKeepsEveryWindow: New's limiter (the keys' windows) has no
// size: a key's window is never evicted while it runs.
func TestUncappedKeepsEveryWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(func() time.Time { return now })
	for i := range 5000 {
		l.Allow(fmt.Sprint("key", i), 1)
	}
	if n := l.Len(); n != 5000 {
		t.Fatalf("%d windows, want 5000", n)
	}
	if d := l.Allow("key0", 1); d.Allowed {
		t.Fatalf("key0's spent window was dropped: %+v", d)
	}
	now = now.Add(Window)
	l.Allow("fresh", 1)
	if n := l.Len(); n != 1 {
		t.Errorf("after the window: %d windows, want the ended ones gone (1)", n)
	}
}

// BenchmarkAddressWindowMemory: the heap one client address's window takes
// in a capped table (IPv6 /64 keys as httpapi names them, the key included),
// and the heap the table holds after ten times as many addresses than it has
// room for sprayed at it in one window: no more than when it was full.
func BenchmarkAddressWindowMemory(b *testing.B) {
	const size = 100_000
	keys := make([]string, 10*size)
	for i := range keys {
		keys[i] = fmt.Sprintf("v1-ip:2001:db8:%x:%x::/64", i>>16, i&0xffff)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var perAddr, sprayed float64
	for range b.N {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		before := heap()
		l := NewCapped(func() time.Time { return now }, size)
		// Each key a string of its own, as a request's is (the table keeps it).
		for _, k := range keys[:size] {
			l.Allow(strings.Clone(k), 300)
		}
		full := heap()
		for _, k := range keys[size:] {
			l.Allow(strings.Clone(k), 300)
		}
		after := heap()
		if l.Len() != size {
			b.Fatalf("%d windows, want %d", l.Len(), size)
		}
		perAddr = float64(full-before) / size
		sprayed = float64(int64(after)-int64(before)) / (1 << 20)
		runtime.KeepAlive(l)
	}
	b.ReportMetric(perAddr, "B/address")
	b.ReportMetric(sprayed, "MiB-after-10x-spray")
}
