// Package libvirttest tests the agent end to end against the real libvirtd with the
// real test guest (TCG), through its local API.
package libvirttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/agent"
	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo test@hostplane"

// env is one test's agent: its own data dir, pool and name prefix.
type env struct {
	t      testing.TB
	prefix string
	cfg    config.Config
	guest  testenv.Guest
	c      *client.NodeClient
	stop   func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	prefix := testenv.Prefix()
	cfg := agentConfig(t.TempDir(), prefix)
	cfg.StopGrace = 30 * time.Second
	cfg.StatsInterval = 500 * time.Millisecond
	testenv.Cleanup(t, prefix, cfg.PoolName)
	return &env{t: t, prefix: prefix, cfg: cfg, guest: g}
}

// newStartedEnv is newEnv with the agent running in this process and a context
// that ends after timeout (or with the test).
func newStartedEnv(t *testing.T, timeout time.Duration) (*env, context.Context) {
	t.Helper()
	e := newEnv(t)
	e.startInProcess()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return e, ctx
}

// bootEnv is newStartedEnv for a test that boots guests: skipped with -short
// (why says what it boots).
func bootEnv(t *testing.T, why string, timeout time.Duration) (*env, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
	return newStartedEnv(t, timeout)
}

// agentConfig is the agent's configuration for a test or benchmark under dir,
// its pool named after prefix.
func agentConfig(dir, prefix string) config.Config {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Socket = filepath.Join(dir, "agent.sock")
	cfg.LibvirtSocket = testenv.LibvirtSocket()
	cfg.PoolName = prefix + "-pool"
	cfg.PoolPath = filepath.Join(dir, "pool")
	cfg.StatsInterval = time.Hour
	cfg.MinFreeBytes = 64 << 20
	return cfg
}

// startInProcess runs agent.Run in this process.
func (e *env) startInProcess() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		errc <- agent.Run(ctx, e.cfg, testenv.Logger(e.t).With("agent", e.prefix))
	}()
	e.stop = func() { cancel(); wg.Wait() }
	e.t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	e.connect(errc)
}

func (e *env) connect(errc <-chan error) {
	e.t.Helper()
	e.c = client.NodeNew(e.cfg.Socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := e.c.Healthy(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-errc:
			e.t.Fatalf("agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildAgent is the real agent binary: the run's shared build
// (framework.SharedBinDirEnv, set by scripts/run-tests.sh) or one built once
// per test process.
func buildAgent(t testing.TB) string {
	t.Helper()
	return framework.AgentBinary(t)
}

// startProcess runs the agent binary; failpoint (may be empty) makes it kill itself.
// It returns a channel closed when the process exits.
func (e *env) startProcess(failpoint string) <-chan struct{} {
	e.t.Helper()
	bin := buildAgent(e.t)
	cmd := exec.Command(bin,
		"-data-dir", e.cfg.DataDir, "-socket", e.cfg.Socket, "-libvirt-socket", e.cfg.LibvirtSocket,
		"-pool-name", e.cfg.PoolName, "-pool-path", e.cfg.PoolPath, "-stop-grace", e.cfg.StopGrace.String(),
		"-stats-interval", "1s", "-min-free-bytes", "67108864", "-log-level", "debug")
	cmd.Env = append(os.Environ(), "HOSTPLANE_AGENT_FAILPOINT="+failpoint)
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(e.cfg.Socket), "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait(); logf.Close(); close(done) }()
	e.stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	e.t.Cleanup(func() { e.stop() })
	e.connect(errc)
	return done
}

func (e *env) agentLog() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(e.cfg.Socket), "agent.log"))
	return string(b)
}

// importTemplate imports the test guest as a template.
func (e *env) importTemplate(ctx context.Context, name, disk, initrd string, guestAgent bool) api.NodeTemplate {
	e.t.Helper()
	op, err := e.c.ImportTemplate(ctx, api.NodeTemplateImportRequest{
		OpID: e.prefix + "-import-" + name, Name: name, OSFamily: "linux", ImagePath: disk, SHA256: testenv.SHA256File(e.t, disk),
		KernelPath: e.guest.Kernel, InitrdPath: initrd, Cmdline: e.guest.Cmdline, GuestAgent: guestAgent})
	if err != nil {
		e.t.Fatalf("import template %s: %v", name, err)
	}
	return *op.Result.Template
}

func (e *env) provision(ctx context.Context, opID, name, template string) *api.NodeOperation {
	e.t.Helper()
	op, err := e.c.Provision(ctx, e.provisionReq(opID, name, template))
	if err != nil {
		e.t.Fatalf("provision %s: %v", name, err)
	}
	return op
}

func (e *env) provisionReq(opID, name, template string) api.NodeProvisionRequest {
	return api.NodeProvisionRequest{OpID: opID, Name: name, Template: template,
		Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 128, DiskGiB: 1}, Network: "user",
		RootPassword: "correct-horse-1", SSHKeys: []string{testKey}}
}

// bootedGuest imports the test guest's disk with initrd as template tmpl
// (with the guest agent or not), provisions VM prefix-suffix of it and waits
// for its first boot; it returns the VM's name and the VM.
func (e *env) bootedGuest(ctx context.Context, tmpl, initrd string, guestAgent bool, suffix string) (string, *api.NodeVM) {
	e.t.Helper()
	e.importTemplate(ctx, tmpl, e.guest.Disk, initrd, guestAgent)
	name := e.prefix + "-" + suffix
	vm := e.provision(ctx, e.prefix+"-prov", name, tmpl).Result.VM
	waitReady(e.t, ctx, vm.ConsoleLog, 1)
	return name, vm
}

// bootWait bounds waitReady. A boot of the test guest (TCG) takes 3–13 s of
// its QEMU's CPU from the reset to GUEST-INIT; at load 25–33 on the 2-core
// test host QEMU got 10–15 % of one core, and a reset to GUEST-READY took up
// to ~100 s (TestLifecycle's third boot failed the 90 s this was in a
// clean-clone CI at load ~26, and again under the guests lock with a
// parallel CPU-heavy test: GUEST-INIT 93 s after the reset, QEMU having
// used 12.5 s of CPU meanwhile, READY a few seconds later).
const bootWait = 3 * time.Minute

// waitReady waits for the n-th complete GUEST-READY line and returns its
// bootcount and install-id. On a timeout it says how much CPU the guest's
// QEMU had in the wait, which tells a starved guest from a stuck one.
func waitReady(t testing.TB, ctx context.Context, consoleLog string, n int) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bootWait)
	defer cancel()
	name := strings.TrimSuffix(filepath.Base(consoleLog), ".log")
	start := time.Now()
	pid0, cpu0 := qemuCPU(name)
	for {
		b, _ := os.ReadFile(consoleLog)
		if bs := testenv.Boots(string(b)); len(bs) >= n {
			return bs[n-1].Count, bs[n-1].InstallID
		}
		select {
		case <-ctx.Done():
			// The domain's state tells a guest still booting slowly (running)
			// from one that never came back (paused, shut off).
			st, _ := exec.Command("virsh", "-q", "-c", "qemu:///system", "domstate", "--reason", name).CombinedOutput()
			cpu := "its QEMU's CPU unknown"
			if pid, c := qemuCPU(name); pid != 0 && pid == pid0 {
				waited := time.Since(start)
				cpu = fmt.Sprintf("its QEMU (pid %d) used %.1f s of CPU in the %s waited, %.0f%% of one core", pid,
					(c - cpu0).Seconds(), waited.Round(time.Second), 100*(c-cpu0).Seconds()/waited.Seconds())
			}
			load, _ := os.ReadFile("/proc/loadavg")
			t.Fatalf("waiting for GUEST-READY #%d: %v (domain %s: %s; %s; load %s)\nconsole:\n%s", n, ctx.Err(), name,
				strings.TrimSpace(string(st)), cpu, strings.Join(strings.Fields(string(load))[:3], " "), b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// qemuCPU is the pid of domain name's QEMU and the CPU time (user + system)
// it has used; 0, 0 when it cannot be read.
func qemuCPU(name string) (int, time.Duration) {
	b, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", name+".pid"))
	if err != nil {
		return 0, 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, 0
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	// The fields after the command name (which may hold spaces): utime
	// and stime are the 14th and 15th of the whole line.
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return pid, time.Duration(u+s) * time.Second / 100 // USER_HZ is 100 on Linux
}

func domainExists(name string) bool {
	return exec.Command("virsh", "-q", "-c", "qemu:///system", "dominfo", name).Run() == nil
}

// requireGone fails the test if the domain name is still defined or a pool
// volume of it (a file named with the prefix name) is left; after says when.
func (e *env) requireGone(name, after string) {
	e.t.Helper()
	if domainExists(name) {
		e.t.Fatalf("domain %s still defined after %s", name, after)
	}
	for _, f := range poolFiles(e.t, e.cfg.PoolPath) {
		if strings.HasPrefix(f, name) {
			e.t.Fatalf("volume %s left after %s", f, after)
		}
	}
}

func poolFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
