package raftnode

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadBarrierWaitsForTheNextRound: a read that arrives while a round is in
// flight is not answered by that round but by the next one, which starts after
// it arrived; reads arriving together share one round.
func TestReadBarrierWaitsForTheNextRound(t *testing.T) {
	release := make(chan struct{})
	started := make(chan int, 10)
	var n atomic.Int32
	b := newReadBarrier(func() error {
		i := int(n.Add(1))
		started <- i
		<-release
		return nil
	})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- b.wait(ctx) }()
	if got := <-started; got != 1 {
		t.Fatalf("round %d started, want 1", got)
	}
	// Round 1 is in flight; these arrive now and must wait for round 2.
	const late = 20
	var wg sync.WaitGroup
	lateDone := make(chan struct{}, late)
	for i := 0; i < late; i++ {
		wg.Go(func() {
			if err := b.wait(ctx); err != nil {
				t.Error(err)
			}
			lateDone <- struct{}{}
		})
	}
	// All of them queued behind round 1 (a fixed 50 ms was not always enough
	// under load: a read arriving after round 2 started waits for a third).
	for deadline := time.Now().Add(10 * time.Second); readersWaiting(b) < late; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reads queued for round 2 after 10 s", readersWaiting(b), late)
		}
	}
	release <- struct{}{} // round 1 ends
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case <-lateDone:
		t.Fatal("a read that arrived during round 1 was answered by round 1")
	case got := <-started:
		if got != 2 {
			t.Fatalf("round %d started, want 2", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("round 2 never started")
	}
	select {
	case <-lateDone:
		t.Fatal("answered before round 2 finished")
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	wg.Wait()
	if r := b.Rounds(); r != 2 {
		t.Fatalf("%d rounds for 21 reads in two waves, want 2", r)
	}
}

// readersWaiting is how many reads wait for the next round.
func readersWaiting(b *readBarrier) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == nil {
		return 0
	}
	return b.next.readers
}

// TestReadBarrierError: a failed round fails every read waiting on it, and the
// next read runs a fresh round; a cancelled context stops waiting.
func TestReadBarrierError(t *testing.T) {
	fail := errors.New("not leader")
	var calls atomic.Int32
	b := newReadBarrier(func() error {
		if calls.Add(1) == 1 {
			return fail
		}
		return nil
	})
	if err := b.wait(context.Background()); !errors.Is(err, fail) {
		t.Fatalf("err %v, want %v", err, fail)
	}
	if err := b.wait(context.Background()); err != nil {
		t.Fatalf("second read: %v", err)
	}

	block := make(chan struct{})
	b2 := newReadBarrier(func() error { <-block; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b2.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	close(block)
}

// TestReadBarrierSharesRounds: many concurrent readers need far fewer rounds
// than reads, and every read is answered.
func TestReadBarrierSharesRounds(t *testing.T) {
	b := newReadBarrier(func() error { time.Sleep(2 * time.Millisecond); return nil })
	var wg sync.WaitGroup
	const readers, each = 32, 20
	for i := 0; i < readers; i++ {
		wg.Go(func() {
			for j := 0; j < each; j++ {
				if err := b.wait(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if r := b.Rounds(); r > readers*each/4 {
		t.Fatalf("%d rounds for %d reads: not shared", r, readers*each)
	}
	t.Logf("%d reads, %d rounds", readers*each, b.Rounds())
}

// TestStallWatch: a late tick (the process did not run) marks the process
// stalled for the caution period, and reports the gap once.
func TestStallWatch(t *testing.T) {
	var gaps []time.Duration
	s := &stallWatch{start: time.Now(), threshold: 100 * time.Millisecond, caution: time.Second, done: make(chan struct{}),
		onStall: func(g, _ time.Duration) { gaps = append(gaps, g) }}
	s.tick()
	if s.stalled() {
		t.Fatal("stalled right after a tick")
	}
	s.last.Store(s.now() - int64(time.Second)) // the last tick was a second ago
	if !s.stalled() {
		t.Fatal("a tick 1 s late is not seen as a stall")
	}
	s.tick()
	if !s.stalled() {
		t.Fatal("not stalled within the caution period after a late tick")
	}
	if len(gaps) != 1 || gaps[0] < time.Second {
		t.Fatalf("gaps reported: %v", gaps)
	}
	s.until.Store(s.now() - 1)
	if s.stalled() {
		t.Fatal("still stalled after the caution period")
	}
	s.tick()
	if len(gaps) != 1 {
		t.Fatalf("a tick on time reported a gap: %v", gaps)
	}
}
