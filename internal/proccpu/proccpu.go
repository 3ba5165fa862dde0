// Package proccpu reads how much CPU time processes have used: benchmarks
// report CPU per operation, steadier than the wall-clock rate on a shared
// machine.
package proccpu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"
)

// Of is the CPU time (user + system) the processes have used so far, as
// gopsutil reads it from /proc/<pid>/stat (in clock ticks, 10 ms); a process
// that is gone counts 0.
func Of(pids ...int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		p, err := process.NewProcess(int32(pid))
		if err != nil {
			continue
		}
		t, err := p.Times()
		if err != nil {
			continue
		}
		total += time.Duration((t.User + t.System) * float64(time.Second))
	}
	return total
}

// Self is the CPU time (user + system) this process has used so far, from
// getrusage (microseconds); 0 if it cannot be read.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Syscalls is how many read and write system calls (syscr, syscw of
// /proc/<pid>/io: read(2), pread, readv, recvmsg... and their writes) the
// processes have made so far; a process that is gone or cannot be read
// counts 0.
func Syscalls(pids ...int) (reads, writes int64) {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
		if err != nil {
			continue
		}
		r, w, _ := ParseIO(string(b))
		reads, writes = reads+r, writes+w
	}
	return reads, writes
}

// ParseIO reads syscr and syscw (not the byte counts beside them) from a
// /proc/<pid>/io text; a text without both is an error.
func ParseIO(text string) (reads, writes int64, err error) {
	found := 0
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			if _, err := fmt.Sscan(v, &reads); err != nil {
				return reads, writes, err
			}
			found++
		} else if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			if _, err := fmt.Sscan(v, &writes); err != nil {
				return reads, writes, err
			}
			found++
		}
	}
	if found != 2 {
		return reads, writes, errors.New("no syscr and syscw in the text")
	}
	return reads, writes, nil
}

// Switches is how many context switches (voluntary and not, summed over
// every thread of /proc/<pid>/task/*/status) the processes' live threads
// have made so far; threads that have exited no longer count, so read it
// across a span in which the process keeps its threads (a Go process
// rarely ends one). A process that is gone counts 0.
func Switches(pids ...int) int64 {
	var n int64
	for _, pid := range pids {
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/status")
			if err != nil {
				continue
			}
			n += ParseSwitches(string(b))
		}
	}
	return n
}

// ParseSwitches reads voluntary_ctxt_switches + nonvoluntary_ctxt_switches
// from a /proc/<pid>[/task/<tid>]/status text.
func ParseSwitches(text string) int64 {
	var total int64
	for line := range strings.Lines(text) {
		for _, prefix := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				var n int64
				if _, err := fmt.Sscan(v, &n); err == nil {
					total += n
				}
			}
		}
	}
	return total
}
