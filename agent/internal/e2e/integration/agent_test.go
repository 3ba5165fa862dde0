package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// agentProc is one hostplane-agent process with its own data dir and storage
// pool; the data dir (journal, node certificate, console logs) survives restarts.
type agentProc struct {
	t                  testing.TB
	id, prefix         string
	dir, data, socket  string
	poolName, poolPath string
	coordinators       []string
	token              string
	cmd                *exec.Cmd
	done               chan struct{}
	guest              testenv.Guest
	statsInterval      time.Duration // -stats-interval (default 1s)
}

// newAgent prepares (does not start) an agent enrolling with token. Its pool and
// every domain named with its prefix are removed when the test ends.
func newAgent(t testing.TB, coordinators []string, token string) *agentProc {
	t.Helper()
	testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	prefix := testenv.Prefix()
	dir, err := os.MkdirTemp("", "hp-e2e-agent")
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{t: t, id: prefix + "-hv1", prefix: prefix, dir: dir, data: filepath.Join(dir, "data"),
		socket: filepath.Join(dir, "agent.sock"), poolName: prefix + "-pool", poolPath: filepath.Join(dir, "pool"),
		coordinators: coordinators, token: token, guest: g}
	testenv.Cleanup(t, prefix, a.poolName) // registered first: runs after the agent is stopped
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("--- tail of agent log (%s):\n%s", a.logPath(), tail(a.logPath(), 40))
			t.Logf("agent files kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return a
}

func (a *agentProc) logPath() string { return filepath.Join(a.dir, "agent.log") }

// start runs the agent; failpoint ("KIND:STEP", may be empty) makes it SIGKILL
// itself when an operation reaches that journal step.
func (a *agentProc) start(failpoint string) {
	a.t.Helper()
	if a.cmd != nil {
		a.t.Fatal("agent already running")
	}
	logf, err := os.OpenFile(a.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	stats := a.statsInterval
	if stats == 0 {
		stats = time.Second
	}
	cmd := exec.Command(bins.agent,
		"-data-dir", a.data, "-socket", a.socket, "-libvirt-socket", testenv.LibvirtSocket(),
		"-pool-name", a.poolName, "-pool-path", a.poolPath, "-stop-grace", "30s", "-stats-interval", stats.String(),
		"-min-free-bytes", "67108864", "-log-level", "debug",
		"-coordinators", strings.Join(a.coordinators, ","), "-node-id", a.id)
	// The token is only spent on the first start; later starts use the stored certificate.
	cmd.Env = append(os.Environ(), "HOSTPLANE_AGENT_JOIN_TOKEN="+a.token, "HOSTPLANE_AGENT_FAILPOINT="+failpoint)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		a.t.Fatalf("start agent: %v", err)
	}
	a.cmd, a.done = cmd, make(chan struct{})
	done := a.done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	a.waitHealthy(30 * time.Second)
}

func (a *agentProc) waitHealthy(timeout time.Duration) {
	a.t.Helper()
	nc := a.node()
	defer nc.Close()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = nc.Healthy(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-a.done:
			a.t.Fatalf("agent exited while starting; log:\n%s", tail(a.logPath(), 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.t.Fatalf("agent local API not healthy after %s: %v", timeout, err)
}

// kill SIGKILLs the agent (a crash or a pulled plug) and waits for it.
func (a *agentProc) kill() {
	if a.cmd == nil {
		return
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.done
	a.cmd = nil
}

// stop asks the agent to exit (SIGTERM), killing it after 15s.
func (a *agentProc) stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
	a.cmd = nil
}

// waitExit waits for the agent to exit by itself (a failpoint).
func (a *agentProc) waitExit(timeout time.Duration) {
	a.t.Helper()
	select {
	case <-a.done:
		a.cmd = nil
	case <-time.After(timeout):
		a.t.Fatalf("agent still running %s after the action was sent (failpoint not reached); log:\n%s", timeout, tail(a.logPath(), 30))
	}
}

// node is a client of the agent's local API.
func (a *agentProc) node() *client.NodeClient { return client.NodeNew(a.socket) }

// consoleLog is the serial console file of a VM the agent runs.
func (a *agentProc) consoleLog(vm string) string { return filepath.Join(a.data, "console", vm+".log") }

// importTemplate imports a test guest disk as a template through the local API.
func (a *agentProc) importTemplate(name, disk string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc := a.node()
	defer nc.Close()
	_, err := nc.ImportTemplate(ctx, api.NodeTemplateImportRequest{
		OpID: a.prefix + "-import-" + name, Name: name, OSFamily: "linux", ImagePath: disk, SHA256: testenv.SHA256File(a.t, disk),
		KernelPath: a.guest.Kernel, InitrdPath: a.guest.Initrd, Cmdline: a.guest.Cmdline})
	if err != nil {
		a.t.Fatalf("import template %s: %v", name, err)
	}
}

// diskPath is the path of a VM's current disk, from the agent's registry.
func (a *agentProc) diskPath(vm string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc := a.node()
	defer nc.Close()
	v, err := nc.VM(ctx, vm)
	if err != nil {
		a.t.Fatalf("agent local API: vm %s: %v", vm, err)
	}
	return filepath.Join(a.poolPath, v.DiskVolume)
}
