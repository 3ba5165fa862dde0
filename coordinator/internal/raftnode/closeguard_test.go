package raftnode

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A heartbeat that raced the node's shutdown writes the leader's term after
// the store is closed (hashicorp/raft#717): raft panics on any error of that
// write, so the stores the node opens must take it without one, and keep
// what was written before the close.
func TestStableWriteAfterCloseIsNoError(t *testing.T) {
	dir := t.TempDir()
	logs, _, err := openStores(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := any(logs).(raft.MonotonicLogStore); !ok || !m.IsMonotonic() {
		t.Fatalf("the node's log store %T is not a monotonic raft log store (the WAL is): raft would not reset it on a snapshot restore", logs)
	}
	term := []byte("CurrentTerm")
	if err := logs.SetUint64(term, 4); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8*200)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if err := logs.SetUint64(term, 5); err != nil {
					errs <- err
				}
				if err := logs.Set([]byte("LastVoteCand"), []byte("x")); err != nil {
					errs <- err
				}
			}
		}()
	}
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		// raft would hang in its shutdown as this test does.
		t.Fatal("stable store writes racing Close did not return within 2 minutes")
	}
	close(errs)
	for err := range errs {
		t.Fatalf("a stable store write racing Close failed (raft would panic): %v", err)
	}
	if err := logs.SetUint64(term, 9); err != nil {
		t.Fatalf("SetUint64 after Close: %v (raft would panic)", err)
	}
	if err := logs.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	again := mustOpenLogStore(t, dir)
	defer again.Close()
	v, err := again.GetUint64(term)
	if err != nil {
		t.Fatal(err)
	}
	if v != 4 && v != 5 {
		t.Fatalf("CurrentTerm after reopening = %d; want 4 or 5 (the writes before the close), never the one after it", v)
	}
}
