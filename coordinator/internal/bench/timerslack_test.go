package bench

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTimerSlackReachesChildren: a process started under withTimerSlack runs
// with that slack (as --timer-slack's servers do), one started after
// restore with the thread's own again. 3 ms: not the slack the test itself
// may run under (a unit's 1 ms, the kernel's 50 µs).
func TestTimerSlackReachesChildren(t *testing.T) {
	slackOfChild := func() string {
		t.Helper()
		out, err := exec.Command("cat", "/proc/self/timerslack_ns").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	before := slackOfChild()
	restore, err := withTimerSlack(3 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	under := slackOfChild()
	restore()
	if under != "3000000" {
		t.Errorf("a process started under withTimerSlack(3ms) has slack %s ns, want 3000000", under)
	}
	if after := slackOfChild(); after != before || after == "3000000" {
		t.Errorf("after restore a process has slack %s ns, before %s: want the default back", after, before)
	}
}

// TestTimerSlackOf reads the slack of running processes.
func TestTimerSlackOf(t *testing.T) {
	restore, err := withTimerSlack(2 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "5")
	err = cmd.Start()
	restore()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if got := timerSlackOf([]int{cmd.Process.Pid, cmd.Process.Pid}); got != "2ms" {
		t.Errorf("timerSlackOf = %q, want 2ms", got)
	}
}

// TestProcsStartWithTheSlack: every process procs starts (etcd, the bare
// server) runs with its slack, as the coordinators do.
func TestProcsStartWithTheSlack(t *testing.T) {
	p := &procs{slack: 3 * time.Millisecond}
	t.Cleanup(p.killAll)
	cmd, err := p.start(t.TempDir()+"/sleep.log", "sleep", "5")
	if err != nil {
		t.Fatal(err)
	}
	if got := timerSlackOf([]int{cmd.Process.Pid}); got != "3ms" {
		t.Errorf("a process procs started runs with slack %s, want 3ms", got)
	}
}
