package ratelimit

import (
	"testing"
	"time"
)

func TestWindowAndReset(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(func() time.Time { return now })
	for i := 0; i < 3; i++ {
		d := l.Allow("k", 3)
		if !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Allow("k", 3)
	if d.Allowed || d.Remaining != 0 || !d.Reset.Equal(now.Add(Window)) {
		t.Fatalf("4th request: %+v", d)
	}
	if !l.Allow("other", 3).Allowed {
		t.Fatal("keys must not share a window")
	}
	now = now.Add(Window)
	if d := l.Allow("k", 3); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("after reset: %+v", d)
	}
}
