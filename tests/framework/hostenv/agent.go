package hostenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// Agent is a hostplane-agent process with only the hosting role, serving
// the node of an Env.
type Agent struct {
	t      testing.TB
	Bin    string
	Args   []string
	Env    []string
	Log    string
	Socket string
	proc   framework.Child
}

// Start runs the agent (with HOSTPLANE_AGENT_FAILPOINT=failpoint) and waits
// until its node socket answers.
func (a *Agent) Start(failpoint string) {
	a.t.Helper()
	cmd := exec.Command(a.Bin, a.Args...)
	cmd.Env = append(append(os.Environ(), a.Env...), "HOSTPLANE_AGENT_FAILPOINT="+failpoint)
	if err := a.proc.Start(cmd, a.Log); err != nil {
		a.t.Fatal(err)
	}
	framework.WaitAgentHealthy(a.t, a.Socket, a.proc.Exited(), a.Log, 30*time.Second)
}

// Stop ends the agent (SIGTERM, then SIGKILL after 15 s).
func (a *Agent) Stop() { a.proc.StopGroup(15 * time.Second) }

// WaitExit waits for the agent to exit by itself (at a failpoint).
func (a *Agent) WaitExit(timeout time.Duration) {
	a.t.Helper()
	if !a.proc.WaitExit(timeout) {
		a.t.Fatalf("agent did not die at its failpoint within %s:\n%s", timeout, framework.Tail(a.Log, 30))
	}
}

// JoinAgent starts a hosting agent for the Env joined to the cluster c as
// nodeID (with the extra agent flags), waits until the node is ready and
// connected with the hosting role, starts sshd for its SFTP accounts and
// waits until the node's PHP-FPM versions reached the coordinators. The
// agent is stopped when the test ends (its log tail shown if it failed).
func (e *Env) JoinAgent(t *testing.T, c *framework.ProcessCluster, nodeID string, extra ...string) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := c.AnyAlive(nil).Admin().CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "hosting " + nodeID})
	if err != nil {
		t.Fatal(err)
	}
	root := e.Root
	a := &Agent{t: t, Bin: framework.AgentBinary(t), Log: filepath.Join(root, "agent.log"), Socket: filepath.Join(root, "agent.sock"),
		Args: []string{"-roles", "hosting", "-data-dir", filepath.Join(root, "agent"), "-socket", filepath.Join(root, "agent.sock"),
			"-hosting-root", root, "-hosting-http-listen", e.HTTPAddr, "-hosting-mariadb-socket", e.DBSocket,
			"-hosting-sftp-group", e.SFTPGroup, "-coordinators", strings.Join(c.AgentAddrs(), ","), "-node-id", nodeID,
			"-log-level", "debug", "-log-format", "text"},
		Env: []string{"HOSTPLANE_AGENT_JOIN_TOKEN=" + tok.Token}}
	a.Args = append(a.Args, extra...)
	t.Cleanup(func() {
		// nginx and PHP-FPM outlive the agent; the Env stops them after this.
		a.Stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", framework.Tail(a.Log, 60))
		}
	})
	a.Start("")
	c.WaitNode(nodeID, 30*time.Second, "ready and connected with the hosting role", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected && slices.Contains(n.Roles, api.RoleHosting)
	})
	e.StartSSHD(t)
	// The node's installed PHP-FPM versions reach the coordinators (inventory).
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.AnyAlive(nil).Admin().AgentNodeDetail(ctx, nodeID)
		if err == nil && slices.Contains(d.PHPVersions, "8.2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node detail lists no PHP 8.2 after 30 s: %+v %v", d.PHPVersions, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}
