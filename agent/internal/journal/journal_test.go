package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// openTemp is a journal in a fresh temporary directory, closed when the
// test or benchmark ends.
func openTemp(tb testing.TB) *DB {
	tb.Helper()
	j, err := Open(filepath.Join(tb.TempDir(), "j.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { j.Close() })
	return j
}

func TestBeginReplayMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := j.InputHash("vm.stop", "a", map[string]int{"x": 1})
	h2, _ := j.InputHash("vm.stop", "a", map[string]int{"x": 2})
	if h1 == h2 {
		t.Fatal("different input, same hash")
	}
	rec, existed, err := j.Begin(Record{ID: "op1", Kind: "vm.stop", Target: "a", InputHash: h1, StartedAt: time.Now()})
	if err != nil || existed || rec.State != api.NodeOpRunning {
		t.Fatalf("begin: %+v %v %v", rec, existed, err)
	}
	if _, _, err := j.Begin(Record{ID: "op1", Kind: "vm.stop", Target: "a", InputHash: h2}); !errors.Is(err, ErrInputMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	rec.State, rec.Result = api.NodeOpSucceeded, &api.NodeOpResult{PowerMethod: "graceful"}
	if err := j.Update(rec); err != nil {
		t.Fatal(err)
	}
	if running, _ := j.Running(); len(running) != 0 {
		t.Fatalf("running: %v", running)
	}
	j.Close()

	// The key survives a reopen, so replays after a restart hash the same.
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	h1b, _ := j.InputHash("vm.stop", "a", map[string]int{"x": 1})
	if h1b != h1 {
		t.Fatal("hash changed across reopen")
	}
	got, existed, err := j.Begin(Record{ID: "op1", Kind: "vm.stop", Target: "a", InputHash: h1})
	if err != nil || !existed || got.Result.PowerMethod != "graceful" {
		t.Fatalf("replay: %+v %v %v", got, existed, err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	good, _ := json.Marshal(Record{Version: 1, ID: "a", Kind: "vm.stop", InputHash: "h", State: "running"})
	f.Add(good)
	f.Add([]byte(`{"v":1,"id":"a","kind":"k","input_hash":"h","state":"failed"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if r.ID == "" || r.Version != 1 || (r.State == api.NodeOpFailed && r.Error == nil) {
			t.Fatalf("accepted invalid record %+v", r)
		}
		_ = r.Operation()
	})
}

// BenchmarkOperationRecord measures what the journal adds to every operation:
// one durable Begin and one durable final Update.
func BenchmarkOperationRecord(b *testing.B) {
	j := openTemp(b)
	for i := 0; i < b.N; i++ {
		rec, _, err := j.Begin(Record{ID: fmt.Sprint("op", i), Kind: "vm.start", Target: "a", InputHash: "h", StartedAt: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		rec.State = api.NodeOpSucceeded
		if err := j.Update(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPrune: finished operations older than the cutoff go; recent ones, running
// ones (however old) and the templates and VMs stay; a pruned id starts afresh.
func TestPrune(t *testing.T) {
	j := openTemp(t)
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	add := func(id, state string, age time.Duration) {
		h, _ := j.InputHash("vm.stop", "a", id)
		rec, _, err := j.Begin(Record{ID: id, Kind: "vm.stop", Target: "a", InputHash: h, StartedAt: now.Add(-age - time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if state == api.NodeOpRunning {
			return
		}
		rec.State, rec.FinishedAt = state, now.Add(-age)
		if state == api.NodeOpFailed {
			rec.Error = &api.NodeError{Code: api.NodeErrInternal, Message: "boom"}
		}
		if err := j.Update(rec); err != nil {
			t.Fatal(err)
		}
	}
	add("old-ok", api.NodeOpSucceeded, 8*24*time.Hour)
	add("old-failed", api.NodeOpFailed, 30*24*time.Hour)
	add("old-running", api.NodeOpRunning, 90*24*time.Hour)
	add("new-ok", api.NodeOpSucceeded, time.Hour)
	add("edge", api.NodeOpSucceeded, 7*24*time.Hour) // exactly at the cutoff: kept
	if err := j.PutTemplate(Template{NodeTemplate: api.NodeTemplate{Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	if err := j.PutVM(VM{Name: "v"}); err != nil {
		t.Fatal(err)
	}

	n, err := j.Prune(now.Add(-7 * 24 * time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	for id, want := range map[string]bool{"old-ok": false, "old-failed": false, "old-running": true, "new-ok": true, "edge": true} {
		if _, err := j.Get(id); (err == nil) != want {
			t.Errorf("%s: kept=%v, want %v (%v)", id, err == nil, want, err)
		}
	}
	if running, _ := j.Running(); len(running) != 1 || running[0].ID != "old-running" {
		t.Fatalf("running after prune: %+v", running)
	}
	if _, err := j.GetTemplate("t"); err != nil {
		t.Fatal("template pruned")
	}
	if _, err := j.GetVM("v"); err != nil {
		t.Fatal("vm pruned")
	}
	if n, _ := j.Prune(now.Add(-7 * 24 * time.Hour)); n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
	h, _ := j.InputHash("vm.stop", "a", "other input")
	if _, existed, err := j.Begin(Record{ID: "old-ok", Kind: "vm.stop", Target: "a", InputHash: h, StartedAt: now}); err != nil || existed {
		t.Fatalf("a pruned id is new again: existed=%v %v", existed, err)
	}
}

// TestPruneEvery prunes at start and on each tick until the context ends.
func TestPruneEvery(t *testing.T) {
	j := openTemp(t)
	h, _ := j.InputHash("vm.stop", "a", 1)
	rec, _, _ := j.Begin(Record{ID: "op", Kind: "vm.stop", Target: "a", InputHash: h, StartedAt: time.Now()})
	rec.State, rec.FinishedAt = api.NodeOpSucceeded, time.Now()
	if err := j.Update(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.PruneEvery(ctx, time.Minute, 10*time.Millisecond, func() time.Time { return time.Now().Add(2 * time.Minute) }, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := j.Get("op"); errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not pruned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
