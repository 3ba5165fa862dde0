package clocktest

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
)

var _ clock.Clock = (*Fake)(nil)

func TestFakeFiresWaitersWhenDue(t *testing.T) {
	t0 := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	now := c.After(0)
	later := c.After(time.Hour)
	select {
	case got := <-now:
		if !got.Equal(t0) {
			t.Fatalf("After(0) delivered %v", got)
		}
	default:
		t.Fatal("After(0) did not fire at once")
	}
	c.Advance(59 * time.Minute)
	select {
	case <-later:
		t.Fatal("fired before it was due")
	default:
	}
	c.Advance(time.Minute)
	select {
	case got := <-later:
		if !got.Equal(t0.Add(time.Hour)) || !c.Now().Equal(got) {
			t.Fatalf("delivered %v, now %v", got, c.Now())
		}
	default:
		t.Fatal("did not fire when due")
	}
}
