package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

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
	j, err := Open(filepath.Join(b.TempDir(), "j.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
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
