package webhook

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wantAllFree releases one slot of each of accounts and fails the test
// unless then all total slots are free, none held and none waited for.
func wantAllFree(t *testing.T, s *fairSlots, total int, accounts ...string) {
	t.Helper()
	for _, a := range accounts {
		s.release(a)
	}
	if s.free != total || len(s.held) != 0 || len(s.waiting) != 0 {
		t.Fatalf("after every release: free %d held %v waiting %d", s.free, s.held, len(s.waiting))
	}
}

// queueAttempts starts an attempt of each account in turn, each once the one
// before waits (or got its slot), so they queue in that order; got receives
// each account whose attempt got a slot, and wg is done once every attempt
// returned. (Starting them 20 ms apart did not always queue them in order on
// a loaded machine, nor the last one before the caller's next release.)
func queueAttempts(t *testing.T, s *fairSlots, accounts ...string) (got chan string, wg *sync.WaitGroup) {
	t.Helper()
	got, wg = make(chan string, len(accounts)), &sync.WaitGroup{}
	seq := func() uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.seq
	}
	for _, acct := range accounts {
		waiters, granted := seq(), len(got)
		wg.Go(func() {
			if s.acquire(context.Background(), acct) == nil {
				got <- acct
			}
		})
		waitUntil(t, acct+"'s attempt waiting or holding a slot", 10*time.Second, func() bool { return seq() != waiters || len(got) != granted })
	}
	return got, wg
}

// acquired reports whether acquire(account) returns within d.
func acquired(s *fairSlots, account string, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.acquire(ctx, account) == nil
}

// TestFairSlotsShareAndOrder: an account at its share waits while another
// account gets a slot at once; a freed slot goes to the waiting account that
// holds the fewest, not to the one that waited longest; a waiter whose
// context ends leaves the queue and every slot comes back.
func TestFairSlotsShareAndOrder(t *testing.T) {
	s := newFairSlots(4, 2)
	for range 2 {
		if !acquired(s, "a", time.Second) {
			t.Fatal("a's first two slots")
		}
	}
	if acquired(s, "a", 50*time.Millisecond) {
		t.Fatal("a got a third slot with a share of 2")
	}
	if !acquired(s, "b", 50*time.Millisecond) {
		t.Fatal("b waited while a was at its share and slots were free")
	}
	// a holds 2, b 1, one slot free: a waits (share), b's second is at once.
	if !acquired(s, "b", 50*time.Millisecond) {
		t.Fatal("b's second slot")
	}
	// Full. a queues two attempts first, then c queues one.
	got, wg := queueAttempts(t, s, "a", "a", "c")
	s.release("b") // a holds 2 (its share): c, holding none, gets it
	if first := <-got; first != "c" {
		t.Fatalf("the freed slot went to %s; want c, which held none", first)
	}
	s.release("a") // a holds 1 now: its waiter gets it
	if next := <-got; next != "a" {
		t.Fatalf("the next slot went to %s", next)
	}
	// A waiter giving up leaves no trace.
	if acquired(s, "d", 30*time.Millisecond) {
		t.Fatal("d got a slot with none free")
	}
	// Free slots do not lift a's share: its last waiter stays queued
	// until one of its own slots comes back.
	s.release("b")
	s.release("c")
	select {
	case g := <-got:
		t.Fatalf("%s got a slot beyond its share", g)
	case <-time.After(30 * time.Millisecond):
	}
	s.release("a")
	if next := <-got; next != "a" {
		t.Fatalf("got %s", next)
	}
	wg.Wait()
	wantAllFree(t, s, 4, "a", "a")
}

// TestFairSlotsUnderLoad: many accounts' attempts taking and giving back
// slots at random never exceed the total or an account's share, and end with
// every slot free.
func TestFairSlotsUnderLoad(t *testing.T) {
	const total, share = 8, 3
	s := newFairSlots(total, share)
	var inUse atomic.Int32
	per := make([]atomic.Int32, 5)
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			a := g % len(per)
			acct := fmt.Sprint("acct", a)
			for i := range 50 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%7)*time.Millisecond)
				if i%3 != 0 {
					ctx, cancel = context.WithCancel(context.Background())
				}
				if s.acquire(ctx, acct) == nil {
					if n := inUse.Add(1); n > total {
						t.Errorf("%d slots in use", n)
					}
					if n := per[a].Add(1); n > share {
						t.Errorf("%s holds %d", acct, n)
					}
					time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
					per[a].Add(-1)
					inUse.Add(-1)
					s.release(acct)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if s.free != total || len(s.held) != 0 || len(s.waiting) != 0 {
		t.Fatalf("after the load: free %d held %v waiting %d", s.free, s.held, len(s.waiting))
	}
}

// BenchmarkSlots compares fairSlots with the channel semaphore it replaced:
// parallel acquire/release of 64 slots by 50 accounts (more goroutines than
// slots, so waiting is exercised).
func BenchmarkSlots(b *testing.B) {
	b.Run("channel", func(b *testing.B) {
		sem := make(chan struct{}, 64)
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sem <- struct{}{}
				<-sem
			}
		})
	})
	b.Run("fair", func(b *testing.B) {
		s := newFairSlots(64, 32)
		var n atomic.Int64
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			acct := fmt.Sprint("acct", n.Add(1)%50)
			ctx := context.Background()
			for pb.Next() {
				if s.acquire(ctx, acct) == nil {
					s.release(acct)
				}
			}
		})
	})
}

// TestFairSlotsTiesGoToTheLongestWaiting: with more accounts waiting than
// slots, a freed slot goes, among the accounts holding the fewest, to the one
// whose attempt has waited longest. Ordered by name instead, an account whose
// name sorts last never got a slot while accounts named before it kept
// attempts queued: each of them, releasing a slot, held as few as it and won
// the tie.
func TestFairSlotsTiesGoToTheLongestWaiting(t *testing.T) {
	s := newFairSlots(2, 1)
	for _, acct := range []string{"a", "b"} {
		if !acquired(s, acct, time.Second) {
			t.Fatalf("%s's first slot", acct)
		}
	}
	got, wg := queueAttempts(t, s, "z", "a", "b") // z waits first
	s.release("a")                                // a and z hold none now: z has waited longest
	if first := <-got; first != "z" {
		t.Fatalf("the freed slot went to %s; want z, which waited longest of those holding none", first)
	}
	s.release("z") // a holds none, b holds its share
	if next := <-got; next != "a" {
		t.Fatalf("the next slot went to %s; want a", next)
	}
	s.release("b")
	if next := <-got; next != "b" {
		t.Fatalf("the last slot went to %s; want b", next)
	}
	wg.Wait()
	wantAllFree(t, s, 2, "a", "b")
}
