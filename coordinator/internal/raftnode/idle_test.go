package raftnode

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// openLeader opens a bootstrapped one-member cluster in a temp dir and waits
// until it leads.
func openLeader(t *testing.T) *Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n, err := Open(Config{ID: "idle", Dir: t.TempDir(), BindAddr: addr, Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	for deadline := time.Now().Add(10 * time.Second); !n.IsLeader(); {
		if time.Now().After(deadline) {
			t.Fatal("no leadership within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// An idle leader whose log grows only by barriers (the systemd watchdog's
// progress check commits one per ping) still serves linearizable reads and
// counts as caught up: the FSM's applied index stays at the last command, far
// behind the commit index. Before CommandsApplied remembered how far the log
// holds no command, 64 such barriers made every read fail with "the state
// machine did not reach index" and kept /readyz at "catching up".
func TestIdleBarriersKeepReadsAndReadiness(t *testing.T) {
	for _, scan := range []uint64{4096, 16} {
		old := maxQuietScan
		maxQuietScan = scan // 16: several calls each read part of the run
		t.Cleanup(func() { maxQuietScan = old })
		n := openLeader(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: "idle", APIAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Apply(ctx, env); err != nil {
			t.Fatal(err)
		}
		cmd := n.FSM.AppliedIndex()
		for i := 0; i < 200; i++ {
			if err := n.Barrier(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		st := n.Status()
		if st.CommitIndex < cmd+200 || n.FSM.AppliedIndex() != cmd {
			t.Fatalf("scan %d: commit index %d, FSM at %d, want the commit index >= %d and the FSM at the command (%d)", scan, st.CommitIndex, n.FSM.AppliedIndex(), cmd+200, cmd)
		}
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		if err := n.LinearizableRead(rctx); err != nil {
			t.Fatalf("scan %d: linearizable read after 200 barriers: %v", scan, err)
		}
		rcancel()
		if !n.CommandsApplied(n.Status().CommitIndex) {
			t.Fatalf("scan %d: not caught up after a read confirmed it", scan)
		}
		// A command after the barriers moves the FSM on; it covers its index.
		if _, err := n.Apply(ctx, env); err != nil {
			t.Fatal(err)
		}
		if got := n.FSM.AppliedIndex(); got <= st.CommitIndex || !n.CommandsApplied(got) {
			t.Fatalf("scan %d: FSM at %d after a command past %d (covered: %v)", scan, got, st.CommitIndex, n.CommandsApplied(got))
		}
		cancel()
	}
}

// commandsBetween finds a command among other entries, which is what keeps
// CommandsApplied from covering an index whose command the FSM lacks.
func TestCommandsBetweenFindsCommand(t *testing.T) {
	n := openLeader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := n.Status().CommitIndex
	env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: "idle", APIAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	if err := n.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	after := n.Status().CommitIndex
	if !n.commandsBetween(before+1, after) {
		t.Fatalf("no command found in [%d, %d], which holds the one applied at %d", before+1, after, n.FSM.AppliedIndex())
	}
	if n.commandsBetween(after, after) {
		t.Fatalf("the barrier at %d counted as a command", after)
	}
}
