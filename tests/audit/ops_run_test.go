package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// secondCoordinator runs hostplane-coordinator with args as an operator
// starting a second one beside a running one would, and returns its exit
// code and output; it must exit by itself within 20 s (it is killed then).
func secondCoordinator(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, framework.Coordinator(t), append([]string{"run", "--log-format", "text", "--bootstrap-account=false"}, args...)...)
	cmd.Env = append(os.Environ(), "HOSTPLANE_DATA_DIR=", "HOSTPLANE_ADMIN_SOCKET=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("hostplane-coordinator %v did not exit within 20 s (killed); output:\n%s", args, out.String())
		return -1, out.String()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestOpsSecondCoordinatorRefused: a second coordinator started beside a
// running one, as a second `make run` or a copy-pasted command line does,
// exits by itself with an error naming what is taken and the flag to change,
// and leaves the running one as it was: on its data directory (other ports)
// the running one's fsm.db is not replaced (before, the second found it
// "not closed cleanly", rebuilt it, unlinking the live file, and then hung on
// the Raft log's lock, ignoring SIGTERM); on its API port (another data
// directory) it names --api-addr; on its admin socket it names
// --admin-socket and the running one still answers there. After a SIGKILL
// of the running one (a crash: its lock, admin socket and fsm.db marker are
// left behind) a coordinator starts on the same directory.
func TestOpsSecondCoordinatorRefused(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t)})
	p := c.Nodes[0]
	if _, err := c.LeaderIndex(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	fsmDB := filepath.Join(p.DataDir, "raft", "fsm.db")
	ino := inode(t, fsmDB)
	free := func() string { return framework.FreeAddr(t, "tcp") }
	stillServes := func(when string) {
		t.Helper()
		if r := ctl(t, p, "account", "create", "--email", "still-"+strings.ReplaceAll(when, " ", "-")+"@example.com"); r.code != 0 {
			t.Fatalf("the running coordinator after %s: %s", when, r)
		}
		if got := inode(t, fsmDB); got != ino {
			t.Fatalf("after %s the running coordinator's fsm.db was replaced (inode %d, was %d)", when, got, ino)
		}
	}

	code, out := secondCoordinator(t, "--node-id", p.ID, "--data-dir", p.DataDir, "--api-addr", free(), "--raft-addr", free(),
		"--metrics-addr", free(), "--admin-socket", filepath.Join(t.TempDir(), "admin.sock"))
	t.Logf("same data dir: exit %d\n%s", code, out)
	if code <= 0 || !strings.Contains(out, p.DataDir) || !strings.Contains(out, "in use") || !strings.Contains(out, "--data-dir") {
		t.Errorf("a second coordinator on a running one's data dir: want a non-zero exit naming %s, \"in use\" and --data-dir:\n%s", p.DataDir, out)
	}
	stillServes("a second coordinator on its data dir")

	code, out = secondCoordinator(t, "--node-id", "c9", "--data-dir", t.TempDir(), "--api-addr", p.APIAddr, "--raft-addr", free(),
		"--metrics-addr", free(), "--admin-socket", filepath.Join(t.TempDir(), "admin.sock"))
	t.Logf("same API address: exit %d\n%s", code, out)
	if code <= 0 || !strings.Contains(out, p.APIAddr) || !strings.Contains(out, "--api-addr") {
		t.Errorf("a second coordinator on a running one's API address: want a non-zero exit naming %s and --api-addr:\n%s", p.APIAddr, out)
	}
	stillServes("a second coordinator on its API address")

	code, out = secondCoordinator(t, "--node-id", "c9", "--data-dir", t.TempDir(), "--api-addr", free(), "--raft-addr", free(),
		"--metrics-addr", free(), "--admin-socket", p.AdminSocket())
	t.Logf("same admin socket: exit %d\n%s", code, out)
	if code <= 0 || !strings.Contains(out, p.AdminSocket()) || !strings.Contains(out, "--admin-socket") {
		t.Errorf("a second coordinator on a running one's admin socket: want a non-zero exit naming it and --admin-socket:\n%s", out)
	}
	stillServes("a second coordinator on its admin socket")

	// A crash leaves the lock file, the socket and the FSM marker: none
	// keeps the next start from working.
	p.Kill()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("start after a SIGKILL: %v", err)
	}
	if r := ctl(t, p, "account", "show", "still-a-second-coordinator-on-its-data-dir@example.com"); r.code != 0 {
		t.Fatalf("after the restart: %s", r)
	}
}

// runUntil starts hostplane-coordinator with args, waits until its output
// holds want (or 30 s), stops it with SIGTERM and returns the output.
func runUntil(t *testing.T, want string, args ...string) string {
	t.Helper()
	cmd := exec.Command(framework.Coordinator(t), append([]string{"run", "--log-format", "text"}, args...)...)
	cmd.Env = append(os.Environ(), "HOSTPLANE_DATA_DIR=", "HOSTPLANE_ADMIN_SOCKET=")
	var out framework.SyncBuilder // the child's writes and the test's reads
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("no exit within 20 s of SIGTERM")
	}
	return out.String()
}

// TestOpsRestartSaysHowToGetAKey: `make run` prints a bootstrap API key on
// its first start only; a later start on the same data dir (the key lost)
// says the key was shown then and how to mint another with hostplanectl.
func TestOpsRestartSaysHowToGetAKey(t *testing.T) {
	dir := t.TempDir()
	args := func() []string {
		return []string{"--node-id", "vm", "--data-dir", dir, "--api-addr", framework.FreeAddr(t, "tcp"), "--raft-addr", framework.FreeAddr(t, "tcp"),
			"--metrics-addr", framework.FreeAddr(t, "tcp")}
	}
	first := runUntil(t, "shown only this once", args()...)
	if !strings.Contains(first, "shown only this once") {
		t.Fatalf("first start printed no bootstrap key:\n%s", first)
	}
	second := runUntil(t, "key create", args()...)
	t.Logf("second start:\n%s", second)
	if strings.Contains(second, "shown only this once") || !strings.Contains(second, "key create") || !strings.Contains(second, filepath.Join(dir, "admin.sock")) {
		t.Errorf("a second start on the same data dir: want no new key, and how to mint one (hostplanectl --socket … key create):\n%s", second)
	}
}
