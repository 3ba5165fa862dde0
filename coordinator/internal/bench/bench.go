// Package bench runs whole-system benchmarks of the coordinator against named
// baselines measured in the same run: committed writes/s of POST /v1/tickets on a
// 3-node cluster (to the leader, and spread over all nodes) vs etcd's put
// throughput on a 3-node cluster through its Go client (gRPC) and through its
// JSON gateway (both fsyncing, same concurrency, real processes on loopback), and
// GET /v1/tickets (linearizable, and ?consistency=stale) vs a bare net/http JSON
// handler.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options configure a run.
type Options struct {
	BinDir   string        // where hostplane-coordinator is
	Clients  int           // concurrent clients
	Duration time.Duration // per measured phase
	Out      io.Writer
	// WritesOnly stops after the write phases (etcd and hostplane), for
	// quicker A/B runs of the write path.
	WritesOnly bool
	// NoEtcd skips the etcd baselines (with WritesOnly: only hostplane's
	// two write phases, for quick runs; no etcd ratio is printed).
	NoEtcd bool
	// Rounds, when above 0, measures hostplane's two write phases in rounds
	// of leader, spread, spread, leader, each Duration / (2 × Rounds) long (so
	// each kind is measured for Duration in all), and reports each kind's sums: both kinds then meet the same
	// store sizes and the same moments of the machine's other load. With 0,
	// the leader phase runs for Duration and then the spread phase, which
	// thus always wrote into a store the leader phase had grown.
	Rounds int
	// Warmup, when above 0, is how long writes spread over all nodes run,
	// unmeasured, before hostplane's first write phase: without it, that phase
	// (the leader's) alone paid for the fresh cluster's start.
	Warmup time.Duration
	// Verbose prints each round's phases too.
	Verbose bool
	// SideBySide, when set, is a directory holding another
	// hostplane-coordinator build: RunSideBySide loads a cluster of each at
	// once (see there).
	SideBySide string
	// TimerSlack, when above 0, is the timer slack (prctl PR_SET_TIMERSLACK)
	// every server process the benchmark starts runs with: the hostplane
	// coordinators, as the shipped unit's TimerSlackNSec=1ms gives them,
	// and the baselines (etcd, the bare server) alike, so that they are
	// compared like for like. 0 leaves the kernel's default (50 µs), as a
	// process started by hand has it. The benchmark's own clients keep the
	// default either way. hostplane-bench's default is 1 ms.
	TimerSlack time.Duration
}

// Result is one measured phase.
type Result struct {
	Name    string
	OK      int64
	Errors  int64
	Elapsed time.Duration
	P50     time.Duration
	P99     time.Duration
	// ErrorKinds counts the failed requests by what they got (at most
	// maxErrorKinds distinct errors, the rest under "other").
	ErrorKinds map[string]int64
	// ServerCPU is the CPU time (user + system) the server processes used
	// during the phase: all three cluster members, or the bare server.
	ServerCPU time.Duration
	// LeaderCPU is the Raft leader's part of ServerCPU in a hostplane write
	// phase (0 when not counted): the rest is the followers'.
	LeaderCPU time.Duration
	// Entries is how many Raft log entries the leader applied during the
	// phase (0 when not counted): each is one round of log fsyncs and one
	// FSM transaction on every node, however many writes it carries.
	Entries int64
	// ApplyWait is the leader's mean time from proposing a write to its
	// apply (0 when not measured).
	ApplyWait time.Duration
	// Direct and Forwarded are the mean latencies of the successful writes
	// sent to the leader and to a follower (spread phases only).
	Direct, Forwarded time.Duration
	// ClientCPU is the CPU time this benchmark process (the clients) used
	// during the phase; 0 when not counted (side by side, where both
	// clusters' clients share the process).
	ClientCPU time.Duration
	// ServerSyscalls and ClientSyscalls are the read and write system calls
	// the server processes and this benchmark process made during the phase
	// (zero where /proc/<pid>/io cannot be read).
	ServerSyscalls, ClientSyscalls syscalls
	// ServerSwitches and ClientSwitches are the context switches of the
	// server processes' and this process's threads during the phase: each is
	// a thread put to sleep and woken again (on this machine's virtual CPUs
	// one costs tens of µs).
	ServerSwitches, ClientSwitches int64
	// Sysmon is the part of ServerCPU and ServerSwitches spent by the server
	// processes' Go sysmon threads (zero where /proc cannot tell): a cost per
	// second of the processes' life, not per request, so at a lower rate it
	// weighs more per request.
	Sysmon threadUse
	// Channel is the forwarding channels' traffic during the phase, summed
	// over the cluster's members (zero where their metrics lack it).
	Channel channelTraffic
	// ChannelMissing names the members whose metrics could not be read at
	// the phase's start or end: Channel is then not counted (a sum over the
	// others would read as the cluster's figure).
	ChannelMissing []string
	// LeaderMoved: the leader's metrics showed another term, or it no
	// longer leading, at the end of the phase than at its start. Its writes
	// then went to a follower, and the phase compares nothing.
	LeaderMoved bool
	// lat are the successful requests' latencies, sorted (for merge).
	lat []time.Duration
}

// CPUPerOp is the server processes' CPU time per successful request.
func (r Result) CPUPerOp() time.Duration {
	if r.OK == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.OK)
}

// PerSec is successful requests per second.
func (r Result) PerSec() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

func (r Result) String() string {
	s := fmt.Sprintf("%-44s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  server CPU %6.0f µs/op",
		r.Name, r.PerSec(), ms(r.P50), ms(r.P99), us(r.CPUPerOp()))
	if r.LeaderCPU > 0 && r.OK > 0 {
		s += fmt.Sprintf(" (leader %.0f, followers %.0f)", us(r.LeaderCPU/time.Duration(r.OK)), us((r.ServerCPU-r.LeaderCPU)/time.Duration(r.OK)))
	}
	s += fmt.Sprintf("  (%d ok, %d errors, %.1fs)", r.OK, r.Errors, r.Elapsed.Seconds())
	if len(r.ErrorKinds) > 0 {
		s += "  errors: " + errorKinds(r.ErrorKinds)
	}
	if r.LeaderMoved {
		s += "  [THE LEADER CHANGED DURING THIS PHASE]"
	}
	if r.ClientCPU > 0 && r.OK > 0 {
		s += fmt.Sprintf("  client CPU %.0f µs/op", us(r.ClientCPU/time.Duration(r.OK)))
	}
	if r.OK > 0 && r.ServerSyscalls != (syscalls{}) {
		n := float64(r.OK)
		s += fmt.Sprintf("  syscalls/op server %.1f r %.1f w", float64(r.ServerSyscalls.reads)/n, float64(r.ServerSyscalls.writes)/n)
		if r.ClientSyscalls != (syscalls{}) {
			s += fmt.Sprintf(", client %.1f r %.1f w", float64(r.ClientSyscalls.reads)/n, float64(r.ClientSyscalls.writes)/n)
		}
	}
	if r.OK > 0 && r.ServerSwitches > 0 {
		n := float64(r.OK)
		s += fmt.Sprintf("  context switches/op server %.1f", float64(r.ServerSwitches)/n)
		if r.ClientSwitches > 0 {
			s += fmt.Sprintf(", client %.1f", float64(r.ClientSwitches)/n)
		}
		if r.Sysmon.switches > 0 {
			s += fmt.Sprintf("  Go sysmon threads (in the server figures) %.1f switches, %.0f µs CPU per op", float64(r.Sysmon.switches)/n, us(r.Sysmon.cpu/time.Duration(r.OK)))
		}
	}
	if r.Entries > 0 {
		s += fmt.Sprintf("  %.1f writes per Raft entry", float64(r.OK)/float64(r.Entries))
	}
	if len(r.ChannelMissing) > 0 {
		s += "  forward channel traffic not counted (no metrics from " + strings.Join(r.ChannelMissing, ", ") + ")"
	} else if c := r.Channel.String(); c != "" {
		s += "  " + c
	}
	if r.Forwarded > 0 {
		s += fmt.Sprintf("  mean latency to the leader %.2f ms, via a follower %.2f ms", ms(r.Direct), ms(r.Forwarded))
	}
	if r.ApplyWait > 0 {
		s += fmt.Sprintf("  apply wait %.2f ms", ms(r.ApplyWait))
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cpuRatio is how many times more server CPU per request a costs than b
// (0 when either is unmeasured).
func cpuRatio(a, b Result) float64 {
	if b.CPUPerOp() == 0 {
		return 0
	}
	return float64(a.CPUPerOp()) / float64(b.CPUPerOp())
}

// cpuSplit says how the server CPU per write of the spread phase differs
// from the leader phase's on the leader and on the followers, in µs per write
// (empty when the leader's part was not counted).
func cpuSplit(spread, leader Result) string {
	if spread.LeaderCPU == 0 || leader.LeaderCPU == 0 || spread.OK == 0 || leader.OK == 0 {
		return ""
	}
	per := func(d time.Duration, r Result) float64 { return us(d) / float64(r.OK) }
	return fmt.Sprintf(" (leader %+.0f µs, followers %+.0f µs per write)",
		per(spread.LeaderCPU, spread)-per(leader.LeaderCPU, leader),
		per(spread.ServerCPU-spread.LeaderCPU, spread)-per(leader.ServerCPU-leader.LeaderCPU, leader))
}

// sysmonSplit says how the server processes' Go sysmon threads' CPU per
// write differs from the leader phase to the spread phase (part of the server
// figures before it; empty when it was not measured). The spread phase keeps
// the followers' runtimes busy and their sysmon threads at their 20 µs
// period, a cost no part of the forwarding code shows in a profile.
func sysmonSplit(spread, leader Result) string {
	if spread.Sysmon.switches == 0 || leader.Sysmon.switches == 0 || spread.OK == 0 || leader.OK == 0 {
		return ""
	}
	per := func(d time.Duration, r Result) float64 { return us(d) / float64(r.OK) }
	return fmt.Sprintf(", of which Go sysmon threads %+.0f µs per write", per(spread.Sysmon.cpu, spread)-per(leader.Sysmon.cpu, leader))
}

// allCPU says how the CPU per write of all the processes, servers and clients
// together, differs from the leader phase to the spread phase, and the
// clients' part of the difference (empty when the clients' CPU was not
// counted). On a machine the processes share, the throughput ratio is about
// the inverse of this one; the clients run the same code in both phases.
func allCPU(spread, leader Result) string {
	if spread.ClientCPU == 0 || leader.ClientCPU == 0 || spread.OK == 0 || leader.OK == 0 {
		return ""
	}
	per := func(d time.Duration, r Result) float64 { return us(d) / float64(r.OK) }
	return fmt.Sprintf("        all CPU per write (servers and clients) spread / leader = %.2fx (clients %+.0f µs per write)\n",
		per(spread.ServerCPU+spread.ClientCPU, spread)/per(leader.ServerCPU+leader.ClientCPU, leader),
		per(spread.ClientCPU, spread)-per(leader.ClientCPU, leader))
}

// maxErrorKinds is how many distinct errors a phase tells apart.
const maxErrorKinds = 5

// errorKinds lists error counts, most frequent first.
func errorKinds(m map[string]int64) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if m[kinds[i]] != m[kinds[j]] {
			return m[kinds[i]] > m[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d× %s", m[k], k)
	}
	return b.String()
}

// addErrorKind counts n more errors of kind k in m, under "other" once m
// holds maxErrorKinds other kinds.
func addErrorKind(m map[string]int64, k string, n int64) {
	named := len(m)
	if _, ok := m["other"]; ok {
		named--
	}
	if _, seen := m[k]; !seen && named >= maxErrorKinds {
		k = "other"
	}
	m[k] += n
}

// load runs fn from n goroutines for d and measures successes and latency.
func load(name string, n int, d time.Duration, fn func(worker, i int) error) Result {
	var ok, errs atomic.Int64
	var kindsMu sync.Mutex
	kinds := map[string]int64{}
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					errs.Add(1)
					kindsMu.Lock()
					addErrorKind(kinds, err.Error(), 1)
					kindsMu.Unlock()
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				ok.Add(1)
			}
		}(w)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := Result{Name: name, OK: ok.Load(), Errors: errs.Load(), Elapsed: time.Since(start), lat: all}
	if len(kinds) > 0 {
		r.ErrorKinds = kinds
	}
	r.setPercentiles()
	return r
}

func (r *Result) setPercentiles() {
	if len(r.lat) > 0 {
		r.P50 = r.lat[len(r.lat)/2]
		r.P99 = r.lat[len(r.lat)*99/100]
	}
}

// merge sums the phases of one kind measured in rounds: counts, times, CPU,
// system calls and Raft entries add up, the percentiles are of all the
// latencies, the apply wait is the mean weighted by each phase's writes.
func merge(name string, parts []Result) Result {
	r := Result{Name: name}
	var applyWeighted float64
	for _, p := range parts {
		r.OK += p.OK
		r.Errors += p.Errors
		for k, n := range p.ErrorKinds {
			if r.ErrorKinds == nil {
				r.ErrorKinds = map[string]int64{}
			}
			addErrorKind(r.ErrorKinds, k, n)
		}
		r.Elapsed += p.Elapsed
		r.ServerCPU += p.ServerCPU
		r.LeaderCPU += p.LeaderCPU
		r.LeaderMoved = r.LeaderMoved || p.LeaderMoved
		r.ClientCPU += p.ClientCPU
		r.Entries += p.Entries
		r.ServerSyscalls.reads += p.ServerSyscalls.reads
		r.ServerSyscalls.writes += p.ServerSyscalls.writes
		r.ClientSyscalls.reads += p.ClientSyscalls.reads
		r.ClientSyscalls.writes += p.ClientSyscalls.writes
		r.ServerSwitches += p.ServerSwitches
		r.ClientSwitches += p.ClientSwitches
		r.Sysmon.cpu += p.Sysmon.cpu
		r.Sysmon.switches += p.Sysmon.switches
		r.Channel = r.Channel.plus(p.Channel)
		r.ChannelMissing = addMissing(r.ChannelMissing, p.ChannelMissing...)
		applyWeighted += float64(p.ApplyWait) * float64(p.OK)
		r.lat = append(r.lat, p.lat...)
	}
	if r.OK > 0 {
		r.ApplyWait = time.Duration(applyWeighted / float64(r.OK))
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	r.setPercentiles()
	return r
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func httpClient(n int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n * 2, MaxConnsPerHost: n * 2}}
}

// procs tracks started processes so every one is killed at the end.
type procs struct {
	mu    sync.Mutex
	list  []*exec.Cmd
	slack time.Duration // the processes' timer slack (0: the kernel's default)
}

func (p *procs) start(logFile string, name string, args ...string) (*exec.Cmd, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Killed with the benchmark (an interrupted run leaves no coordinator
	// or etcd behind to load the machine's next measurement).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.slack > 0 {
		restore, err := withTimerSlack(p.slack)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	return cmd, nil
}

func (p *procs) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.list {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_, _ = c.Process.Wait()
	}
	p.list = nil
}

// readTimeout bounds each read the benchmark makes of an endpoint (a
// coordinator's /metrics, the read phases' sample, a start-up probe; a CPU
// profile's read, its seconds more): one that accepts and never answers
// fails the read, naming it, instead of hanging the run. A variable for
// the test.
var readTimeout = 10 * time.Second

// reader is the client of those reads; each read has its own deadline
// (get), since a profile's read lasts longer than the others.
var reader = &http.Client{}

// get reads url (with the bearer key unless empty) within limit and
// returns its status and body. An error names the endpoint; a read that
// got no answer in time says so.
func get(url, key string, limit time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := reader.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		if b, err = io.ReadAll(resp.Body); err == nil {
			return resp.StatusCode, b, nil
		}
	}
	if ctx.Err() != nil {
		return 0, nil, fmt.Errorf("GET %s: no whole answer within %s", url, limit)
	}
	return 0, nil, fmt.Errorf("GET %s: %w", url, err)
}

// waitHTTP probes url until it answers below 500, up to timeout; the error
// names url and the last probe's failure.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := errors.New("not probed")
	for time.Now().Before(deadline) {
		status, _, err := get(url, "", min(readTimeout, time.Until(deadline)))
		if err == nil && status < 500 {
			return nil
		}
		if last = err; err == nil {
			last = fmt.Errorf("answered %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not up within %s: %w", url, timeout, last)
}

// Run executes every phase and prints the comparison.
func Run(ctx context.Context, o Options) error {
	// In the framework's run directory: a bench killed midway (SIGKILL,
	// a CI timeout) leaves its clusters' data to the next run's sweep,
	// not in /tmp for good.
	dir, err := framework.MkdirTemp("hpbench")
	if err != nil {
		return err
	}
	defer framework.RemoveTemp(dir)
	p := &procs{slack: o.TimerSlack}
	defer p.killAll()
	fmt.Fprintf(o.Out, "hostplane benchmark: %d concurrent clients, %s per phase, 3-node clusters on loopback, fsync on, %s\n\n", o.Clients, o.Duration, slackSaid(o.TimerSlack))

	var etcd etcdResults
	if !o.NoEtcd {
		etcd, err = benchEtcd(ctx, p, dir, o)
		if err != nil {
			return fmt.Errorf("etcd baseline: %w", err)
		}
		fmt.Fprintln(o.Out, etcd.native)
		fmt.Fprintln(o.Out, etcd.spread)
		fmt.Fprintln(o.Out, etcd.gateway)
		p.killAll()
	}

	hp, err := startHostplane(ctx, dir, o)
	if err != nil {
		return fmt.Errorf("hostplane cluster: %w", err)
	}
	defer hp.c.Close()
	fmt.Fprintf(o.Out, "hostplane coordinators' timer slack: %s\n", timerSlackOf(hp.pids()))
	hc := httpClient(o.Clients)
	post := func(base string) func(int, int) error { return postTicket(hc, base, hp.key) }
	const leaderName, spreadName = "hostplane POST /v1/tickets (to the leader)", "hostplane POST /v1/tickets (spread, followers forward)"
	var split latencySplit
	leaderPhase := func(d time.Duration) Result {
		return hp.measureWrites(leaderName, o.Clients, d, post(hp.urls[hp.leader]))
	}
	spreadPhase := func(d time.Duration) Result {
		return hp.measureWrites(spreadName, o.Clients, d, func(w, i int) error {
			return split.time((w+i)%3 == hp.leader, func() error { return post(hp.urls[(w+i)%3])(w, i) })
		})
	}
	if o.Warmup > 0 {
		// Unmeasured writes spread over all nodes, so the first measured
		// phase does not pay alone for the fresh cluster's start (connections,
		// heaps, the store's first pages).
		load("warm-up", o.Clients, o.Warmup, func(w, i int) error { return post(hp.urls[(w+i)%3])(w, i) })
	}
	var wr, spread Result
	if o.Rounds > 0 {
		fmt.Fprintf(o.Out, "(write phases in %d rounds of leader, spread, spread, leader; %s each)\n", o.Rounds, o.Duration/time.Duration(2*o.Rounds))
		sub := o.Duration / time.Duration(2*o.Rounds)
		wr, spread = inRounds(o, sub, leaderName, spreadName, profiledParts("leader-writes", leaderPhase), profiledParts("spread-writes", spreadPhase))
		fmt.Fprintln(o.Out, wr)
		fmt.Fprintf(o.Out, "(the leader is node %d)\n", hp.leader)
	} else {
		wait := profilePhase("leader-writes", 3, o.Duration)
		wr = leaderPhase(o.Duration)
		wait()
		fmt.Fprintln(o.Out, wr)
		fmt.Fprintf(o.Out, "(the leader is node %d)\n", hp.leader)
		wait = profilePhase("spread-writes", 3, o.Duration)
		spread = spreadPhase(o.Duration)
		wait()
	}
	spread.Direct, spread.Forwarded = split.means()
	fmt.Fprintln(o.Out, spread)
	if o.WritesOnly {
		printWriteRatios(o, wr, spread, etcd)
		return nil
	}

	// Reads: a separate account with one page of tickets, GET /v1/tickets on the leader.
	readKey, err := hp.readAccount(ctx)
	if err != nil {
		return err
	}
	get := func(url, key string) func(int, int) error {
		return func(_, _ int) error {
			req, _ := http.NewRequest("GET", url, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			return roundTrip(hc, req, 200)
		}
	}
	listURL := hp.urls[hp.leader] + "/v1/tickets?limit=20"
	sample, err := fetch(listURL, readKey)
	if err != nil {
		return err
	}
	bareURL, barePid, err := startBare(p, dir, sample)
	if err != nil {
		return err
	}
	bare := measured("bare net/http JSON handler (same body)", []int{barePid}, o.Clients, o.Duration, get(bareURL, ""))
	fmt.Fprintln(o.Out, bare)
	rd, stale := benchReads(o, hp.pids(), get, listURL, readKey)

	printWriteRatios(o, wr, spread, etcd)
	printReadRatios(o, bare, rd, stale)
	return nil
}

// profiledParts is phase, profiled in a profiling run (profilePhase) part by
// part with --rounds: the nth part measured of all is saved as
// <tag>-<n>-node<i>.pprof (and -client), over all but its last second, and
// the parts of one kind are summed afterwards (go tool pprof takes several
// files). Without rounds the leader phase is profiled whole before the spread
// phase, on a smaller store: in one such run the FSM's apply cost the
// followers 3-5 µs more per write in the spread phase, a difference that the
// same build profiled in rounds did not show.
func profiledParts(tag string, phase func(time.Duration) Result) func(time.Duration) Result {
	if os.Getenv("BENCH_PPROF_BASE_PORT") == "" {
		return phase
	}
	return func(d time.Duration) Result {
		wait := profilePhase(fmt.Sprintf("%s-%d", tag, profiledPart.Add(1)), 3, d)
		r := phase(d)
		wait()
		return r
	}
}

// profiledPart numbers the parts profiledParts profiles.
var profiledPart atomic.Int64

// inRounds measures a leader phase and a spread phase in o.Rounds rounds of
// leader, spread, spread, leader, each sub long, and merges each kind's parts
// (with o.Verbose each part is printed as it ends).
func inRounds(o Options, sub time.Duration, leaderName, spreadName string, leaderPhase, spreadPhase func(time.Duration) Result) (leader, spread Result) {
	var lparts, sparts []Result
	part := func(parts *[]Result, r Result) {
		*parts = append(*parts, r)
		if o.Verbose {
			fmt.Fprintln(o.Out, "  ", r)
		}
	}
	for range o.Rounds {
		part(&lparts, leaderPhase(sub))
		part(&sparts, spreadPhase(sub))
		part(&sparts, spreadPhase(sub))
		part(&lparts, leaderPhase(sub))
	}
	return merge(leaderName, lparts), merge(spreadName, sparts)
}

// latencySplit sums the latencies of successful writes sent straight to the
// leader and of those a follower forwarded.
type latencySplit struct {
	direct, forwarded, nDirect, nForwarded atomic.Int64
}

func (l *latencySplit) time(direct bool, fn func() error) error {
	t0 := time.Now()
	err := fn()
	if err == nil {
		d := int64(time.Since(t0))
		if direct {
			l.direct.Add(d)
			l.nDirect.Add(1)
		} else {
			l.forwarded.Add(d)
			l.nForwarded.Add(1)
		}
	}
	return err
}

// means are the mean latencies to the leader and via a follower.
func (l *latencySplit) means() (direct, forwarded time.Duration) {
	if n := l.nDirect.Load(); n > 0 {
		direct = time.Duration(l.direct.Load() / n)
	}
	if n := l.nForwarded.Load(); n > 0 {
		forwarded = time.Duration(l.forwarded.Load() / n)
	}
	return direct, forwarded
}

// ticketBody is what every benchmark write posts.
var ticketBody, _ = json.Marshal(api.TicketCreateRequest{Subject: "bench", Message: "benchmark ticket body", Priority: "low"})

// postTicket posts one ticket to base with key and wants a 201.
func postTicket(hc *http.Client, base, key string) func(int, int) error {
	return func(_, _ int) error {
		req, _ := http.NewRequest("POST", base+"/v1/tickets", bytes.NewReader(ticketBody))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		return roundTrip(hc, req, 201)
	}
}

// roundTrip sends req and wants the status want; the body is read to its end
// and closed, so the client reuses the connection.
func roundTrip(hc *http.Client, req *http.Request, want int) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		// The answer's error code, where it is hostplane's error body,
		// tells a 503 no_leader from a 503 leader_unreachable.
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if e.Code != "" {
			return fmt.Errorf("status %d %s", resp.StatusCode, e.Code)
		}
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// RunSideBySide compares two builds of the write path on a shared, busy
// machine: a 3-node cluster of o.BinDir's coordinator (A) and one of
// o.SideBySide's (B) are started, then both take POST /v1/tickets to their
// leader from o.Clients clients each over the same o.Duration, so whatever
// else the machine does weighs on both alike; then both take the same
// writes spread over their three nodes (followers forward), again at once. It
// prints each cluster's throughput and server CPU per write in each phase, B's
// over A's, and each cluster's spread over leader.
func RunSideBySide(ctx context.Context, o Options) error {
	// In the framework's run directory: a bench killed midway (SIGKILL,
	// a CI timeout) leaves its clusters' data to the next run's sweep,
	// not in /tmp for good.
	dir, err := framework.MkdirTemp("hpbench")
	if err != nil {
		return err
	}
	defer framework.RemoveTemp(dir)
	fmt.Fprintf(o.Out, "side by side: A = %s, B = %s; %d clients each, %s, 3-node clusters on loopback, fsync on, %s\n",
		o.BinDir, o.SideBySide, o.Clients, o.Duration, slackSaid(o.TimerSlack))
	var hps [2]*hostplane
	for i, bin := range []string{o.BinDir, o.SideBySide} {
		sub := filepath.Join(dir, string(rune('a'+i)))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		hp, err := startHostplaneBin(ctx, sub, bin, string(rune('a'+i))+"hp", o.TimerSlack)
		if err != nil {
			return fmt.Errorf("cluster %c: %w", 'A'+i, err)
		}
		defer hp.c.Close()
		hps[i] = hp
	}
	// Both phases at once on both clusters: writes to the leader, then
	// spread over the three nodes.
	phase := func(what string, target func(hp *hostplane, w, i int) string, splits *[2]latencySplit) [2]Result {
		var res [2]Result
		var wg sync.WaitGroup
		for i, hp := range hps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := httpClient(o.Clients)
				res[i] = hp.measureWrites(fmt.Sprintf("%c: POST /v1/tickets (%s)", 'A'+i, what), o.Clients, o.Duration,
					func(w, n int) error {
						post := func() error { return postTicket(hc, target(hp, w, n), hp.key)(w, n) }
						if splits == nil {
							return post()
						}
						return splits[i].time(target(hp, w, n) == hp.urls[hp.leader], post)
					})
				// Both clusters' clients share this process: its CPU and
				// system calls are not one cluster's.
				res[i].ClientSyscalls = syscalls{}
				res[i].ClientSwitches = 0
				res[i].ClientCPU = 0
				if splits != nil {
					res[i].Direct, res[i].Forwarded = splits[i].means()
				}
			}()
		}
		wg.Wait()
		fmt.Fprintln(o.Out, res[0])
		fmt.Fprintln(o.Out, res[1])
		fmt.Fprintf(o.Out, "B / A (%s): throughput %.2fx, server CPU per write %.2fx\n", what, res[1].PerSec()/res[0].PerSec(), cpuRatio(res[1], res[0]))
		return res
	}
	leader := phase("to the leader", func(hp *hostplane, _, _ int) string { return hp.urls[hp.leader] }, nil)
	var splits [2]latencySplit
	spread := phase("spread, followers forward", func(hp *hostplane, w, i int) string { return hp.urls[(w+i)%3] }, &splits)
	for i := range hps {
		fmt.Fprintf(o.Out, "%c: spread / leader: throughput %.2fx, server CPU per write %.2fx%s%s\n", 'A'+i,
			spread[i].PerSec()/leader[i].PerSec(), cpuRatio(spread[i], leader[i]), cpuSplit(spread[i], leader[i]), sysmonSplit(spread[i], leader[i]))
	}
	return nil
}

func printWriteRatios(o Options, wr, spread Result, etcd etcdResults) {
	if wr.LeaderMoved || spread.LeaderMoved {
		fmt.Fprintf(o.Out, "\nthe Raft leader changed during a write phase: the ratios below do not compare what they say; run again\n")
	}
	etcdRes, etcdNative := etcd.gateway, etcd.native
	if etcdRes.OK == 0 || etcdNative.OK == 0 {
		fmt.Fprintf(o.Out, "\nwrites: hostplane spread / hostplane leader = %.2fx   aim >= 0.9x\n", spread.PerSec()/wr.PerSec())
		fmt.Fprintf(o.Out, "        server CPU per write spread / leader = %.2fx%s%s\n", cpuRatio(spread, wr), cpuSplit(spread, wr), sysmonSplit(spread, wr))
		fmt.Fprint(o.Out, allCPU(spread, wr))
		return
	}
	fmt.Fprintf(o.Out, "\nwrites: hostplane leader / etcd JSON gateway = %.2fx   aim >= 1.0x\n", wr.PerSec()/etcdRes.PerSec())
	fmt.Fprintf(o.Out, "        hostplane leader / etcd Go client    = %.2fx   aim >= 0.8x\n", wr.PerSec()/etcdNative.PerSec())
	fmt.Fprintf(o.Out, "        hostplane spread / hostplane leader  = %.2fx   aim >= 0.9x\n", spread.PerSec()/wr.PerSec())
	if etcd.spread.OK > 0 {
		// The reference the aim implies: etcd's own followers forwarding
		// its puts to its leader, on the same machine in the same run.
		fmt.Fprintf(o.Out, "        etcd spread / etcd leader (Go client) = %.2fx   (etcd's followers forward too; server CPU per put %.2fx%s)\n",
			etcd.spread.PerSec()/etcdNative.PerSec(), cpuRatio(etcd.spread, etcdNative), cpuSplit(etcd.spread, etcdNative))
	}
	fmt.Fprintf(o.Out, "        server CPU per write: leader / etcd JSON gateway = %.2fx, leader / etcd Go client = %.2fx, spread / leader = %.2fx%s%s\n",
		cpuRatio(wr, etcdRes), cpuRatio(wr, etcdNative), cpuRatio(spread, wr), cpuSplit(spread, wr), sysmonSplit(spread, wr))
	fmt.Fprint(o.Out, allCPU(spread, wr))
}

// fetch is the 200 answer of url read with the bearer key (none when
// empty) within readTimeout; another status is an error holding the body.
func fetch(url, key string) ([]byte, error) {
	return fetchWithin(url, key, readTimeout)
}

// fetchWithin is fetch within limit (a CPU profile's read: its seconds
// and readTimeout).
func fetchWithin(url, key string, limit time.Duration) ([]byte, error) {
	status, b, err := get(url, key, limit)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, status, b)
	}
	return b, nil
}

// etcdLeads reports whether the etcd member whose client URL is base leads,
// from its JSON gateway's maintenance status: an answer other than 200, or
// one that is not a status naming the member, is an error (not "does not
// lead").
func etcdLeads(hc *http.Client, base string) (bool, error) {
	resp, err := hc.Post(base+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, fmt.Errorf("%s status: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s status: %d %.300s", base, resp.StatusCode, b)
	}
	var st struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Header.MemberID == "" {
		return false, fmt.Errorf("%s status: not a member's status (%v): %.300s", base, err, b)
	}
	return st.Leader != "" && st.Leader == st.Header.MemberID, nil
}

// readMetrics is the Prometheus exposition at url (a metrics listener's
// /metrics); an answer other than 200 is an error, not an empty
// exposition.
func readMetrics(url string) (string, error) {
	b, err := fetch(url, "")
	return string(b), err
}

// startBare re-executes this binary as the bare JSON server (a separate process,
// as the coordinator is) serving the same payload decoded and re-encoded per request.
func startBare(p *procs, dir string, sample []byte) (string, int, error) {
	f := filepath.Join(dir, "bare.json")
	if err := os.WriteFile(f, sample, 0o600); err != nil {
		return "", 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", 0, err
	}
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd, err := p.start(filepath.Join(dir, "bare.log"), self, "bare-server", "--addr", addr, "--file", f)
	if err != nil {
		return "", 0, err
	}
	url := "http://" + addr + "/"
	return url, cmd.Process.Pid, waitHTTP(url, 10*time.Second)
}

// ServeBare is the bare baseline: net/http + encoding/json of a fixed value.
func ServeBare(addr, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var v api.Page[api.Ticket]
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}))
}

// etcdResults are the etcd baselines' phases.
type etcdResults struct {
	// native and gateway are puts to the leader through the Go client (gRPC)
	// and through the JSON gateway.
	native, gateway Result
	// spread is puts through the Go client spread over all three members as
	// hostplane's spread phase spreads its writes: a follower forwards each
	// put's proposal to the leader over its peer connection and answers once
	// it has applied it. Its ratio to native is what etcd itself does where
	// hostplane's followers forward.
	spread Result
}

// benchEtcd starts a 3-node etcd and measures puts through etcd's Go client
// (gRPC, the native path) to its leader and spread over all its members, and
// through its JSON gateway to its leader.
func benchEtcd(ctx context.Context, p *procs, dir string, o Options) (res etcdResults, err error) {
	if _, err := exec.LookPath("etcd"); err != nil {
		return res, fmt.Errorf("etcd not installed (apt-get install etcd-server): %w", err)
	}
	type member struct{ name, peer, client string }
	var ms []member
	var pids []int
	var initialPeers []string
	for i := 1; i <= 3; i++ {
		m := member{fmt.Sprintf("e%d", i), fmt.Sprintf("http://127.0.0.1:%d", freePort()), fmt.Sprintf("http://127.0.0.1:%d", freePort())}
		ms = append(ms, m)
		initialPeers = append(initialPeers, m.name+"="+m.peer)
	}
	for _, m := range ms {
		cmd, err := p.start(filepath.Join(dir, m.name+".log"), "etcd", "--name", m.name, "--data-dir", filepath.Join(dir, m.name),
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--initial-cluster", strings.Join(initialPeers, ","), "--initial-cluster-state", "new", "--initial-cluster-token", "hpbench",
			"--log-level", "error", "--logger", "zap")
		if err != nil {
			return res, err
		}
		pids = append(pids, cmd.Process.Pid)
	}
	fmt.Fprintf(o.Out, "etcd members' timer slack: %s\n", timerSlackOf(pids))
	hc := httpClient(o.Clients)
	// Find the leader through the JSON gateway.
	var leaderURL string
	var lastErr error // why the last member asked did not say it leads
	deadline := time.Now().Add(30 * time.Second)
	for leaderURL == "" && time.Now().Before(deadline) {
		for _, m := range ms {
			lead, err := etcdLeads(hc, m.client)
			if err != nil {
				lastErr = err
			} else if lead {
				leaderURL = m.client
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if leaderURL == "" {
		return res, fmt.Errorf("etcd cluster elected no leader (logs in %s; last answer: %v)", dir, lastErr)
	}
	val := base64.StdEncoding.EncodeToString([]byte(`{"subject":"bench","message":"benchmark ticket body","priority":"low"}`))
	put := func(w, i int) error {
		key := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("tickets/%d/%d", w, i)))
		req, _ := http.NewRequest("POST", leaderURL+"/v3/kv/put", strings.NewReader(`{"key":"`+key+`","value":"`+val+`"}`))
		req.Header.Set("Content-Type", "application/json")
		return roundTrip(hc, req, 200)
	}
	if err := put(0, -1); err != nil {
		return res, fmt.Errorf("etcd put: %w", err)
	}
	// The native client: one gRPC connection to the leader, as etcd's own
	// benchmark tool uses per client group; puts of the same value.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{leaderURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return res, fmt.Errorf("etcd Go client: %w", err)
	}
	defer cli.Close()
	rawVal := `{"subject":"bench","message":"benchmark ticket body","priority":"low"}`
	nput := func(w, i int) error {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := cli.Put(pctx, fmt.Sprintf("tickets-native/%d/%d", w, i), rawVal)
		return err
	}
	if err := nput(0, -1); err != nil {
		return res, fmt.Errorf("etcd Go client put: %w", err)
	}
	// Spread: one Go client per member, each with that member as its only
	// endpoint (the client balances nothing; a follower forwards), and the
	// i-th put of worker w to member (w+i) % 3, as hostplane's spread phase.
	leaderIdx := -1
	clis := make([]*clientv3.Client, len(ms))
	for i, m := range ms {
		if m.client == leaderURL {
			leaderIdx = i
		}
		if clis[i], err = clientv3.New(clientv3.Config{Endpoints: []string{m.client}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}); err != nil {
			return res, fmt.Errorf("etcd Go client to %s: %w", m.name, err)
		}
		defer clis[i].Close()
	}
	var split latencySplit
	sput := func(w, i int) error {
		m := (w + i) % len(clis)
		return split.time(m == leaderIdx, func() error {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, err := clis[m].Put(pctx, fmt.Sprintf("tickets-spread/%d/%d", w, i), rawVal)
			return err
		})
	}
	for w := range clis {
		if err := sput(w, 0); err != nil {
			return res, fmt.Errorf("etcd Go client put through %s: %w", ms[w].name, err)
		}
	}
	split = latencySplit{}
	const nativeName, spreadName = "etcd 3.4 put via Go client (gRPC, to the leader)", "etcd 3.4 put via Go client (gRPC, spread, followers forward)"
	leaderPid := []int{pids[leaderIdx]}
	withLeaderCPU := func(name string, d time.Duration, fn func(int, int) error) Result {
		before := procCPU(leaderPid)
		r := measured(name, pids, o.Clients, d, fn)
		r.LeaderCPU = procCPU(leaderPid) - before
		return r
	}
	leaderPhase := func(d time.Duration) Result { return withLeaderCPU(nativeName, d, nput) }
	spreadPhase := func(d time.Duration) Result { return withLeaderCPU(spreadName, d, sput) }
	if o.Rounds > 0 {
		res.native, res.spread = inRounds(o, o.Duration/time.Duration(2*o.Rounds), nativeName, spreadName, leaderPhase, spreadPhase)
	} else {
		res.native, res.spread = leaderPhase(o.Duration), spreadPhase(o.Duration)
	}
	res.spread.Direct, res.spread.Forwarded = split.means()
	res.gateway = measured("etcd 3.4 put via JSON gateway (to the leader)", pids, o.Clients, o.Duration, put)
	return res, nil
}

type hostplane struct {
	c       *framework.ProcessCluster
	urls    []string
	sockets []string
	leader  int
	key     string
}

func startHostplane(ctx context.Context, dir string, o Options) (*hostplane, error) {
	return startHostplaneBin(ctx, dir, o.BinDir, "hp", o.TimerSlack)
}

func startHostplaneBin(ctx context.Context, dir, binDir, prefix string, slack time.Duration) (*hostplane, error) {
	bin := filepath.Join(binDir, "hostplane-coordinator")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build: %w", bin, err)
	}
	if slack > 0 {
		restore, err := withTimerSlack(slack)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	c, err := framework.StartProcessCluster(framework.ProcessOptions{N: 3, Bin: bin, Dir: dir, NodePrefix: prefix,
		Secret: "bench-cluster-secret-0123456789", RateLimit: 100000000, LogLevel: "warn",
		Extra: func(i int, _ *framework.CoordinatorProcess) []string {
			if pp := os.Getenv("BENCH_PPROF_BASE_PORT"); pp != "" {
				// For profiling runs: node i serves pprof on BENCH_PPROF_BASE_PORT+i.
				var base int
				fmt.Sscan(pp, &base)
				return []string{"--pprof-addr", fmt.Sprintf("127.0.0.1:%d", base+i+1)}
			}
			return nil
		}})
	if err != nil {
		return nil, err
	}
	hp := &hostplane{c: c}
	for _, n := range c.Nodes {
		hp.urls = append(hp.urls, n.URL())
		hp.sockets = append(hp.sockets, n.AdminSocket())
	}
	if hp.leader, err = c.LeaderIndex(20 * time.Second); err != nil {
		c.Close()
		return nil, err
	}
	adm := c.Admin(hp.leader)
	acc, err := adm.CreateAccount(ctx, api.AccountCreateRequest{Email: "bench@example.com"})
	if err != nil {
		c.Close()
		return nil, err
	}
	k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "bench"})
	if err != nil {
		c.Close()
		return nil, err
	}
	hp.key = k.Key
	// Every node must know every API address before the spread phase.
	time.Sleep(2 * time.Second)
	return hp, nil
}

// measureWrites is measured over the cluster's members, also counting the
// Raft entries the leader applied meanwhile, the leader's mean wait from
// proposing a write to its apply, and the leader's own CPU time.
func (hp *hostplane) measureWrites(name string, n int, d time.Duration, fn func(worker, i int) error) Result {
	before, err := hp.leaderMetrics()
	leader := []int{hp.c.Nodes[hp.leader].Pid()}
	leaderBefore := procCPU(leader)
	chBefore, missBefore := hp.channelTraffic()
	r := measured(name, hp.pids(), n, d, fn)
	r.LeaderCPU = procCPU(leader) - leaderBefore
	chAfter, missAfter := hp.channelTraffic()
	if r.ChannelMissing = addMissing(missBefore, missAfter...); r.ChannelMissing == nil {
		r.Channel = chAfter.minus(chBefore)
	}
	after, err2 := hp.leaderMetrics()
	if err = errors.Join(err, err2); err != nil {
		fmt.Fprintf(os.Stderr, "%s: leader metrics: %v\n", name, err)
	} else {
		r.LeaderMoved = after.term >= 0 && (after.term != before.term || after.leader != 1)
		r.Entries = int64(after.applied - before.applied)
		if c := after.applyCount - before.applyCount; c > 0 {
			r.ApplyWait = time.Duration((after.applySum - before.applySum) / c * float64(time.Second))
		}
	}
	return r
}

// channelEnd is one end's forwarding channel counts (the coordinator's
// hostplane_forward_channel_* series): frames written and the writes that
// carried them, frames read and the reads that brought them.
type channelEnd struct{ framesOut, writes, framesIn, reads float64 }

// channelTraffic is both ends' counts: [0] the followers', [1] the leader's.
type channelTraffic [2]channelEnd

func (a channelTraffic) op(b channelTraffic, sign float64) channelTraffic {
	for i := range a {
		a[i].framesOut += sign * b[i].framesOut
		a[i].writes += sign * b[i].writes
		a[i].framesIn += sign * b[i].framesIn
		a[i].reads += sign * b[i].reads
	}
	return a
}

func (a channelTraffic) plus(b channelTraffic) channelTraffic  { return a.op(b, 1) }
func (a channelTraffic) minus(b channelTraffic) channelTraffic { return a.op(b, -1) }

// String gives frames per write and per read at each end ("" when no frame
// was written).
func (a channelTraffic) String() string {
	if a[0].writes == 0 && a[1].writes == 0 {
		return ""
	}
	per := func(f, n float64) float64 {
		if n == 0 {
			return 0
		}
		return f / n
	}
	s := "forward channel frames per write / per read:"
	for i, name := range []string{"followers", "leader"} {
		e := a[i]
		s += fmt.Sprintf(" %s %.2f (%.0f frames) / %.2f (%.0f frames)", name, per(e.framesOut, e.writes), e.framesOut, per(e.framesIn, e.reads), e.framesIn)
	}
	return s
}

// channelTraffic is sumChannelTraffic over the cluster's members.
func (hp *hostplane) channelTraffic() (channelTraffic, []string) {
	urls := make([]string, len(hp.c.Nodes))
	for i, n := range hp.c.Nodes {
		urls[i] = n.MetricsURL()
	}
	return sumChannelTraffic(urls)
}

// sumChannelTraffic sums the forwarding channel counts at the metrics
// listeners urls (one per member; a member whose metrics lack them counts
// 0). missing names each member whose metrics could not be read (also
// written to stderr with the reason): the sum then lacks its counts and is
// no figure of the cluster's.
func sumChannelTraffic(urls []string) (t channelTraffic, missing []string) {
	for i, u := range urls {
		text, err := readMetrics(u + "/metrics")
		if err != nil {
			fmt.Fprintf(os.Stderr, "forward channel traffic: member %d: %v\n", i, err)
			missing = append(missing, fmt.Sprintf("member %d (%s)", i, u))
			continue
		}
		t = t.plus(parseChannelTraffic(text))
	}
	return t, missing
}

// addMissing is the members of to and more, each once, in their order.
func addMissing(to []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(to, m) {
			to = append(to, m)
		}
	}
	return to
}

// parseChannelTraffic reads the hostplane_forward_channel_* counters from a
// Prometheus text exposition.
func parseChannelTraffic(text string) channelTraffic {
	var t channelTraffic
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "hostplane_forward_channel_")
		if !ok {
			continue
		}
		for i, end := range []string{`{end="follower"} `, `{end="leader"} `} {
			for _, m := range []struct {
				name string
				v    *float64
			}{
				{"frames_written_total", &t[i].framesOut}, {"writes_total", &t[i].writes},
				{"frames_read_total", &t[i].framesIn}, {"reads_total", &t[i].reads},
			} {
				if v, ok := strings.CutPrefix(rest, m.name+end); ok {
					_, _ = fmt.Sscan(v, m.v)
				}
			}
		}
	}
	return t
}

// leaderSample is what measureWrites reads from the leader's metrics.
type leaderSample struct {
	applied              float64 // hostplane_fsm_applied_index
	applySum, applyCount float64 // hostplane_raft_apply_duration_seconds
	leader, term         float64 // hostplane_raft_leader, hostplane_raft_term; -1: not exposed
}

// leaderMetrics reads the leader's metrics listener.
func (hp *hostplane) leaderMetrics() (leaderSample, error) {
	text, err := readMetrics(hp.c.Nodes[hp.leader].MetricsURL() + "/metrics")
	if err != nil {
		return leaderSample{}, err
	}
	return parseLeaderSample(text)
}

// parseLeaderSample reads a leaderSample from a Prometheus text exposition.
func parseLeaderSample(text string) (leaderSample, error) {
	var s leaderSample
	found := 0
	for line := range strings.Lines(text) {
		for _, m := range []struct {
			prefix string
			v      *float64
		}{
			{"hostplane_fsm_applied_index ", &s.applied},
			{"hostplane_raft_apply_duration_seconds_sum ", &s.applySum},
			{"hostplane_raft_apply_duration_seconds_count ", &s.applyCount},
		} {
			if v, ok := strings.CutPrefix(line, m.prefix); ok {
				if _, err := fmt.Sscan(v, m.v); err != nil {
					return s, fmt.Errorf("%s: %w", strings.TrimSpace(line), err)
				}
				found++
			}
		}
	}
	if s.leader, s.term = -1, -1; found != 3 {
		return s, fmt.Errorf("the leader's metrics lack the applied index or the apply durations")
	}
	// The leadership gauges are optional: a build before them (an A/B
	// against an older commit) has none, and its phases cannot tell.
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, "hostplane_raft_leader "); ok {
			_, _ = fmt.Sscan(v, &s.leader)
		}
		if v, ok := strings.CutPrefix(line, "hostplane_raft_term "); ok {
			_, _ = fmt.Sscan(v, &s.term)
		}
	}
	return s, nil
}

// pids are the cluster members' process ids.
func (hp *hostplane) pids() []int {
	var out []int
	for _, n := range hp.c.Nodes {
		out = append(out, n.Pid())
	}
	return out
}

func (hp *hostplane) readAccount(ctx context.Context) (string, error) {
	adm := client.NewAdmin(hp.sockets[hp.leader])
	acc, err := adm.CreateAccount(ctx, api.AccountCreateRequest{Email: "bench-reads@example.com"})
	if err != nil {
		return "", err
	}
	k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "reads"})
	if err != nil {
		return "", err
	}
	c := client.New(hp.urls[hp.leader], k.Key)
	for i := 0; i < 20; i++ {
		if _, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprint("read ticket ", i), Message: "m"}, ""); err != nil {
			return "", err
		}
	}
	return k.Key, nil
}
