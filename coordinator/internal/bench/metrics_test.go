package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestParseLeaderSample: the applied index, the apply histogram's sum and
// count and the leadership gauges (so a phase knows the leader stayed put) are read from a real exposition's lines (not from the buckets or
// another series with the same start), in Prometheus's float formats; a
// missing series is an error, not a zero.
func TestParseLeaderSample(t *testing.T) {
	text := `# HELP hostplane_fsm_applied_index Raft index of the last command applied to the FSM.
# TYPE hostplane_fsm_applied_index gauge
hostplane_fsm_applied_index 1.234567e+06
# HELP hostplane_raft_apply_duration_seconds Time from proposing a command to its commit and apply on the leader.
# TYPE hostplane_raft_apply_duration_seconds histogram
hostplane_raft_apply_duration_seconds_bucket{le="0.005"} 7
hostplane_raft_apply_duration_seconds_bucket{le="+Inf"} 4000
hostplane_raft_apply_duration_seconds_sum 12.5
hostplane_raft_apply_duration_seconds_count 4000
hostplane_fsm_size_bytes 65536
# HELP hostplane_raft_leader 1 while this coordinator is the Raft leader, else 0.
# TYPE hostplane_raft_leader gauge
hostplane_raft_leader 1
# HELP hostplane_raft_term This coordinator's current Raft term: it rises with every election.
# TYPE hostplane_raft_term gauge
hostplane_raft_term 7
`
	s, err := parseLeaderSample(text)
	if err != nil {
		t.Fatal(err)
	}
	if s != (leaderSample{applied: 1234567, applySum: 12.5, applyCount: 4000, leader: 1, term: 7}) {
		t.Fatalf("read %+v", s)
	}
	if _, err := parseLeaderSample("hostplane_fsm_applied_index 5\n"); err == nil {
		t.Fatal("a missing histogram was not an error")
	}
	// A build before the leadership gauges: read, the gauges unknown.
	old := strings.Split(text, "# HELP hostplane_raft_leader")[0]
	if s, err := parseLeaderSample(old); err != nil || s.leader != -1 || s.term != -1 {
		t.Fatalf("without the leadership gauges: %+v %v", s, err)
	}
}

// TestLatencySplit: successful writes are averaged by where they went;
// failed ones are not counted.
func TestLatencySplit(t *testing.T) {
	var l latencySplit
	_ = l.time(true, func() error { time.Sleep(2 * time.Millisecond); return nil })
	_ = l.time(false, func() error { time.Sleep(20 * time.Millisecond); return nil })
	if err := l.time(false, func() error { return errors.New("503") }); err == nil {
		t.Fatal("the write's error was lost")
	}
	direct, forwarded := l.means()
	if direct < 2*time.Millisecond || forwarded < 20*time.Millisecond {
		t.Fatalf("means %v, %v", direct, forwarded)
	}
	if nd, nf := l.nDirect.Load(), l.nForwarded.Load(); nd != 1 || nf != 1 {
		t.Fatalf("%d direct and %d forwarded writes counted, want 1 and 1 (the failed one is not)", nd, nf)
	}
}

// TestSyscallsOf: this process's own read count grows when it reads a file
// (parsing and the counts of a missing process: proccpu TestParseIO,
// TestSyscalls).
func TestSyscallsOf(t *testing.T) {
	before := syscallsOf(os.Getpid())
	for range 3 {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
	if got := syscallsOf(os.Getpid()).minus(before); got.reads < 3 {
		t.Fatalf("3 file reads counted as %+v", got)
	}
}

// TestMergeRounds: phases of one kind measured in rounds add up to one
// result: counts, elapsed time, CPU, system calls and Raft entries summed,
// percentiles over all the latencies, the apply wait weighted by writes.
func TestMergeRounds(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	a := Result{OK: 3, Errors: 1, Elapsed: 2 * time.Second, ServerCPU: 30 * time.Millisecond, LeaderCPU: 20 * time.Millisecond, ClientCPU: 3 * time.Millisecond,
		Entries: 2, ApplyWait: 10 * time.Millisecond, ServerSyscalls: syscalls{5, 7}, ClientSyscalls: syscalls{6, 3}, ServerSwitches: 9, ClientSwitches: 4, lat: ms(1, 2, 3)}
	b := Result{OK: 1, Elapsed: 3 * time.Second, ServerCPU: 10 * time.Millisecond, LeaderCPU: 4 * time.Millisecond, ClientCPU: time.Millisecond,
		Entries: 1, ApplyWait: 30 * time.Millisecond, ServerSyscalls: syscalls{1, 1}, ClientSyscalls: syscalls{2, 1}, ServerSwitches: 1, ClientSwitches: 2, lat: ms(100)}
	m := merge("w", []Result{a, b})
	if m.Name != "w" || m.OK != 4 || m.Errors != 1 || m.Elapsed != 5*time.Second || m.ServerCPU != 40*time.Millisecond || m.LeaderCPU != 24*time.Millisecond ||
		m.ClientCPU != 4*time.Millisecond || m.Entries != 3 || m.ServerSyscalls != (syscalls{6, 8}) || m.ClientSyscalls != (syscalls{8, 4}) ||
		m.ServerSwitches != 10 || m.ClientSwitches != 6 {
		t.Fatalf("merged %+v", m)
	}
	if m.ApplyWait != 15*time.Millisecond { // (3×10 + 1×30) / 4
		t.Fatalf("apply wait %v", m.ApplyWait)
	}
	if m.P50 != 3*time.Millisecond || m.P99 != 100*time.Millisecond || m.CPUPerOp() != 10*time.Millisecond || m.PerSec() != 0.8 {
		t.Fatalf("p50 %v p99 %v cpu/op %v rate %v", m.P50, m.P99, m.CPUPerOp(), m.PerSec())
	}
}

// A write phase's line splits the server CPU per write into the leader's and
// the followers'; the ratios' line says how each moved from the leader phase
// to the spread phase.
func TestLeaderCPUSplit(t *testing.T) {
	leader := Result{Name: "leader", OK: 1000, Elapsed: time.Second, ServerCPU: 400 * time.Millisecond, LeaderCPU: 250 * time.Millisecond}
	spread := Result{Name: "spread", OK: 1000, Elapsed: time.Second, ServerCPU: 480 * time.Millisecond, LeaderCPU: 200 * time.Millisecond}
	if s := leader.String(); !strings.Contains(s, "server CPU    400 µs/op (leader 250, followers 150)") {
		t.Fatalf("line %q", s)
	}
	if got, want := cpuSplit(spread, leader), " (leader -50 µs, followers +130 µs per write)"; got != want {
		t.Fatalf("split %q, want %q", got, want)
	}
	if s := (Result{OK: 10, ServerCPU: time.Millisecond}).String(); strings.Contains(s, "leader") {
		t.Fatalf("a phase without the leader's CPU names it: %q", s)
	}
	if got := cpuSplit(spread, Result{OK: 10, ServerCPU: time.Millisecond}); got != "" {
		t.Fatalf("split without the leader's CPU: %q", got)
	}
}

// Two of the ratios' lines, each from its own function, empty without its
// figures (a leader phase of 10 writes in 1 ms of server CPU, nothing else),
// and printed by printWriteRatios:
//   - allCPU: the CPU per write of servers and clients together, spread over
//     leader, and how much of the difference is the clients';
//   - sysmonSplit: how much of the server CPU per write the spread phase adds
//     is the Go sysmon threads'.
func TestRatioLines(t *testing.T) {
	for _, c := range []struct {
		name           string
		line           func(spread, leader Result) string
		leader, spread Result
		want           string // line(spread, leader)
		without        string // the figures line needs
		ratios         string // in printWriteRatios' output
	}{{
		name:    "allCPU",
		line:    allCPU,
		leader:  Result{OK: 1000, ServerCPU: 400 * time.Millisecond, ClientCPU: 100 * time.Millisecond},
		spread:  Result{OK: 500, ServerCPU: 250 * time.Millisecond, ClientCPU: 60 * time.Millisecond},
		want:    "        all CPU per write (servers and clients) spread / leader = 1.24x (clients +20 µs per write)\n",
		without: "the clients' CPU",
		ratios:  "all CPU per write (servers and clients) spread / leader = 1.24x",
	}, {
		name: "sysmonSplit",
		line: sysmonSplit,
		leader: Result{OK: 1000, ServerCPU: 400 * time.Millisecond, LeaderCPU: 250 * time.Millisecond,
			Sysmon: threadUse{cpu: 40 * time.Millisecond, switches: 2000}},
		spread: Result{OK: 500, ServerCPU: 250 * time.Millisecond, LeaderCPU: 100 * time.Millisecond,
			Sysmon: threadUse{cpu: 27 * time.Millisecond, switches: 1500}},
		want:    ", of which Go sysmon threads +14 µs per write",
		without: "the sysmon threads' figures",
		ratios:  "server CPU per write spread / leader = 1.25x (leader -50 µs, followers +150 µs per write), of which Go sysmon threads +14 µs per write\n",
	}} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.line(c.spread, c.leader); got != c.want {
				t.Fatalf("line %q, want %q", got, c.want)
			}
			if got := c.line(c.spread, Result{OK: 10, ServerCPU: time.Millisecond}); got != "" {
				t.Fatalf("without %s: %q", c.without, got)
			}
			var out strings.Builder
			printWriteRatios(Options{Out: &out}, c.leader, c.spread, etcdResults{})
			if !strings.Contains(out.String(), c.ratios) {
				t.Fatalf("the ratios do not give %q:\n%s", c.ratios, out.String())
			}
		})
	}
}

// Every measured phase counts the benchmark process's own CPU (the clients:
// the etcd phases' Go client as well as hostplane's HTTP clients).
func TestMeasuredCountsClientCPU(t *testing.T) {
	r := measured("spin", nil, 1, 100*time.Millisecond, func(_, _ int) error {
		for t0 := time.Now(); time.Since(t0) < time.Millisecond; {
		}
		return nil
	})
	// Only more than none: on a busy machine the spinning gets what CPU it can.
	if r.OK == 0 || r.ClientCPU <= 0 {
		t.Fatalf("%d calls spinning 1 ms each counted %v of client CPU", r.OK, r.ClientCPU)
	}
}

// TestSysmonOfFindsTheSysmonThread: while a goroutine keeps this process busy
// (with a system call now and then, which wakes sysmon from its deep sleep),
// the thread sysmonOf counts is the one with the most voluntary context
// switches (sysmon's 20 µs sleeps), and its CPU time is counted.
func TestSysmonOfFindsTheSysmonThread(t *testing.T) {
	pid := os.Getpid()
	voluntary := func() map[int]int64 {
		m := map[int]int64{}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			var tid int
			fmt.Sscan(task.Name(), &tid)
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					var n int64
					fmt.Sscan(v, &n)
					m[tid] = n
				}
			}
		}
		return m
	}
	// One window can go to another thread on a loaded machine (ci-F: a
	// thread that handed off a P switched 32 times to sysmon's fewer): the
	// sysmon thread must switch most in one of three windows.
	var most int
	var mostN int64
	var used threadUse
	for try := 1; ; try++ {
		before, use := voluntary(), sysmonOf(pid)
		for t0 := time.Now(); time.Since(t0) < 300*time.Millisecond; {
			if _, err := os.ReadFile("/proc/self/stat"); err != nil {
				t.Fatal(err)
			}
			for t1 := time.Now(); time.Since(t1) < 2*time.Millisecond; {
			}
		}
		var after map[int]int64
		after, used = voluntary(), sysmonOf(pid).minus(use)
		most, mostN = 0, int64(-1)
		for tid, n := range after {
			if d := n - before[tid]; d > mostN {
				most, mostN = tid, d
			}
		}
		tid := sysmonTID(pid)
		if tid == most {
			break
		}
		if try == 3 {
			t.Fatalf("sysmonTID %d, but thread %d switched most (%d voluntary switches in 300 ms), three windows out of three", tid, most, mostN)
		}
		t.Logf("window %d: thread %d switched most (%d), not sysmonTID %d; again", try, most, mostN, tid)
	}
	if used.switches < 10 || used.cpu <= 0 {
		t.Fatalf("sysmon thread counted %d switches, %v CPU in 300 ms", used.switches, used.cpu)
	}
	t.Logf("sysmon thread %d: %d switches, %v CPU in 300 ms", most, used.switches, used.cpu)
}

// A phase through which the leader changed says so on its line, a merged
// round keeps it, and the ratios are headed by a warning: once at load 14
// the "leader" phase went through a follower after an election and the run
// printed a spread / leader of 1.37x with nothing to say it was void.
func TestLeaderMovedIsSaid(t *testing.T) {
	ok := Result{Name: "leader", OK: 1000, Elapsed: time.Second, ServerCPU: 400 * time.Millisecond}
	moved := ok
	moved.LeaderMoved = true
	if s := moved.String(); !strings.Contains(s, "THE LEADER CHANGED DURING THIS PHASE") {
		t.Fatalf("line %q", s)
	}
	if s := ok.String(); strings.Contains(s, "LEADER CHANGED") {
		t.Fatalf("line %q", s)
	}
	if m := merge("leader", []Result{ok, moved, ok}); !m.LeaderMoved {
		t.Fatal("a merged round lost the change")
	}
	for _, c := range []struct {
		wr, spread Result
		warn       bool
	}{{ok, ok, false}, {moved, ok, true}, {ok, moved, true}} {
		var out strings.Builder
		printWriteRatios(Options{Out: &out}, c.wr, c.spread, etcdResults{})
		if got := strings.Contains(out.String(), "the Raft leader changed during a write phase"); got != c.warn {
			t.Errorf("leader moved %v/%v: warning %v in %q", c.wr.LeaderMoved, c.spread.LeaderMoved, got, out.String())
		}
	}
}

// With the etcd baselines, the ratios give etcd's own spread over leader (its
// followers forwarding its puts) beside hostplane's, with its CPU per put and
// how that moved on etcd's leader and followers; without an etcd spread
// phase there is no such line.
func TestEtcdSpreadBesideHostplane(t *testing.T) {
	hpLeader := Result{OK: 4000, Elapsed: time.Second, ServerCPU: 800 * time.Millisecond}
	hpSpread := Result{OK: 3400, Elapsed: time.Second, ServerCPU: 800 * time.Millisecond}
	etcd := etcdResults{
		native:  Result{OK: 8000, Elapsed: time.Second, ServerCPU: 800 * time.Millisecond, LeaderCPU: 500 * time.Millisecond},
		spread:  Result{OK: 6000, Elapsed: time.Second, ServerCPU: 720 * time.Millisecond, LeaderCPU: 300 * time.Millisecond},
		gateway: Result{OK: 5000, Elapsed: time.Second, ServerCPU: 800 * time.Millisecond},
	}
	var out strings.Builder
	printWriteRatios(Options{Out: &out}, hpLeader, hpSpread, etcd)
	for _, want := range []string{
		"hostplane spread / hostplane leader  = 0.85x",
		// 6000/s over 8000/s; CPU per put 120 over 100 µs; the leader
		// 62.5 -> 50 µs, the followers 37.5 -> 70 µs per put.
		"etcd spread / etcd leader (Go client) = 0.75x   (etcd's followers forward too; server CPU per put 1.20x (leader -12 µs, followers +32 µs per write))",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	out.Reset()
	etcd.spread = Result{}
	printWriteRatios(Options{Out: &out}, hpLeader, hpSpread, etcd)
	if strings.Contains(out.String(), "etcd spread") {
		t.Fatalf("an etcd spread line without its phase:\n%s", out.String())
	}
}

// inRounds measures leader, spread, spread, leader in every round, each part
// as long as asked, and merges each kind under its name.
func TestInRounds(t *testing.T) {
	var order []string
	phase := func(kind string, ok int64) func(time.Duration) Result {
		return func(d time.Duration) Result {
			order = append(order, kind)
			return Result{Name: kind, OK: ok, Elapsed: d}
		}
	}
	l, s := inRounds(Options{Rounds: 2, Out: io.Discard}, time.Second, "L", "S", phase("l", 10), phase("s", 7))
	if got := strings.Join(order, ""); got != "lssllssl" {
		t.Fatalf("order %q", got)
	}
	if l.Name != "L" || l.OK != 40 || l.Elapsed != 4*time.Second || s.Name != "S" || s.OK != 28 || s.Elapsed != 4*time.Second {
		t.Fatalf("leader %+v, spread %+v", l, s)
	}
}

// A phase's failed requests are told apart by what they got, the most
// frequent first, at most maxErrorKinds kinds (the rest as "other"), and a
// merged round adds them up: once 482 of a spread phase's writes failed and
// the line said only "482 errors".
func TestErrorKinds(t *testing.T) {
	r := load("errs", 2, 50*time.Millisecond, func(_, i int) error {
		switch i % 3 {
		case 0:
			return nil
		case 1: // every worker's first error
			return errors.New("status 503 leader_unreachable")
		default:
			return fmt.Errorf("transport %d", i) // many distinct ones
		}
	})
	if r.Errors == 0 || r.ErrorKinds["status 503 leader_unreachable"] == 0 || len(r.ErrorKinds) > maxErrorKinds+1 {
		t.Fatalf("%d errors as %v", r.Errors, r.ErrorKinds)
	}
	var sum int64
	for _, n := range r.ErrorKinds {
		sum += n
	}
	if sum != r.Errors {
		t.Fatalf("kinds add to %d, errors %d", sum, r.Errors)
	}
	a := Result{Name: "a", OK: 1, Errors: 3, ErrorKinds: map[string]int64{"status 503 no_leader": 2, "status 502": 1}}
	b := Result{Name: "b", OK: 1, Errors: 4, ErrorKinds: map[string]int64{"status 503 no_leader": 4}}
	m := merge("m", []Result{a, b, {OK: 1}})
	if m.Errors != 7 || m.ErrorKinds["status 503 no_leader"] != 6 || m.ErrorKinds["status 502"] != 1 {
		t.Fatalf("merged %d errors as %v", m.Errors, m.ErrorKinds)
	}
	if s := m.String(); !strings.Contains(s, "errors: 6× status 503 no_leader, 1× status 502") {
		t.Fatalf("line %q", s)
	}
	if s := (Result{Name: "clean", OK: 1, Elapsed: time.Second}).String(); strings.Contains(s, "errors:") {
		t.Fatalf("line %q", s)
	}
}
