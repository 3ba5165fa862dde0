package raftnode

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// openLeader opens a bootstrapped one-member cluster in a temp dir and waits
// until it leads.
func openLeader(t *testing.T) *Node {
	t.Helper()
	n, err := openAt(t.TempDir(), freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	waitLeads(t, n)
	return n
}

// freeAddr is a free loopback address (freeport.Addr).
func freeAddr(t *testing.T) string { return freeport.Addr(t, "tcp") }

// openAt opens the one-member node of dir on addr (bootstrapped when new),
// with short timeouts.
func openAt(dir, addr string) (*Node, error) {
	return Open(Config{ID: "idle", Dir: dir, BindAddr: addr, Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
}

// waitLeads waits up to 10 s for n to lead.
func waitLeads(t *testing.T, n *Node) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !n.IsLeader(); {
		if time.Now().After(deadline) {
			t.Fatal("no leadership within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
		// Caught up as /readyz judges it (CommandsAppliedWithin). Not one
		// CommandsApplied call: a read confirmed through the log (after a
		// stall of this process, which CPU load makes too) leaves the scan to
		// the caller, and 16 entries a call do not cover 200; and Raft's
		// applied index can trail its commit index for an instant after a
		// barrier returned.
		if ci := n.Status().CommitIndex; !n.CommandsAppliedWithin(ci, 5*time.Second) {
			t.Fatalf("scan %d: not caught up within 5 s after a read confirmed it (commit %d, FSM at %d)", scan, ci, n.FSM.AppliedIndex())
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

// CommandsApplied never covers a command Raft has handed to the FSM but the
// FSM has not applied yet: with the FSM held inside one batch, a later command
// is committed and counted in Raft's applied index, and neither it nor any
// index after the held one is reported applied (nor remembered as quiet) until
// the FSM runs again.
func TestCommandsAppliedWaitsForQueuedCommand(t *testing.T) {
	n := openLeader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hold, held := make(chan struct{}), make(chan uint64, 1)
	var holding atomic.Bool
	// The FSM goroutine has applied the bootstrap configuration when a
	// barrier returns, and reads the hook next after the command below has
	// passed through Raft's channels.
	if err := n.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Indexes past the log are not entries compacted away: not covered.
	if last := n.Raft.LastIndex(); n.CommandsApplied(last+3) || n.quietThrough.Load() > last {
		t.Fatalf("index %d covered (quiet through %d) with the log ending at %d", last+3, n.quietThrough.Load(), last)
	}
	n.FSM.OnApply = func(last uint64) {
		if holding.CompareAndSwap(true, false) {
			held <- last
			<-hold
		}
	}
	env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: "idle", APIAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	holding.Store(true)
	errs := make(chan error, 2)
	go func() { _, err := n.Apply(ctx, env); errs <- err }()
	first := <-held // the FSM has applied the first command and waits
	released := false
	defer func() {
		if !released {
			close(hold)
		}
	}()
	// Past the batcher, which holds a proposal until the one before is applied.
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- n.Raft.Apply(data, 10*time.Second).Error() }()
	// The second command commits and Raft hands it on (its applied index
	// moves), while the FSM still holds the first batch.
	var second uint64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if second = n.Raft.AppliedIndex(); second > first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Raft's applied index stayed at %d with a second command proposed", second)
		}
	}
	if !n.CommandsApplied(first) {
		t.Fatalf("the command at %d, applied, is not covered", first)
	}
	for idx := first + 1; idx <= second; idx++ {
		if n.CommandsApplied(idx) {
			t.Fatalf("index %d covered while the FSM is held at %d and the command at %d waits for it", idx, first, second)
		}
	}
	if q := n.quietThrough.Load(); q > first {
		t.Fatalf("quiet through %d, past the FSM's %d with a command waiting", q, first)
	}
	close(hold)
	released = true
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if !n.CommandsApplied(second) {
		t.Fatalf("the command at %d is not covered once the FSM applied it (FSM at %d)", second, n.FSM.AppliedIndex())
	}
}
