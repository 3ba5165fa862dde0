package clock

import (
	"context"
	"testing"
	"time"
)

func TestEveryCallsAtOnceThenEachTickUntilDone(t *testing.T) {
	// The first call does not wait for a tick: with an hour's period the
	// loop still calls fn once, and returns when fn cancels.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	returned := make(chan struct{})
	go func() {
		Every(ctx, time.Hour, func() { calls++; cancel() })
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not call fn at once, or did not return once its context was done")
	}
	if calls != 1 {
		t.Fatalf("fn called %d times before the context ended, want 1", calls)
	}

	// Then once a tick, until the context is done.
	ctx, cancel = context.WithCancel(context.Background())
	calls = 0
	start := time.Now()
	Every(ctx, 5*time.Millisecond, func() {
		if calls++; calls == 4 {
			cancel()
		}
	})
	if calls != 4 {
		t.Fatalf("fn called %d times, want 4 (the last one cancelled)", calls)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("4 calls took %v: the three after the first must each wait a 5 ms tick", d)
	}
}
