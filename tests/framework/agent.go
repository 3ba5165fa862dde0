package framework

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework/testenv"
)

// AgentProcess is one real hostplane-agent process against the real libvirtd,
// with its own data directory and storage pool; the data directory (journal,
// node certificate, console logs) survives restarts. It implements Agent.
type AgentProcess struct {
	ID, Prefix         string
	Dir, Data, Socket  string
	PoolName, PoolPath string
	Coordinators       []string
	Token              string
	Bin                string
	Guest              testenv.Guest
	StatsInterval      time.Duration // -stats-interval (0: 1s)
	Bridges            []string      // one -bridge each (they must exist)
	// ConsoleListen is passed as -console-listen when set (agents of older
	// builds have no such flag). NewAgentProcess sets a free loopback port,
	// so agents of tests running at the same time never both take the
	// default 127.0.0.1:8423.
	ConsoleListen string

	t    testing.TB
	proc Child
}

var _ Agent = (*AgentProcess)(nil)

// NewAgentProcess prepares (does not start) an agent of bin enrolling at the
// coordinators' session addresses with token. It fails the test, saying how to
// install them, unless libvirtd and the test guest are there. Its pool and every
// domain named with its prefix are removed when the test ends.
func NewAgentProcess(t testing.TB, bin string, coordinators []string, token string) *AgentProcess {
	t.Helper()
	testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	prefix := testenv.Prefix()
	dir, err := MkdirTemp("hp-agent")
	if err != nil {
		t.Fatal(err)
	}
	a := &AgentProcess{t: t, ID: prefix + "-hv1", Prefix: prefix, Dir: dir, Data: filepath.Join(dir, "data"),
		Socket: filepath.Join(dir, "agent.sock"), PoolName: prefix + "-pool", PoolPath: filepath.Join(dir, "pool"),
		Coordinators: coordinators, Token: token, Bin: bin, Guest: g, ConsoleListen: FreeAddr(t, "tcp")}
	testenv.Cleanup(t, prefix, a.PoolName) // registered first: runs after the agent is stopped
	stopThenClean(t, "agent", dir, a.LogPath(), a.Stop)
	return a
}

// LogPath is the agent's log file (appended across restarts).
func (a *AgentProcess) LogPath() string { return filepath.Join(a.Dir, "agent.log") }

// Exited is closed when the current process exits.
func (a *AgentProcess) Exited() <-chan struct{} { return a.proc.Exited() }

// Running reports whether the agent process is up.
func (a *AgentProcess) Running() bool { return a.proc.Started() }

// Start runs the agent and waits until its local API is healthy; failpoint
// ("KIND:STEP", may be empty) makes it SIGKILL itself when an operation reaches
// that journal step.
func (a *AgentProcess) Start(failpoint string) {
	a.t.Helper()
	if a.proc.Started() {
		a.t.Fatal("agent already running")
	}
	stats := a.StatsInterval
	if stats == 0 {
		stats = time.Second
	}
	cmd := exec.Command(a.Bin,
		"-data-dir", a.Data, "-socket", a.Socket, "-libvirt-socket", testenv.LibvirtSocket(),
		"-pool-name", a.PoolName, "-pool-path", a.PoolPath, "-stop-grace", "30s", "-stats-interval", stats.String(),
		"-min-free-bytes", "67108864", "-log-level", "debug",
		"-coordinators", strings.Join(a.Coordinators, ","), "-node-id", a.ID)
	for _, b := range a.Bridges {
		cmd.Args = append(cmd.Args, "-bridge", b)
	}
	if a.ConsoleListen != "" {
		cmd.Args = append(cmd.Args, "-console-listen", a.ConsoleListen)
	}
	// The token is only spent on the first start; later starts use the stored certificate.
	cmd.Env = append(os.Environ(), "HOSTPLANE_AGENT_JOIN_TOKEN="+a.Token, "HOSTPLANE_AGENT_FAILPOINT="+failpoint)
	if err := a.proc.Start(cmd, a.LogPath()); err != nil {
		a.t.Fatalf("start agent: %v", err)
	}
	a.WaitHealthy(30 * time.Second)
}

// WaitHealthy waits until the agent's local API answers healthy.
func (a *AgentProcess) WaitHealthy(timeout time.Duration) {
	a.t.Helper()
	WaitAgentHealthy(a.t, a.Socket, a.proc.Exited(), a.LogPath(), timeout)
}

// WaitAgentHealthy waits up to timeout until the local API of the agent on
// socket answers healthy. It fails t, with the tail of the agent's log, when
// the agent exits first (exited is closed) or the time runs out.
func WaitAgentHealthy(t testing.TB, socket string, exited <-chan struct{}, logPath string, timeout time.Duration) {
	t.Helper()
	nc := client.NodeNew(socket)
	defer nc.Close()
	gone, err := waitUp(exited, timeout, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return nc.Healthy(ctx)
	})
	switch {
	case gone:
		t.Fatalf("agent exited while starting; log:\n%s", Tail(logPath, 30))
	case err != nil:
		t.Fatalf("agent local API not healthy after %s: %v; log:\n%s", timeout, err, Tail(logPath, 30))
	}
}

// Kill SIGKILLs the agent (a crash or a pulled plug) and waits for it.
func (a *AgentProcess) Kill() { a.proc.Kill() }

// Stop asks the agent to exit (SIGTERM), killing it after 15 s.
func (a *AgentProcess) Stop() { a.proc.Stop(15 * time.Second) }

// WaitExit waits for the agent to exit by itself (a failpoint).
func (a *AgentProcess) WaitExit(timeout time.Duration) {
	a.t.Helper()
	if !a.proc.WaitExit(timeout) {
		a.t.Fatalf("agent still running %s after the action was sent (failpoint not reached); log:\n%s", timeout, Tail(a.LogPath(), 30))
	}
}

// Node is a client of the agent's local API.
func (a *AgentProcess) Node() *client.NodeClient { return client.NodeNew(a.Socket) }

// ConsoleLog is the serial console file of a VM the agent runs.
func (a *AgentProcess) ConsoleLog(vm string) string {
	return filepath.Join(a.Data, "console", vm+".log")
}

// ImportTemplate imports a test guest disk as a template through the local API.
func (a *AgentProcess) ImportTemplate(name, disk string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc := a.Node()
	defer nc.Close()
	_, err := nc.ImportTemplate(ctx, api.NodeTemplateImportRequest{
		OpID: a.Prefix + "-import-" + name, Name: name, OSFamily: "linux", ImagePath: disk, SHA256: testenv.SHA256File(a.t, disk),
		KernelPath: a.Guest.Kernel, InitrdPath: a.Guest.Initrd, Cmdline: a.Guest.Cmdline})
	if err != nil {
		a.t.Fatalf("import template %s: %v", name, err)
	}
}

// DiskPath is the path of a VM's current disk, from the agent's registry.
func (a *AgentProcess) DiskPath(vm string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc := a.Node()
	defer nc.Close()
	v, err := nc.VM(ctx, vm)
	if err != nil {
		a.t.Fatalf("agent local API: vm %s: %v", vm, err)
	}
	return filepath.Join(a.PoolPath, v.DiskVolume)
}
