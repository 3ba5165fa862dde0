package hosting_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestReopenLogsLeavesARecycledPidAlone (review64 R2): a pid file left by
// an nginx or PHP-FPM master that died, whose pid now names another
// program, gets no signal — not the hourly reopen's USR1 (which kills a
// program that does not handle it), not Stop's QUIT.
func TestReopenLogsLeavesARecycledPidAlone(t *testing.T) {
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- other.Wait() }()
	t.Cleanup(func() { _ = other.Process.Kill(); <-exited })
	l := hosting.Layout{Root: t.TempDir()}
	pid := []byte(strconv.Itoa(other.Process.Pid) + "\n")
	for _, f := range []string{l.NginxPID(), filepath.Join(l.Root, "fpm", "8.2", "php-fpm.pid")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, pid, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := hosting.ReopenLogs(context.Background(), l, 2*time.Second); err != nil {
		t.Fatalf("reopen-logs with stale pid files: %v", err)
	}
	n := &hosting.Nginx{L: l}
	if p := n.PID(); p != 0 {
		t.Fatalf("nginx's PID() names sleep's pid %d", p)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited: // USR1 and QUIT both end a sleep
		exited <- err
		t.Fatalf("the program whose pid a stale pid file named was signalled: %v", err)
	case <-time.After(200 * time.Millisecond): // a signal sent would have acted by now
	}
}

// TestShippedLogrotateAfterThePackageIsRemoved (review64 R3): after a
// remove (not a purge) the logrotate file, a conffile, and the logs stay,
// the agent binary is gone; the distribution's daily run must still rotate
// them and exit 0, not fail on the missing postrotate command.
func TestShippedLogrotateAfterThePackageIsRemoved(t *testing.T) {
	hostenv.Need(t, "logrotate")
	l := hosting.Layout{Root: t.TempDir()}
	if err := os.MkdirAll(l.NginxLogs(), 0o700); err != nil {
		t.Fatal(err)
	}
	access := filepath.Join(l.NginxLogs(), "access.log")
	if err := os.WriteFile(access, []byte("GET / 200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, state := shippedLogrotateFor(t, l.Root)
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	removed := filepath.Join(t.TempDir(), "usr", "sbin", "hostplane-agent")
	s := strings.ReplaceAll(string(b), framework.AgentBinary(t)+" ", removed+" ")
	if s == string(b) {
		t.Fatalf("%s names no agent binary to remove:\n%s", conf, b)
	}
	if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("logrotate", "-f", "-s", state, conf).CombinedOutput(); err != nil {
		t.Fatalf("logrotate with the agent removed: %v\n%s", err, out)
	}
	if !fileExists(access + ".1") {
		t.Fatalf("access.log was not rotated")
	}
}
