package fsm

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// heldWriter blocks its first Write until release is closed, saying so on
// started: a backup to a client that has stopped reading.
type heldWriter struct {
	started, release chan struct{}
	n                int
}

func (w *heldWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		close(w.started)
		<-w.release
	}
	w.n += len(p)
	return len(p), nil
}

// TestBackupDoesNotStallApplies: while a backup holds its read transaction
// (its client reads slowly), commands that grow the database to several
// times its size still apply. bbolt remaps a file that outgrew its mapping,
// and a remap waits for every read transaction to end: with the default
// mapping (32 KiB, doubled as the file grows) these applies waited for the
// backup to finish (this test fails so with InitialMmapSize unset).
func TestBackupDoesNotStallApplies(t *testing.T) {
	r := newOrderRig(t, 0)
	size0 := r.f.Size()
	w := &heldWriter{started: make(chan struct{}), release: make(chan struct{})}
	backedUp := make(chan error, 1)
	go func() { backedUp <- r.f.Backup(w) }()
	<-w.started

	// Tickets of 8 KiB messages until the database is 4 times its size
	// and a MiB more: past at least one doubling of a default mapping.
	msg := strings.Repeat("m", 8<<10)
	applied := make(chan error, 1)
	go func() {
		for r.f.Size() < 4*size0+1<<20 {
			var logs []*raft.Log
			for range 16 {
				tk := r.ticket()
				tk.Message = msg
				logs = append(logs, r.entry(CmdTicketCreate, tk))
			}
			for _, res := range r.f.ApplyBatch(logs) {
				if err := res.(*Result).Err; err != nil {
					applied <- err
					return
				}
			}
		}
		applied <- nil
	}()
	var err error
	select {
	case err = <-applied:
		close(w.release)
	case <-time.After(20 * time.Second):
		t.Errorf("growing the database from %d bytes stalled while a backup was held", size0)
		close(w.release)
		err = <-applied
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := <-backedUp; err != nil {
		t.Fatalf("backup: %v", err)
	}
	if w.n < int(size0) {
		t.Errorf("backup wrote %d bytes of a %d-byte state", w.n, size0)
	}
}
