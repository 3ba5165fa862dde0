package e2e

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestNodeReportsBridges: an agent started with two --bridge flags (real
// bridges, made by the test) reports them in its Hello, and the coordinators
// keep them on the node record (admin API: the node's "bridges"); an agent
// given a bridge that does not exist refuses to start and says so.
func TestNodeReportsBridges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and an agent")
	}
	c := newCluster(t, clusterOpts{n: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := c.AnyAlive(nil).Admin()
	tok, err := adm.CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "bridges"})
	if err != nil {
		t.Fatalf("create join token: %v", err)
	}
	a := framework.NewAgentProcess(t, framework.AgentBinary(t), c.AgentAddrs(), tok.Token)
	a.Bridges = []string{a.Prefix + "-br0", a.Prefix + "-br1"}

	// With a bridge missing the agent exits before it touches anything, naming it.
	dir := t.TempDir()
	if out, err := exec.Command(a.Bin, "-data-dir", dir+"/data", "-socket", dir+"/s.sock", "-pool-name", a.PoolName,
		"-pool-path", a.PoolPath, "-bridge", a.Prefix+"-nobr").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "bridge "+a.Prefix+"-nobr does not exist") {
		t.Fatalf("agent with a missing bridge: %v\n%s", err, out)
	}
	for _, b := range a.Bridges {
		if out, err := exec.Command("ip", "link", "add", b, "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("ip link add %s type bridge: %v %s", b, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", b).Run() })
	}
	a.Start("")
	n := c.WaitNode(a.ID, 30*time.Second, "ready with its bridges", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected && slices.Equal(n.Bridges, a.Bridges)
	})
	if n.ProtocolVersion < 103 {
		t.Fatalf("node protocol %d, want >= 103", n.ProtocolVersion)
	}
	got, err := adm.AgentNode(ctx, a.ID)
	if err != nil || !slices.Equal(got.Bridges, a.Bridges) {
		t.Fatalf("admin node %s: bridges %v, want %v (%v)", a.ID, got.Bridges, a.Bridges, err)
	}
}
