package orders

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestAgentBackOnNewLeaderAfterKill: the leader is SIGKILLed while a
// hostplane-agent-sim node (knowing every coordinator) holds its session; the
// node must be ready and connected on the new leader well within the bound
// derived from the configuration: detecting the dead session (ping 200 ms +
// 3 pings without pong), the election (framework.RaftTimeout, 1 s: a follower
// stands after 1-2 s without a heartbeat, a few rounds), and a few reconnect
// rounds (dial timeout 1 s per dead address, back-off at most 2 s), i.e.
// under 15 s.
func TestAgentBackOnNewLeaderAfterKill(t *testing.T) {
	const ping, grace = 200 * time.Millisecond, 2 * time.Second
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t),
		RaftTimeout: framework.RaftTimeout, Agents: true, AgentPing: ping, AgentGrace: grace})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := c.AnyAlive(nil).Admin().CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "reconnect"})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tf, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const node = "reconnect-node-1"
	sim := framework.StartSim(t, framework.AgentSim(t), "-coordinators", strings.Join(c.AgentAddrs(), ","), "-tokens-file", tf,
		"-node-id", node, "-dir", t.TempDir(), "-quiet", "-log-level", "debug", "-answer-actions", "-dial-timeout", "1s", "-backoff-min", "100ms", "-backoff-max", "2s")
	t.Cleanup(sim.Stop)
	up := func(n api.AgentNode) bool { return n.State == api.AgentNodeReady && n.Connected }
	c.WaitNode(node, 30*time.Second, "ready and connected", up)

	const bound = 15 * time.Second
	old := c.WaitLeader(10 * time.Second)
	killed := time.Now()
	c.Kill(old)
	nl, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(killed)
	// Read the node on the new leader itself: ready, connected, and it stays so.
	deadline := killed.Add(60 * time.Second)
	var last api.AgentNode
	for time.Now().Before(deadline) {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := c.Admin(nl).AgentNode(rctx, node)
		rcancel()
		if err == nil {
			last = n
			if up(n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("leader %d killed: new leader %d elected after %s; node ready and connected on it after %s (bound %s); last %+v", old, nl, elected.Round(time.Millisecond), took.Round(time.Millisecond), bound, last)
	if !up(last) || took > bound {
		t.Fatalf("node %s back on the new leader after %s (state %s, connected %v), want under %s", node, took.Round(time.Millisecond), last.State, last.Connected, bound)
	}
}

// TestSeparateKEKsAreLogged: coordinators started without a shared
// --webhook-kek-file cannot open the node CA another coordinator sealed. An
// agent sees only "tls: internal error"; the coordinator must say why in its
// log, naming the flag to fix.
func TestSeparateKEKsAreLogged(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 2, Bin: framework.Coordinator(t),
		RaftTimeout: framework.RaftTimeout, Agents: true, SeparateKEKs: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.WaitLeader(10 * time.Second)
	tok, err := c.Admin(leader).CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "separate keks"})
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Nodes[1-leader]
	tf := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tf, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := framework.StartSim(t, framework.AgentSim(t), "-coordinators", follower.AgentAddr, "-tokens-file", tf,
		"-node-id", "separate-keks-1", "-dir", t.TempDir(), "-quiet", "-dial-timeout", "1s", "-backoff-min", "100ms", "-backoff-max", "1s")
	t.Cleanup(sim.Stop)
	const want = "every coordinator needs the same --webhook-kek-file"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(follower.LogPath())
		if strings.Contains(string(b), "cannot load the node CA") && strings.Contains(string(b), want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("coordinator %s never logged why agents' handshakes fail (want %q); log tail:\n%s", follower.ID, want, framework.Tail(follower.LogPath(), 20))
}
