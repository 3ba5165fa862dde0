package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/internal/clock/clocktest"
)

// TestEveryOnFollowsTheClockGiven: on a fake clock, fn is called at once,
// not again until d has passed on that clock, then again; it returns when
// its context ends.
func TestEveryOnFollowsTheClockGiven(t *testing.T) {
	fake := clocktest.NewFake(time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC))
	calls := make(chan time.Time, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		clock.EveryOn(ctx, fake, time.Hour, func() { calls <- fake.Now() })
	}()
	wait := func(want time.Time) {
		t.Helper()
		select {
		case at := <-calls:
			if !at.Equal(want) {
				t.Fatalf("called at %v, want %v", at, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("not called at %v", want)
		}
	}
	start := fake.Now()
	wait(start)
	fake.Advance(59 * time.Minute)
	select {
	case at := <-calls:
		t.Fatalf("called again at %v, before the hour", at)
	case <-time.After(50 * time.Millisecond):
	}
	fake.Advance(time.Minute)
	wait(start.Add(time.Hour))
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("EveryOn did not return once its context ended")
	}
}
