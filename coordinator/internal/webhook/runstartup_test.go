package webhook

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
)

// failingState is a state whose every read fails (a record that does not
// decode, a closed database), counting the reads.
type failingState struct{ reads atomic.Int64 }

var errUnreadable = errors.New("unreadable state")

func (s *failingState) Read(func(store.ReadTx) error) error { s.reads.Add(1); return errUnreadable }
func (s *failingState) AppliedIndex() uint64                { return 0 }

// TestRunReturnsAStartUpError: a dispatcher whose start-up read fails stops
// and returns the error (the server logs "webhook dispatcher stopped"), as
// Run's doc says; it does not start again and again, reading the state in a
// loop with no pause.
func TestRunReturnsAStartUpError(t *testing.T) {
	st := &failingState{}
	d := New(Options{}, st, nil, nil, nil, clock.Real{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, errUnreadable) {
			t.Fatalf("Run returned %v, want the start-up read's error", err)
		}
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("Run did not return its start-up error; it read the state %d times", st.reads.Load())
	}
	if n := st.reads.Load(); n != 1 {
		t.Fatalf("the state was read %d times, want once", n)
	}
}
