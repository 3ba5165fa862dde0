package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// withTimerSlack makes the processes this goroutine starts until restore
// start with a timer slack of d: a child takes the slack of the thread that
// forked it, so the goroutine keeps its thread (locked) with that slack until
// restore puts the thread's own back and lets it go. restore must run before
// the goroutine ends (a locked thread ends with its goroutine, and the
// Pdeathsig of the processes it started fires with it).
func withTimerSlack(d time.Duration) (restore func(), err error) {
	runtime.LockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err == nil {
		err = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(d.Nanoseconds()), 0, 0, 0)
	}
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("timer slack %s: %w", d, err)
	}
	return func() {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
		runtime.UnlockOSThread()
	}, nil
}

// timerSlackOf says the timer slack the processes pids run with (their main
// threads'), one value if they agree.
func timerSlackOf(pids []int) string {
	seen := map[string]bool{}
	var out []string
	for _, pid := range pids {
		v := "unknown"
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", pid)); err == nil {
			if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				v = time.Duration(ns).String()
			}
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return strings.Join(out, ", ")
}

// slackSaid is the run header's words for the servers' timer slack d.
func slackSaid(d time.Duration) string {
	if d <= 0 {
		return "servers at the kernel's timer slack (50µs unless changed; --timer-slack)"
	}
	return "servers at timer slack " + d.String() + " (the shipped unit's is 1ms; --timer-slack 0: the kernel's)"
}
