package webhook

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/internal/clock"
)

// TestHoldStopsTheRunUntilReleased: Hold returns once the running term has
// stopped (nothing of it reads, sends or records any more: a cluster
// restore then replaces the state under no proposal of the old one's), no
// term runs while it holds, and once released the dispatcher reads the
// state afresh and delivers what was committed meanwhile. Two holds at once
// keep it stopped until both are released.
func TestHoldStopsTheRunUntilReleased(t *testing.T) {
	node, sealer := newLevel2Node(t, nil)
	rc, acc, _ := node.subscribedReceiver(sealer, clock.Real{})
	s := start(t, node, sealer, &Guard{AllowPrivate: true, AllowHTTP: true}, nil, clock.Real{}, Options{})
	node.ticket(acc, "before")
	rc.waitFor(t, "the first delivery", 10*time.Second, func(r []received) bool { return len(r) >= 1 })

	release1 := s.d.Hold()
	if s.d.Stats().Running {
		t.Fatal("Hold returned with the term still running")
	}
	release2 := s.d.Hold()
	node.ticket(acc, "while held")
	release1()
	if s.d.Stats().Running {
		t.Fatal("a term started while a second Hold was in force")
	}
	release2()
	rc.waitFor(t, "the event committed while held, delivered after the release", 10*time.Second, func(r []received) bool { return len(r) >= 2 })
	waitUntil(t, "a running term", 10*time.Second, func() bool { return s.d.Stats().Running })
}

// TestHoldWithinGivesUpOnAStalledApply: a `cluster restore` holds the
// dispatcher before it installs anything, and a record whose apply does not
// return (a stalled proposal that ignores its context) would keep the
// restore waiting for ever. HoldWithin gives up with ErrHoldTimeout and
// holds nothing (the restore answers 503, nothing restored); once the apply
// returns, the dispatcher runs again and a Hold succeeds.
func TestHoldWithinGivesUpOnAStalledApply(t *testing.T) {
	node, sealer := newLevel2Node(t, nil)
	rc, acc, _ := node.subscribedReceiver(sealer, clock.Real{})
	var stall atomic.Bool
	stalled := make(chan struct{}, 1)
	unblock := make(chan struct{})
	apply := func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
		if stall.Load() {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-unblock // ignores ctx, as a stalled apply does
		}
		return node.Apply(ctx, env)
	}
	opt := Options{FlushInterval: 10 * time.Millisecond, PollInterval: 2 * time.Millisecond, AttemptTimeout: 5 * time.Second}
	guard := &Guard{AllowPrivate: true, AllowHTTP: true}
	d := New(opt, node.f, apply, sealer, guard.Client(opt.AttemptTimeout, nil, 64), clock.Real{}, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(func() { release(); cancel(); <-done })

	node.ticket(acc, "first")
	rc.waitFor(t, "the first delivery", 10*time.Second, func(r []received) bool { return len(r) >= 1 })
	stall.Store(true)
	node.ticket(acc, "second")
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatcher never proposed the second delivery's record")
	}
	if rel, err := d.HoldWithin(200 * time.Millisecond); !errors.Is(err, ErrHoldTimeout) || rel != nil {
		t.Fatalf("HoldWithin with the record's apply stalled: %v, want ErrHoldTimeout and no hold", err)
	}
	stall.Store(false)
	release()
	waitUntil(t, "a running term after the stalled apply returned", 10*time.Second, func() bool { return d.Stats().Running })
	rel, err := d.HoldWithin(10 * time.Second)
	if err != nil {
		t.Fatalf("HoldWithin once the apply returned: %v", err)
	}
	if d.Stats().Running {
		t.Fatal("HoldWithin returned with the term still running")
	}
	rel()
	node.ticket(acc, "third")
	rc.waitFor(t, "a delivery after the hold", 10*time.Second, func(r []received) bool { return len(r) >= 3 })
}
