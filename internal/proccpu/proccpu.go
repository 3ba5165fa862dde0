// Package proccpu reads how much CPU time processes have used: benchmarks
// report CPU per operation, steadier than the wall-clock rate on a shared
// machine.
package proccpu

import (
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
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "syscr":
				reads += n
			case "syscw":
				writes += n
			}
		}
	}
	return reads, writes
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
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
					continue
				}
				if c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					n += c
				}
			}
		}
	}
	return n
}
