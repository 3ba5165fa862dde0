package libvirttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRunLocalTwice is `make run` (scripts/run-local.sh) twice, from two data
// directories, one after the other: each run's agent comes up with a pool of its
// own at its data directory. Then a run whose pool name is already defined at
// another path (as the fixed name "hostplane-local" was by an earlier run): only
// the agent fails, the script says what to do, and the coordinator keeps serving.
func TestRunLocalTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the coordinator and the agent")
	}
	testenv.RequireLibvirt(t)
	if _, err := os.Stat("/var/run/libvirt/libvirt-sock"); err != nil {
		t.Fatalf("run-local.sh looks for libvirtd at /var/run/libvirt/libvirt-sock: %v (scripts/start-libvirt.sh)", err)
	}
	bin := buildAll(t)
	prefix := testenv.Prefix()

	for i, dir := range []string{t.TempDir(), t.TempDir()} {
		pool := localPool(dir)
		testenv.Cleanup(t, prefix, pool)
		r := startRunLocal(t, bin, dir)
		c := client.NodeNew(filepath.Join(dir, "agent.sock"))
		waitFor(t, r, 60*time.Second, "the agent's local API", func() bool {
			_, err := c.Templates(context.Background())
			return err == nil
		})
		c.Close()
		out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "pool-dumpxml", pool).Output()
		if err != nil || !strings.Contains(string(out), "<path>"+filepath.Join(dir, "pool")+"</path>") {
			t.Fatalf("run %d: pool %s is not at its data directory: %v\n%s", i+1, pool, err, out)
		}
		if i == 0 {
			secondRunRefused(t, bin, dir, r)
		}
		r.stop(t)
	}

	// The pool name this data directory gets is taken, at another path.
	dir := t.TempDir()
	pool := localPool(dir)
	testenv.Cleanup(t, prefix, pool)
	if _, err := testenv.HypervisorFor(t, pool, filepath.Join(t.TempDir(), "elsewhere")); err != nil {
		t.Fatal(err)
	}
	r := startRunLocal(t, bin, dir)
	waitFor(t, r, 60*time.Second, "the agent's failure message", func() bool {
		return strings.Contains(r.output(), "the coordinator keeps running")
	})
	for _, want := range []string{"exists as a dir pool at", "virsh pool-undefine " + pool, "hostplane-agent --data-dir " + filepath.Join(dir, "agent")} {
		if !strings.Contains(r.output(), want) {
			t.Fatalf("the failure message does not say %q:\n%s", want, r.output())
		}
	}
	time.Sleep(time.Second)
	if r.exited() {
		t.Fatalf("the agent's failure ended the run:\n%s", r.output())
	}
	out, err := exec.Command(filepath.Join(bin, "hostplanectl"), "node", "token", "create", "--admin-socket", filepath.Join(dir, "admin.sock"), "--ttl", "1m").CombinedOutput()
	if err != nil {
		t.Fatalf("the coordinator does not answer after the agent failed: %v %s\n%s", err, out, r.output())
	}
	r.stop(t)
}

// TestRunLocalStopsItsServers is an operator's first `make run` with a server:
// the agent enrols without its join token on its command line (which every
// user of the machine reads with ps), a server placed with hostplanectl runs,
// and Ctrl-C shuts it down with the run: no domain with a disk in the data
// directory's pool is left running.
func TestRunLocalStopsItsServers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the coordinator and the agent and boots a guest")
	}
	testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	bin := buildAll(t)
	dir := t.TempDir()
	testenv.Cleanup(t, testenv.Prefix(), localPool(dir))
	t.Cleanup(func() { // after the run's own cleanup: whatever the script left
		for name := range poolDomains(dir) {
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "destroy", name).Run()
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "undefine", name).Run()
		}
	})
	r, c := startRunLocalAgent(t, bin, dir)
	for _, cmdline := range groupCmdlines(r.cmd.Process.Pid) {
		if strings.Contains(cmdline, "hpj1.") || strings.Contains(cmdline, "join-token") {
			t.Fatalf("a join token on a command line: %s", cmdline)
		}
	}
	if _, err := c.ImportTemplate(context.Background(), api.NodeTemplateImportRequest{OpID: client.NodeNewOpID(), Name: "tiny", OSFamily: "linux",
		ImagePath: g.Disk, SHA256: testenv.SHA256File(t, g.Disk), KernelPath: g.Kernel, InitrdPath: g.Initrd, Cmdline: g.Cmdline}); err != nil {
		t.Fatal(err)
	}
	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(bin, "hostplanectl"), append([]string{"--socket", filepath.Join(dir, "admin.sock")}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := ctl("account", "show", "admin@localhost", "--json")
	m := regexp.MustCompile(`"id": "(acc_[^"]+)"`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("account show admin@localhost: %v\n%s", err, out)
	}
	// The node reports the template to the leader a moment after the import.
	waitFor(t, r, 60*time.Second, "server create", func() bool {
		out, err = ctl("server", "create", "--account", m[1], "--plan", "nano", "--template", "tiny")
		return err == nil
	})
	waitFor(t, r, 120*time.Second, "the server's domain running", func() bool {
		for _, running := range poolDomains(dir) {
			if running {
				return true
			}
		}
		return false
	})
	r.stop(t)
	for name, running := range poolDomains(dir) {
		if running {
			t.Errorf("domain %s still runs after the run ended:\n%s", name, r.output())
		}
	}
	if want := "shutting down this run's servers: hp-srv-"; !strings.Contains(r.output(), want) {
		t.Errorf("the run did not say %q:\n%s", want, r.output())
	}
}

// poolDomains is the libvirt domains with a disk in dir's pool, and whether
// each runs.
func poolDomains(dir string) map[string]bool {
	virsh := func(args ...string) string {
		out, _ := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).Output()
		return string(out)
	}
	doms := map[string]bool{}
	for _, name := range strings.Fields(virsh("list", "--all", "--name")) {
		if strings.Contains(virsh("dumpxml", name), "file='"+filepath.Join(dir, "pool")+"/") {
			doms[name] = strings.TrimSpace(virsh("domstate", name)) == "running"
		}
	}
	return doms
}

// groupCmdlines is the command lines of the processes in process group pgid,
// as ps shows them to any user.
func groupCmdlines(pgid int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		i := strings.LastIndexByte(string(stat), ')')
		if err != nil || i < 0 {
			continue
		}
		// After the command's name: state, ppid, pgrp.
		if f := strings.Fields(string(stat[i+1:])); len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// secondRunRefused: a second run on a running one's data directory stops at
// once naming the coordinator's pid, also while that coordinator is stopped
// (Ctrl-Z: it answers nothing), and the first run goes on.
func secondRunRefused(t *testing.T, bin, dir string, first *runLocal) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "coordinator.lock"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("coordinator.lock holds %q, not a pid", b)
	}
	for _, stopped := range []bool{false, true} {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		second := startRunLocal(t, bin, dir)
		select {
		case <-second.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGCONT)
			t.Fatalf("a second run on a running one's data directory (coordinator stopped: %v) did not stop within 10 s:\n%s", stopped, second.output())
		}
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		want := fmt.Sprintf("already running on %s (process %d holds its lock)", dir, pid)
		if second.err == nil || !strings.Contains(second.output(), want) {
			t.Fatalf("second run (coordinator stopped: %v): %v; want a failure saying %q:\n%s", stopped, second.err, want, second.output())
		}
	}
	if first.exited() {
		t.Fatalf("the first run ended:\n%s", first.output())
	}
}

// localPool is the pool name run-local.sh gives a data directory.
func localPool(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "hostplane-local-" + hex.EncodeToString(sum[:])[:12]
}

// buildAll is a directory holding the coordinator, hostplanectl and the
// agent (run-local.sh's HOSTPLANE_BIN): links to the run's shared builds
// (framework.SharedBinDirEnv) or to the ones built once per test process,
// not a go build of every command per test.
func buildAll(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, bin := range []string{framework.Coordinator(t), framework.Ctl(t), framework.AgentBinary(t)} {
		if err := os.Symlink(bin, filepath.Join(dir, filepath.Base(bin))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type runLocal struct {
	cmd  *exec.Cmd
	out  framework.SyncBuilder // the script's output so far
	done chan struct{}
	err  error // the script's exit, once done is closed
}

func (r *runLocal) output() string { return r.out.String() }

func (r *runLocal) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop is Ctrl-C: the script stops the coordinator and the agent and exits
// with status 0, saying nothing of its own (a Ctrl-C is how a run ends).
func (r *runLocal) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		t.Fatalf("run-local.sh did not stop on SIGINT:\n%s", r.output())
	}
	if r.err != nil || strings.Contains(r.output(), "run-local.sh: line") {
		t.Fatalf("run-local.sh ended by Ctrl-C: %v (want exit 0 and no error of the script's own):\n%s", r.err, r.output())
	}
}

// startRunLocal runs scripts/run-local.sh with its data dir and free loopback ports.
func startRunLocal(t *testing.T, bin, dir string) *runLocal {
	t.Helper()
	r := &runLocal{done: make(chan struct{})}
	r.cmd = exec.Command("bash", "scripts/run-local.sh")
	r.cmd.Dir = testenv.RepoRoot(t)
	r.cmd.Env = append(os.Environ(), "HOSTPLANE_BIN="+bin, "HOSTPLANE_DATA_DIR="+dir,
		"HOSTPLANE_API_ADDR="+framework.FreeAddr(t, "tcp"), "HOSTPLANE_RAFT_ADDR="+framework.FreeAddr(t, "tcp"), "HOSTPLANE_METRICS_ADDR="+framework.FreeAddr(t, "tcp"),
		"HOSTPLANE_AGENT_LISTEN="+framework.FreeAddr(t, "udp"))
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { // whatever happened, nothing of the run stays
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	})
	return r
}

// startRunLocalAgent starts the run (startRunLocal) and waits up to 60 s
// for its agent's local API to answer; the client to it is closed when the
// test ends.
func startRunLocalAgent(t *testing.T, bin, dir string) (*runLocal, *client.NodeClient) {
	t.Helper()
	r := startRunLocal(t, bin, dir)
	c := client.NodeNew(filepath.Join(dir, "agent.sock"))
	t.Cleanup(func() { c.Close() })
	waitFor(t, r, 60*time.Second, "the agent's local API", func() bool {
		_, err := c.Templates(context.Background())
		return err == nil
	})
	return r, c
}

func waitFor(t *testing.T, r *runLocal, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if r.exited() || time.Now().After(deadline) {
			t.Fatalf("waiting for %s (run exited: %v):\n%s", what, r.exited(), r.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
