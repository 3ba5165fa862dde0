package bench

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTimerSlackReachesChildren: a process started under withTimerSlack runs
// with that slack (as --timer-slack's coordinators do), one started after
// restore with the thread's own again.
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
	restore, err := withTimerSlack(time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	under := slackOfChild()
	restore()
	if under != "1000000" {
		t.Errorf("a process started under withTimerSlack(1ms) has slack %s ns, want 1000000", under)
	}
	if after := slackOfChild(); after != before || after == "1000000" {
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
