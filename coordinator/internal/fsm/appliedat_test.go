package fsm

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestAppliedAtIsTheLatestTimeKept: AppliedAt is the latest time of the
// commands applied, an earlier one (a leader whose clock is behind) does not
// move it back, and it survives a restart, though the replayed entries are
// skipped then.
func TestAppliedAtIsTheLatestTimeKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !f.AppliedAt().IsZero() {
		t.Fatalf("a new FSM's AppliedAt: %s", f.AppliedAt())
	}
	t0 := time.Date(2026, 12, 4, 16, 0, 0, 123456789, time.UTC)
	entry := func(idx uint64, at time.Time, email string) *raft.Log {
		env, err := NewEnvelope(CmdAccountCreate, at, AccountCreate{ID: "acc_" + email, Email: email + "@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b}
	}
	f.ApplyBatch([]*raft.Log{entry(1, t0, "a"), entry(2, t0.Add(-time.Second), "b")})
	if got := f.AppliedAt(); !got.Equal(t0) {
		t.Fatalf("AppliedAt after a batch: %s, want its latest time %s", got, t0)
	}
	f.Apply(entry(3, t0.Add(-3*time.Hour), "c"))
	if got := f.AppliedAt(); !got.Equal(t0) {
		t.Fatalf("AppliedAt after an entry of an earlier time: %s, want %s", got, t0)
	}
	f.Apply(entry(4, t0.Add(time.Millisecond), "d"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.ApplyBatch([]*raft.Log{entry(3, t0.Add(-3*time.Hour), "c"), entry(4, t0.Add(time.Millisecond), "d")}) // replayed, skipped
	if got, want := f.AppliedAt(), t0.Add(time.Millisecond); !got.Equal(want) {
		t.Fatalf("AppliedAt after a restart: %s, want %s", got, want)
	}
}
