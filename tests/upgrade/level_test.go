package upgrade

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

const actOld = "--test-max-semantics-level=1" // the coordinator acts as a release before level 2

// newLevel is the semantics level the new release (this binary) applies:
// the cluster's once every coordinator runs it. The level-2 changes this
// test checks (the list of actions, the Raft handshake) hold from level 2 on.
const newLevel = 17

// TestSemanticsLevelRaisedByLastUpgrade is the README's rolling upgrade seen
// through the cluster's semantics level, with real coordinator processes: a
// cluster of three coordinators of an older release stays at its level while
// two of them run the new one (the leader says which member holds it back),
// rises by itself seconds after the last one restarts on the new release,
// and a coordinator started afterwards as the older release refuses to
// start on the data directory of the newer level instead of applying the
// log as the older release would.
func TestSemanticsLevelRaisedByLastUpgrade(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 5 * time.Second,
		Extra: func(int, *framework.CoordinatorProcess) []string { return []string{actOld} }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// An action made at level 1: the list of actions (level 2) refuses
	// until the raise, whose apply indexes it on every replica.
	oldAction, key := actionAtLevelOne(t, ctx, c)
	listed := func(i int) framework.Reply {
		t.Helper()
		// stale: this coordinator's own state, not the leader's.
		return framework.NewAPI(t, c.URL(i), nil).Call(key, "GET", "/v1/actions?consistency=stale", nil, nil)
	}
	for i := range c.Nodes {
		if rep := listed(i); rep.Status != 503 || rep.Code() != "cluster_upgrading" || rep.Header.Get("Retry-After") == "" {
			t.Fatalf("GET /v1/actions at level 1 on coordinator %d: %s, want 503 cluster_upgrading", i, rep)
		}
	}

	leaderStatus := func() api.ClusterStatus {
		t.Helper()
		st, err := c.Leader().Admin().ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := leaderStatus(); st.Level != 1 || st.MaxLevel != 1 {
		t.Fatalf("cluster of the older release: level %d, leader applies up to %d; want 1, 1", st.Level, st.MaxLevel)
	}
	upgrade := func(i int) {
		t.Helper()
		p := c.Nodes[i]
		p.Args = slices.DeleteFunc(slices.Clone(p.Args), func(a string) bool { return a == actOld })
		c.Restart(i)
	}
	upgrade(0)
	upgrade(1)
	// A leader of the new release is the one that would raise the level.
	// The transfer, just after two restarts, may time out on a loaded
	// machine (409 leadership_transfer_failed: "leadership transfer
	// timeout", seen at load 22) or meet an election (503): asked again,
	// as an operator would, up to five times.
	for try := 1; leaderStatus().LeaderID == c.Nodes[2].ID; try++ {
		_, err := c.Leader().Admin().ClusterTransferLeadership(ctx, c.Nodes[0].ID)
		if err == nil {
			break
		}
		if st := api.StatusOf(err); try == 5 || st != http.StatusConflict && st != http.StatusServiceUnavailable {
			t.Fatalf("transfer the leadership to %s (try %d): %v", c.Nodes[0].ID, try, err)
		}
		t.Logf("transfer the leadership to %s (try %d): %v: asked again", c.Nodes[0].ID, try, err)
		time.Sleep(time.Second)
	}
	// It asks the members every 3 s: several rounds pass.
	time.Sleep(8 * time.Second)
	// The new release's leader reaches the older one without the Raft
	// handshake, which that release does not speak (raftnode/auth.go).
	if b, _ := os.ReadFile(c.Leader().LogPath()); !strings.Contains(string(b), "does not speak the cluster-secret handshake") {
		t.Fatalf("the leader of the new release does not log its fall back to plain Raft for the older release; log tail:\n%s", tail(b, 2000))
	}
	// …and replicates to it: the older release applies what the leader committed.
	committed := leaderStatus().CommitIndex
	for deadline := time.Now().Add(15 * time.Second); ; {
		st, err := c.Nodes[2].Admin().ClusterStatus(ctx)
		if err == nil && st.AppliedIndex >= committed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the older release's coordinator applied up to %d (%v), the leader committed %d: the new release's leader does not reach it", st.AppliedIndex, err, committed)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := leaderStatus()
	if st.Level != 1 || st.MaxLevel != newLevel {
		t.Fatalf("level %d (leader %s applies up to %d) with coordinator 3 still on the older release; want level 1 under a leader of level %d", st.Level, st.LeaderID, st.MaxLevel, newLevel)
	}
	// The leader knows who holds the level back.
	levels := map[string]uint16{}
	for _, s := range st.Servers {
		levels[s.ID] = s.MaxLevel
	}
	if levels[c.Nodes[2].ID] != 1 || levels[c.Nodes[0].ID] != newLevel || levels[c.Nodes[1].ID] != newLevel {
		t.Fatalf("leader's view of the members' levels: %v, want %s at 1 and the others at %d", levels, c.Nodes[2].ID, newLevel)
	}
	upgrade(2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		raised := true
		for i := range c.Nodes {
			st, err := c.Nodes[i].Admin().ClusterStatus(ctx)
			if err != nil || st.Level != newLevel {
				raised = false
			}
		}
		if raised {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("level not %d on every coordinator 30 s after the last upgrade: leader says %+v", newLevel, leaderStatus())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Each replica indexed the action made at level 1 in the raise's apply.
	for i := range c.Nodes {
		var l api.ActionList
		rep := listed(i)
		if rep.Status == 200 {
			rep.Decode(t, &l)
		}
		if len(l.Data) != 1 || l.Data[0].ID != oldAction {
			t.Fatalf("GET /v1/actions at level 2 on coordinator %d: %s, want the action %s made at level 1", i, rep, oldAction)
		}
	}

	// At level 2 every coordinator requires the Raft handshake: a client
	// without it (as the older release) is refused, the cluster unmoved.
	for _, p := range c.Nodes {
		framework.WaitLogged(t, p.LogPath(), "Raft connections must prove the cluster secret from now on", 10*time.Second)
	}
	plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	term := leaderStatus().Term
	for _, p := range c.Nodes {
		var rv raft.RequestVoteResponse
		if err := plain.RequestVote("old", raft.ServerAddress(p.RaftAddr), &raft.RequestVoteRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("old"), Addr: []byte(plain.LocalAddr())},
			Term:      term + 1000, LastLogIndex: 1 << 40, LastLogTerm: term + 1000,
		}, &rv); err == nil {
			t.Fatalf("%s answered a RequestVote without the handshake at level 2: %+v", p.ID, rv)
		}
	}
	if st := leaderStatus(); st.Term >= term+1000 {
		t.Fatalf("a RequestVote without the handshake moved the term to %d", st.Term)
	}

	// Back to the older release on one coordinator: it must not start.
	p := c.Nodes[2]
	p.Stop()
	p.Args = append(slices.Clone(p.Args), actOld)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the older release kept running on a data directory of level 2")
	}
	p.Kill() // reaps it
	if b, _ := os.ReadFile(p.LogPath()); !strings.Contains(string(b), "cannot be downgraded past its cluster's level") {
		t.Fatalf("the refused start does not say why; log tail:\n%s", tail(b, 2000))
	}
	// The other two still serve writes, and the coordinator comes back on the new release.
	p.Args = slices.DeleteFunc(p.Args, func(a string) bool { return a == actOld })
	c.Restart(2)
	if st := leaderStatus(); st.Level != newLevel || len(st.Servers) != 3 {
		t.Fatalf("after the coordinator came back: %+v", st)
	}
}

// actionAtLevelOne enrols the scripted agent node, orders a server for a
// new account and waits for its provisioning; it returns the action and
// the account's key.
func actionAtLevelOne(t *testing.T, ctx context.Context, c *framework.ProcessCluster) (string, string) {
	t.Helper()
	c.StartTestAgent("up-node-1", strings.Join(c.AgentAddrs(), ","), "-kvm")
	if _, err := c.AnyAlive(nil).Admin().CreateProduct(ctx, "vps-up", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS",
		RetailMonthlyUsdCents: 1000, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}); err != nil {
		t.Fatal(err)
	}
	acc, key, err := c.NewAccount(ctx, "up-level@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	c.Credit(ctx, acc.ID, 1000)
	a := framework.NewAPI(t, c.URL(0), nil)
	rep := a.Call(key, "POST", "/v1/servers", map[string]any{"plan_slug": "vps-up", "label": "up", "hostname": "up", "os_template": "base"}, nil)
	var so api.ServerOrder
	if rep.Status != 201 {
		t.Fatalf("order at level 1: %s", rep)
	}
	rep.Decode(t, &so)
	framework.WaitActionSuccess(t, a.Client(key), so.Action.ID, 60*time.Second)
	return so.Action.ID, key
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
