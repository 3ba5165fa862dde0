package raftnode

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// A data directory whose Raft log was replaced by an older copy while fsm.db
// was kept (the pre-WAL rollback done without removing fsm.db) is refused at
// start with what to do, instead of acknowledging writes the FSM would skip;
// without fsm.db the same directory starts and rebuilds the state the old log
// holds.
func TestOpenRefusesStateAheadOfLog(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	open := func() (*Node, error) { return openAt(dir, addr) }
	// run opens the node, waits for its leadership, applies n commands and
	// closes it; it returns the FSM's applied index at the end.
	run := func(n int) uint64 {
		t.Helper()
		node, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer node.Close()
		waitLeads(t, node)
		if err := node.Barrier(5 * time.Second); err != nil { // the log is applied
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 0; i < n; i++ {
			env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: "ahead", APIAddr: "127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := node.Apply(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
		return node.FSM.AppliedIndex()
	}
	old := run(1)
	oldLog := filepath.Join(t.TempDir(), walDirName)
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, walDirName), oldLog).CombinedOutput(); err != nil {
		t.Fatalf("copy the log: %v: %s", err, out)
	}
	newer := run(5) // a clean restart is accepted
	if newer <= old {
		t.Fatalf("applied %d after five more commands, %d before", newer, old)
	}
	if err := os.RemoveAll(filepath.Join(dir, walDirName)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", oldLog, filepath.Join(dir, walDirName)).CombinedOutput(); err != nil {
		t.Fatalf("restore the old log: %v: %s", err, out)
	}
	node, err := open()
	if err == nil {
		node.Close()
		t.Fatal("started with fsm.db past the end of its log")
	}
	if !strings.Contains(err.Error(), "remove fsm.db") || !strings.Contains(err.Error(), "end at") {
		t.Fatalf("refusal does not say what to do: %v", err)
	}
	t.Log(err)
	if err := os.Remove(filepath.Join(dir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	if got := run(0); got != old {
		t.Fatalf("without fsm.db the state was rebuilt to index %d, not the old log's %d", got, old)
	}
}
