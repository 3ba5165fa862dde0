package testcluster

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
)

// WaitConverged holds once every member's FSM has every command the leader
// committed, even when the entries after the last command are barriers (the
// leader's first barrier of a term, a read's, the systemd watchdog's): those
// never reach the FSM, whose applied index counts commands only, so comparing
// it with the commit index waited for a write that might never come.
func TestWaitConvergedAfterBarriers(t *testing.T) {
	c := New(t, 3)
	ld := c.Leader()
	node := c.Nodes[ld].Server.Node
	for i := 0; i < 3; i++ {
		if err := node.Barrier(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if fa, st := node.FSM.AppliedIndex(), node.Status(); fa >= st.CommitIndex {
		t.Fatalf("the leader's FSM is at %d, its commit index %d: no barrier after the last command, the case is not shown", fa, st.CommitIndex)
	}
	c.WaitConverged(10 * time.Second)
}

// TestFirstLeaderWaitCoversTheFirstElection: a bootstrap node with long
// timeouts (clustertest's TestUsageFlushWithoutQuorum gives n1 8 s) may wait
// up to twice its heartbeat timeout before it stands; New must wait longer
// than that, with room for starting up. With the flat 15 s it had, that test
// failed "no leader within 15s" when n1's first timer drew more than ~14 s.
func TestFirstLeaderWaitCoversTheFirstElection(t *testing.T) {
	for _, d := range []time.Duration{500 * time.Millisecond, 2 * time.Second, 8 * time.Second} {
		cfg := server.Defaults()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = d, d
		if got, longest := firstLeaderWait(cfg), 2*d; got < longest+10*time.Second {
			t.Errorf("timeouts %s: New waits %s for the first leader, the first election may start %s in", d, got, longest)
		}
	}
}
