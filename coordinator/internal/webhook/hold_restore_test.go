package webhook

import (
	"testing"
	"time"

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
