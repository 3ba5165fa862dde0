package testcluster

import (
	"testing"
	"time"
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
