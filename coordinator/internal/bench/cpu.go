package bench

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
)

// procCPU is the CPU time (user + system) the processes have used so far; a
// process that is gone counts 0.
func procCPU(pids []int) time.Duration { return proccpu.Of(pids...) }

// measured runs load while counting the CPU time the server processes (pids)
// spend: on this shared machine CPU per operation is steadier than the wall
// clock rate, which other work on the machine moves.
func measured(name string, pids []int, n int, d time.Duration, fn func(worker, i int) error) Result {
	before, ioBefore, selfBefore := procCPU(pids), syscallsOf(pids...), syscallsOf(os.Getpid())
	swBefore, selfSwBefore := proccpu.Switches(pids...), proccpu.Switches(os.Getpid())
	smBefore := sysmonOf(pids...)
	selfCPU := proccpu.Self()
	r := load(name, n, d, fn)
	r.Sysmon = sysmonOf(pids...).minus(smBefore)
	r.ClientCPU = proccpu.Self() - selfCPU
	r.ServerCPU = procCPU(pids) - before
	r.ServerSyscalls = syscallsOf(pids...).minus(ioBefore)
	r.ClientSyscalls = syscallsOf(os.Getpid()).minus(selfBefore)
	r.ServerSwitches = proccpu.Switches(pids...) - swBefore
	r.ClientSwitches = proccpu.Switches(os.Getpid()) - selfSwBefore
	return r
}

// threadUse is the CPU time and the context switches of threads.
type threadUse struct {
	cpu      time.Duration
	switches int64
}

func (a threadUse) minus(b threadUse) threadUse {
	return threadUse{a.cpu - b.cpu, a.switches - b.switches}
}

// sysmonOf sums the CPU time (/proc/<pid>/task/<tid>/schedstat) and context
// switches so far of each Go process's sysmon thread: the runtime's monitor,
// which runs without a P and sleeps 20 µs at a time (backing off to 10 ms
// only after 50 idle rounds, and starting again at 20 µs whenever the process
// wakes from idle into a system call). It is the first thread the runtime
// starts (runtime.main starts it before anything else), so the lowest thread
// id after the main thread's; thread ids only grow.
func sysmonOf(pids ...int) threadUse {
	var total threadUse
	for _, pid := range pids {
		tid := sysmonTID(pid)
		if tid == 0 {
			continue
		}
		dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
		st, err1 := os.ReadFile(dir + "status")
		ss, err2 := os.ReadFile(dir + "schedstat")
		if err1 != nil || err2 != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(ss), &ns); err != nil {
			continue
		}
		total.cpu += time.Duration(ns)
		total.switches += proccpu.ParseSwitches(string(st))
	}
	return total
}

// sysmonTID is the id of the second thread of process pid (0: none).
func sysmonTID(pid int) int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	best := 0
	for _, t := range tasks {
		var tid int
		if _, err := fmt.Sscan(t.Name(), &tid); err != nil || tid == pid {
			continue
		}
		if best == 0 || tid < best {
			best = tid
		}
	}
	return best
}

// syscalls counts read and write system calls (/proc/<pid>/io: syscr and
// syscw, which count every read-like and write-like call, sockets included).
type syscalls struct{ reads, writes int64 }

func (a syscalls) minus(b syscalls) syscalls { return syscalls{a.reads - b.reads, a.writes - b.writes} }

// syscallsOf sums the processes' read and write system calls so far; a
// process that is gone or unreadable counts 0.
func syscallsOf(pids ...int) syscalls {
	r, w := proccpu.Syscalls(pids...)
	return syscalls{r, w}
}

// profilePhase, in a profiling run (BENCH_PPROF_BASE_PORT set: node i serves
// pprof on that port + i + 1), saves a CPU profile of every node over most of
// a phase of length d as BENCH_PROFILE_DIR/<tag>-node<i>.pprof; it returns at
// once and the returned wait blocks until the profiles are written. The
// benchmark process (the clients) is profiled too, as <tag>-client.pprof.
func profilePhase(tag string, nodes int, d time.Duration) (wait func()) {
	pp := os.Getenv("BENCH_PPROF_BASE_PORT")
	if pp == "" {
		return func() {}
	}
	var base int
	fmt.Sscan(pp, &base)
	out := os.Getenv("BENCH_PROFILE_DIR")
	if out == "" {
		out = "."
	}
	secs := int((d - time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	done := make(chan struct{}, nodes+1)
	go func() {
		// The benchmark's own clients, over the same span.
		defer func() { done <- struct{}{} }()
		f, err := os.Create(filepath.Join(out, tag+"-client.pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		time.Sleep(time.Duration(secs) * time.Second)
		pprof.StopCPUProfile()
	}()
	for i := 0; i < nodes; i++ {
		go func(i int) {
			defer func() { done <- struct{}{} }()
			url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", base+i+1, secs)
			b, err := fetchWithin(url, "", time.Duration(secs)*time.Second+readTimeout)
			if err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
				return
			}
			if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("%s-node%d.pprof", tag, i)), b, 0o666); err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
			}
		}(i)
	}
	return func() {
		for i := 0; i <= nodes; i++ {
			<-done
		}
	}
}

// EnableProfiling makes this a profiling run (profilePhase) saving into dir:
// hostplane-bench --profile. It sets BENCH_PROFILE_DIR and, unless it is set
// already, BENCH_PPROF_BASE_PORT to a base whose next three ports are free
// now (the coordinators' --pprof-addr).
func EnableProfiling(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Setenv("BENCH_PROFILE_DIR", dir); err != nil {
		return err
	}
	if os.Getenv("BENCH_PPROF_BASE_PORT") != "" {
		return nil
	}
	base, err := freePortRun(3)
	if err != nil {
		return err
	}
	return os.Setenv("BENCH_PPROF_BASE_PORT", fmt.Sprint(base))
}

// freePortRun finds a base port whose next n ports can be listened on now.
func freePortRun(n int) (int, error) {
	for try := 0; try < 100; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		base := ln.Addr().(*net.TCPAddr).Port - 1
		lns := []net.Listener{ln}
		ok := base+n <= 65535
		for p := base + 2; ok && p <= base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d free ports in a row for the coordinators' pprof", n)
}
