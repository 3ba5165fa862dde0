package orders

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// BenchmarkOrdersVsTickets measures POST /v1/servers (debit + invoice +
// server + placement + action in one command) against POST /v1/tickets on
// the same three coordinator processes, in ten alternating rounds of 40
// calls from 8 clients spread over the coordinators, and reports both rates
// (the means of the rounds') and their ratio (the issue aims at orders ≥
// 0.8× tickets), and the CPU time the three coordinator processes spent per
// call of each kind (from /proc/<pid>/stat; steadier than the wall-clock
// rate on a shared machine; it includes the provisioning the orders set off
// while it overlaps), in all and on the leader; each round is logged too
// (servers accumulate on the node from round to round). After the rounds it
// logs, per round, how many of its orders' provisionings finished after the
// round had ended (their actions' finished_at, the leader's time of the
// result's command, read once every round is measured, so the reading
// changes nothing in them): that provisioning ran on into the next ticket
// round, its CPU counted as the tickets'. late-provisionings/round is their
// mean.
//
//	go test ./tests/orders -run '^$' -bench OrdersVsTickets -benchtime 1x
//
// With ORDERS_PPROF_BASE_PORT set, coordinator i serves pprof on that port
// + i and the leader's CPU profile over the order rounds is saved as
// ORDERS_PROFILE_DIR/orders-leader.pprof.
func BenchmarkOrdersVsTickets(b *testing.B) {
	base, _ := strconv.Atoi(os.Getenv("ORDERS_PPROF_BASE_PORT"))
	r := newRigFlags(b, func(i int) []string {
		// 512 servers of 1 vCPU and 256 MiB fit the scripted node (64
		// vCPUs overcommitted 8 times, 128 GiB).
		flags := []string{"--cpu-overcommit", "8"}
		if base == 0 {
			return flags
		}
		return append(flags, "--pprof-addr", fmt.Sprintf("127.0.0.1:%d", base+i))
	}, "-kvm-scale", "4")
	// 400 servers. Rounds of 20 calls (two and a half waves of 8 clients)
	// were too short to be steady: one run at load 8 gave rounds of 47,
	// 131 and 198 orders/s. Rounds of 40 still range widely on a shared
	// machine (one run at load 7: ratios 0.40 to 1.30 in ten rounds), so a
	// run takes ten of them, not three. The rounds do not get dearer as the
	// node fills (that run: 3.0-4.8 ms of CPU per order, 3.5 in the tenth
	// round with 360 servers before it).
	const rounds, per, clients = 10, 40, 8
	r.credit(int64(b.N*rounds*per) * price)
	pids := func() []int {
		var out []int
		for _, p := range r.c.Nodes {
			out = append(out, p.Pid())
		}
		return out
	}()
	leader := r.c.WaitLeader(20 * time.Second)
	var stop func()
	if base != 0 {
		stop = leaderProfile(b, base+leader)
	}
	var leaderOrderCPU, leaderTicketCPU time.Duration
	var orders, tickets float64
	var orderCPU, ticketCPU time.Duration
	// Each order round's actions and its end, for the late provisionings.
	var roundActs [][]string
	var roundEnds []time.Time
	var actsMu sync.Mutex
	var resent atomic.Int64 // calls sent again after a 503 no_leader
	n := 0
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for round := 0; round < rounds; round++ {
			c0, l0 := proccpu.Of(pids...), proccpu.Of(pids[leader])
			t, err := rate(per, clients, func(i int) error {
				return benchTicket(r.ctx, r.api(i), fmt.Sprintf("bench-ticket-%d", n*per+i), &resent)
			})
			if err != nil {
				b.Fatal(err)
			}
			c1, l1 := proccpu.Of(pids...), proccpu.Of(pids[leader])
			var acts []string
			o, err := rate(per, clients, func(i int) error {
				out, err := benchOrder(r.ctx, r.api(i), n*per+i, &resent)
				actsMu.Lock()
				acts = append(acts, out.Action.ID)
				actsMu.Unlock()
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			c2, l2 := proccpu.Of(pids...), proccpu.Of(pids[leader])
			roundActs, roundEnds = append(roundActs, acts), append(roundEnds, time.Now())
			leaderTicketCPU, leaderOrderCPU = leaderTicketCPU+l1-l0, leaderOrderCPU+l2-l1
			b.Logf("round %d (%d servers before it): orders %.0f/s, tickets %.0f/s, ratio %.2f; CPU %.1f ms/order, %.1f ms/ticket",
				n+1, n*per, o, t, o/t, float64((c2-c1).Microseconds())/1000/per, float64((c1-c0).Microseconds())/1000/per)
			ticketCPU, orderCPU = ticketCPU+c1-c0, orderCPU+c2-c1
			n++
			orders, tickets = orders+o, tickets+t
		}
	}
	if stop != nil {
		stop()
	}
	b.StopTimer()
	late := 0
	for k, acts := range roundActs {
		after := 0
		for _, id := range acts {
			a := framework.WaitActionSuccess(b, r.api(leader), id, time.Minute)
			if a.FinishedAt != nil && a.FinishedAt.After(roundEnds[k]) {
				after++
			}
		}
		b.Logf("round %d: %d of its %d orders' provisionings finished after it ended", k+1, after, len(acts))
		late += after
	}
	calls := float64(n * per)
	b.ReportMetric(orders/float64(n), "orders/s")
	b.ReportMetric(tickets/float64(n), "tickets/s")
	b.ReportMetric(orders/tickets, "orders/tickets")
	b.ReportMetric(float64(orderCPU.Microseconds())/1000/calls, "cpu-ms/order")
	b.ReportMetric(float64(ticketCPU.Microseconds())/1000/calls, "cpu-ms/ticket")
	b.ReportMetric(float64(leaderOrderCPU.Microseconds())/1000/calls, "leader-cpu-ms/order")
	b.ReportMetric(float64(leaderTicketCPU.Microseconds())/1000/calls, "leader-cpu-ms/ticket")
	b.ReportMetric(float64(late)/float64(n), "late-provisionings/round")
	b.ReportMetric(float64(resent.Load()), "resent-after-503")
	b.Logf("orders %.0f/s, tickets %.0f/s, ratio %.2f; coordinator CPU %.1f ms/order, %.1f ms/ticket (ticket/order CPU %.2f)",
		orders/float64(n), tickets/float64(n), orders/tickets,
		float64(orderCPU.Microseconds())/1000/calls, float64(ticketCPU.Microseconds())/1000/calls, float64(ticketCPU)/float64(orderCPU))
}

// leaderProfile starts a CPU profile of the coordinator serving pprof on
// port; the returned stop ends it and saves it as
// ORDERS_PROFILE_DIR/orders-leader.pprof.
func leaderProfile(b *testing.B, port int) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=25", port))
		if err != nil {
			b.Log("profile:", err)
			return
		}
		defer resp.Body.Close()
		dir := os.Getenv("ORDERS_PROFILE_DIR")
		if dir == "" {
			dir = "."
		}
		f, err := os.Create(filepath.Join(dir, "orders-leader.pprof"))
		if err != nil {
			b.Log("profile:", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return func() { <-done }
}

// benchTicket creates a ticket through c with the Idempotency-Key key: a
// 503 no_leader pkg/client sends again itself, a 409 idempotency_key_in_flight
// resendInFlight; both counted in resent (counted).
func benchTicket(ctx context.Context, c *client.Client, key string, resent *atomic.Int64) error {
	c = counted(c, resent)
	return resendInFlight(resent, func() error {
		_, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m", Department: "technical", Priority: "low"}, key)
		return err
	})
}

// benchOrder places order(n) through c with the Idempotency-Key
// "bench-order-n", sent again as benchTicket's ticket is.
func benchOrder(ctx context.Context, c *client.Client, n int, resent *atomic.Int64) (api.ServerOrder, error) {
	c = counted(c, resent)
	var out api.ServerOrder
	err := resendInFlight(resent, func() (err error) {
		out, err = c.OrderServer(ctx, order(n), fmt.Sprintf("bench-order-%d", n))
		return err
	})
	return out, err
}

// counted is c counting in resent each request it sends again after a 503
// (an election, as happens under load with the rig's 500 ms Raft timeout:
// one run of these benchmarks died on one; pkg/client's Resend, for up to
// 15 s), which the benchmarks report as resent-after-503. The calls send an
// Idempotency-Key of their own, so pkg/client sends them again and the
// cluster executes each once however often it is sent.
func counted(c *client.Client, resent *atomic.Int64) *client.Client {
	cc := *c
	cc.Waiting = func(*api.Error, time.Duration) { resent.Add(1) }
	return &cc
}

// resendInFlight calls call, and again while it answers 409
// idempotency_key_in_flight (framework.ResendInFlight: every 250 ms for up
// to 15 s): with the call's own Idempotency-Key, that can only be its
// earlier send (one pkg/client sent again after a 503), still being
// applied. Each resend is counted in resent.
func resendInFlight(resent *atomic.Int64, call func() error) error {
	return framework.ResendInFlight(15*time.Second, func(again bool) error {
		if again {
			resent.Add(1)
		}
		return call()
	})
}

// rate runs n calls of call from clients goroutines and returns calls/s.
func rate(n, clients int, call func(i int) error) (float64, error) {
	start := time.Now()
	err := framework.Parallel(n, clients, call)
	return float64(n) / time.Since(start).Seconds(), err
}

// BenchmarkOrderCPU is the CPU an order costs the whole system, beside a
// ticket's: 120 tickets, then 120 orders whose provisioning (the scripted
// agent answers at once) is waited for (until the leader's
// hostplane_actions_open gauge reads 0; each action's success is checked
// after the measurement), each from 8 clients spread over the coordinators.
// It reports the CPU per call of the leader, of the two followers, of the
// agent and of this process (the clients), and the total ratio
// order/ticket; and where a call's time goes: its mean duration as the
// clients saw it (call-ms/order, /ticket) and the leader's mean time from
// proposing a command to applying it (apply-wait-ms/order-command,
// /ticket-command; by default an order's action's finish command is among
// the order window's). BenchmarkOrdersVsTickets' rounds of 40 calls measure CPU in
// clock ticks of 10 ms per process (±0.75 ms a call), and the provisioning
// an order sets off runs on into the next ticket round; here neither blurs
// the figure. It also reports the Raft log entries and the commands the
// leader committed per call (the batcher group-commits the commands: an
// order's two, its own and its action's end, share entries with other
// calls'), and the FSM write transactions and bbolt pages a call cost each
// follower (from their /metrics; an order's pages are most of its commit).
// It logs, per call of each kind and process, the CPU, the read and write
// system calls (/proc/<pid>/io: file, pipe and TCP; QUIC's sendmsg and
// recvmsg are not among them) and the context switches, the UDP datagrams
// sent on the machine per call (the agent's QUIC session; anything else
// running counts too) and how many actions the leader sent per stream.
//
// With ORDERS_PERF_DIR set (and perf(1) on PATH, as root), every process
// measured is sampled by `perf record -g` over each kind's calls:
// ORDERS_PERF_DIR/tickets.perf.data and orders.perf.data; the log gives the
// pids, and scripts/perf-calls.py prints the samples per call of each
// function of some of them (say the followers) for orders beside tickets,
// and scripts/perf-split.py their CPU per call by subsystem (agent exchange,
// FSM apply, raft, HTTP API, log, GC, sysmon, scheduler).
// ORDERS_CPU_CALLS sets the calls of each kind (default 120; 120 orders give
// a follower ~800 samples at 3999 Hz, too few to split its cost; 480 ~4,000).
// ORDERS_CPU_ROUNDS splits them into that many alternating rounds (tickets,
// orders, tickets, ...; default 1: all tickets, then all orders): on a
// shared machine whose load drifts over seconds, both kinds then run under
// much the same load, which steadies the order/ticket ratios of a run; the
// figures are over all rounds. It cannot be combined with ORDERS_PERF_DIR
// (one recording of each kind).
//
// ORDERS_AGENT=stop or hold measures the orders without the node's agent
// running on this machine's two cores during their window (in production
// it runs on its hypervisor, not on the coordinators' machine). The order
// command is the same: placed on the same node, which stays ready and
// connected; the same one Raft command (commands/order 1, where the default
// mode's 2 include each action's finish); every action is still sent by the
// leader's dispatcher during the window and checked a success afterwards.
// An order round's window is its HTTP calls until the leader has sent every
// one of the round's actions (hostplane_action_sends_total).
//   - stop: the agent process is stopped (SIGSTOP, framework.Sim.Pause)
//     over the window and continued after it, so it spends no CPU in it;
//     the actions wait in its socket. The coordinators then run with
//     --agent-grace 10s (the rig's is 2s) so that the node stays connected
//     through a slow round's window (a paused agent sends no pings). A
//     leader change inside the window fails the run: the stopped agent
//     cannot reconnect to the new leader, and the orders meanwhile answer
//     503 node_reconnecting.
//   - hold: the agent runs but holds every action that reaches it (the
//     testagent's hold: it answers nothing, not even the accepted progress)
//     until after the window: its receiving of the actions stays in the
//     window, its handling of them does not.
//
// Left out of the window either way: the agent's handling and answering of
// each action, and the leader's receiving and recording of the result (its
// finish command, applied on every coordinator), with, under stop, the
// leader's QUIC work the stopped agent's missing acknowledgements defer.
// That part, from the continue (release) until the leader holds no open
// action, is measured apart and reported as after-*-µs/order (leader, a
// follower's mean, agent) and after-commands/order; resent-actions/order
// counts actions the leader sent again (a session broken by the pause would
// show here; 0 expected), held-actions/order (hold) those the agent held (1:
// all). Without ORDERS_AGENT the benchmark is as it was.
//
// It reports the coordinators' memory too: each one's peak resident set
// (VmHWM) and heap in use at the end, the leader's and the followers'
// largest, and the garbage collections the leader ran over the rounds.
// ORDERS_COORDINATOR_GOGC sets GOGC for the coordinators only (this
// process's clients keep their own), to weigh a GOGC's CPU against its
// memory.
//
//	go test -c ./tests/orders && ./orders.test -test.run '^$' -test.bench OrderCPU -test.benchtime 1x
func BenchmarkOrderCPU(b *testing.B) {
	// 128 servers of 1 vCPU and 256 MiB fit the scripted node; more calls
	// (ORDERS_CPU_CALLS, for a profile with enough samples) scale it up.
	n, clients := 120, 8
	if v, _ := strconv.Atoi(os.Getenv("ORDERS_CPU_CALLS")); v > 0 {
		n = v
	}
	scale := (n + 127) / 128
	if b.N > 1 {
		b.Fatalf("the node holds %d servers: run with -test.benchtime 1x", 128*scale)
	}
	rounds := 1
	if v, _ := strconv.Atoi(os.Getenv("ORDERS_CPU_ROUNDS")); v > 1 {
		rounds = v
	}
	if n%rounds != 0 {
		b.Fatalf("ORDERS_CPU_ROUNDS=%d does not divide the %d calls of each kind", rounds, n)
	}
	if rounds > 1 && os.Getenv("ORDERS_PERF_DIR") != "" {
		b.Fatal("ORDERS_PERF_DIR records all the calls of each kind at once: leave ORDERS_CPU_ROUNDS unset")
	}
	agentMode := os.Getenv("ORDERS_AGENT")
	if agentMode != "" && agentMode != "stop" && agentMode != "hold" {
		b.Fatalf("ORDERS_AGENT=%q: want stop, hold or nothing", agentMode)
	}
	away := agentMode != "" // the agent does not handle actions in the orders' window
	per := n / rounds       // calls of each kind per round
	coordinatorGOGC(b)
	r := newRigFlags(b, func(int) []string {
		if agentMode == "stop" {
			return []string{"--cpu-overcommit", "8", "--agent-grace", "10s"} // the last --agent-grace counts
		}
		return []string{"--cpu-overcommit", "8"}
	}, "-kvm-scale", strconv.Itoa(scale))
	r.credit(int64(b.N*n) * price)
	leader := r.c.WaitLeader(20 * time.Second)
	var pids []int
	for i, p := range r.c.Nodes {
		if i != leader {
			pids = append(pids, p.Pid())
		}
	}
	pids = append([]int{r.c.Nodes[leader].Pid()}, append(pids, r.sim.Pid())...)
	b.Logf("pids: leader, followers, agent: %v", pids)
	// procs are the processes measured: leader, followers, agent, this one
	// (the clients).
	procs := append(slices.Clone(pids), os.Getpid())
	names := []string{"leader", "follower", "follower", "agent", "clients"}
	type cost struct {
		cpu               []time.Duration // per process of procs
		reads, writes     []int64         // read and write syscalls per process of procs
		switches          []int64         // context switches per process of procs
		entries, commands float64         // committed by the leader
		applyWait         float64         // seconds from proposing to applying, summed over the leader's commands
		callTime          time.Duration   // the calls' durations as the clients saw them, summed
		fsmTxs, fsmPages  float64         // the followers' FSM transactions and pages written
		udp               float64         // UDP datagrams sent on the machine (the agent's QUIC session)
		sends, streams    float64         // actions the leader sent to the agent, and the streams they took
	}
	add := func(a, b cost) cost {
		if a.cpu == nil {
			a.cpu, a.reads, a.writes = make([]time.Duration, len(procs)), make([]int64, len(procs)), make([]int64, len(procs))
			a.switches = make([]int64, len(procs))
		}
		for i := range procs {
			a.cpu[i] += b.cpu[i]
			a.reads[i] += b.reads[i]
			a.writes[i] += b.writes[i]
			a.switches[i] += b.switches[i]
		}
		a.entries, a.commands, a.fsmTxs, a.fsmPages, a.udp = a.entries+b.entries, a.commands+b.commands, a.fsmTxs+b.fsmTxs, a.fsmPages+b.fsmPages, a.udp+b.udp
		a.sends, a.streams = a.sends+b.sends, a.streams+b.streams
		a.applyWait, a.callTime = a.applyWait+b.applyWait, a.callTime+b.callTime
		return a
	}
	metrics := r.c.Nodes[leader].MetricsURL()
	var followerMetrics []string
	for i, p := range r.c.Nodes {
		if i != leader {
			followerMetrics = append(followerMetrics, p.MetricsURL())
		}
	}
	sample := func() (cpu []time.Duration, reads, writes, switches []int64) {
		for _, p := range procs {
			c := proccpu.Of(p)
			if p == os.Getpid() {
				c = proccpu.Self() // in µs, not clock ticks
			}
			rd, wr := proccpu.Syscalls(p)
			cpu, reads, writes = append(cpu, c), append(reads, rd), append(writes, wr)
			switches = append(switches, proccpu.Switches(p))
		}
		return
	}
	measure := func(kind string, call func(i int) error, settle func()) (float64, cost) {
		stopPerf := perfRecord(b, kind, procs)
		e0, n0 := raftCounts(b, metrics)
		w0s := applyWait(b, metrics)
		var callNs atomic.Int64
		timed := func(i int) error {
			start := time.Now()
			err := call(i)
			callNs.Add(int64(time.Since(start)))
			return err
		}
		x0, p0 := fsmCounts(b, followerMetrics, e0)
		c0, r0, w0, x0s := sample()
		u0 := udpSent(b)
		s0, st0 := actionSends(b, metrics)
		perSec, err := rate(per, clients, timed)
		if err != nil {
			b.Fatal(err)
		}
		settle()
		c1, r1, w1, x1s := sample()
		u1 := udpSent(b)
		s1, st1 := actionSends(b, metrics)
		e1, n1 := raftCounts(b, metrics)
		x1, p1 := fsmCounts(b, followerMetrics, e1)
		stopPerf()
		c := cost{entries: e1 - e0, commands: n1 - n0, fsmTxs: x1 - x0, fsmPages: p1 - p0, udp: u1 - u0, sends: s1 - s0, streams: st1 - st0,
			applyWait: applyWait(b, metrics) - w0s, callTime: time.Duration(callNs.Load())}
		for i := range procs {
			c.cpu, c.reads, c.writes = append(c.cpu, c1[i]-c0[i]), append(c.reads, r1[i]-r0[i]), append(c.writes, w1[i]-w0[i])
			c.switches = append(c.switches, x1s[i]-x0s[i])
		}
		return perSec, c
	}
	var tRate, oRate float64
	var tc, oc cost
	var after cost // ORDERS_AGENT: from the continue or release until no action is open
	held := 0      // ORDERS_AGENT=hold: the actions the agent held
	resends0 := actionResends(b, metrics)
	// settled waits until the leader holds no open action (its gauge): a
	// status read per action here cost 1.6-1.9 ms of CPU per order over
	// the four processes (120 linearizable GETs, at load ~10), which is
	// this benchmark's, not the order's.
	settled := func() {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			open, ok := framework.Metrics(b, metrics)["hostplane_actions_open"]
			if !ok {
				b.Fatal("the leader's /metrics lacks hostplane_actions_open")
			}
			if open == 0 {
				return
			}
			if time.Now().After(deadline) {
				b.Fatal("provisioning not done after a minute")
			}
		}
	}
	gcs0 := leaderGCs(b, metrics)
	b.ResetTimer()
	ordered := 0            // orders placed so far (each its own hostname)
	var resent atomic.Int64 // calls sent again after a 503 no_leader
	for it := 0; it < b.N*rounds; it++ {
		t, c := measure("tickets", func(i int) error {
			return benchTicket(r.ctx, r.api(i), fmt.Sprintf("cpu-ticket-%d-%d", it, i), &resent)
		}, func() {})
		var acts []string
		var mu sync.Mutex
		settle := settled
		var resume func()
		if away {
			if agentMode == "stop" {
				resume = r.sim.Pause()
			} else {
				r.sim.Hold(b)
			}
			s0, _ := actionSends(b, metrics)
			settle = func() { sentAll(b, metrics, s0+float64(per)) }
		}
		o, d := measure("orders", func(i int) error {
			out, err := benchOrder(r.ctx, r.api(i), ordered+i, &resent)
			mu.Lock()
			acts = append(acts, out.Action.ID)
			mu.Unlock()
			return err
		}, settle)
		if away {
			_, a := measure("after", func(int) error { return nil }, func() {
				if resume != nil {
					resume()
				} else {
					held += r.sim.Release(b)
				}
				settled()
			})
			after = add(after, a)
		}
		for _, id := range acts { // each provisioned, checked once measured
			a, err := r.api(leader).Action(r.ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if a.Status != api.ActionSuccess {
				b.Fatalf("action %s: %s", id, a.Status)
			}
		}
		ordered += per
		tRate, oRate = tRate+t, oRate+o
		tc, oc = add(tc, c), add(oc, d)
	}
	calls := float64(b.N * n)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / calls }
	total := func(c cost) (t float64) {
		for _, d := range c.cpu {
			t += us(d)
		}
		return t
	}
	b.ReportMetric(oRate/float64(b.N*rounds), "orders/s")
	b.ReportMetric(tRate/float64(b.N*rounds), "tickets/s")
	b.ReportMetric(oRate/tRate, "orders/tickets")
	b.ReportMetric(total(oc), "cpu-µs/order")
	b.ReportMetric(total(tc), "cpu-µs/ticket")
	b.ReportMetric(total(oc)/total(tc), "cpu-order/ticket")
	b.ReportMetric(oc.entries/calls, "raft-entries/order")
	b.ReportMetric(tc.entries/calls, "raft-entries/ticket")
	b.ReportMetric(oc.commands/calls, "commands/order")
	b.ReportMetric(tc.commands/calls, "commands/ticket")
	perFollower := calls * float64(len(followerMetrics))
	b.ReportMetric(oc.fsmTxs/perFollower, "follower-fsm-txs/order")
	b.ReportMetric(tc.fsmTxs/perFollower, "follower-fsm-txs/ticket")
	b.ReportMetric(oc.fsmPages/perFollower, "follower-fsm-pages/order")
	b.ReportMetric(tc.fsmPages/perFollower, "follower-fsm-pages/ticket")
	b.ReportMetric(float64(resent.Load()), "resent-after-503")
	// Where a call's time goes: as the clients saw it, and the part from
	// proposing its command to its apply on the leader (per command the
	// leader proposed in the window: by default an order's action's finish
	// command is among them).
	b.ReportMetric(float64(oc.callTime.Microseconds())/1000/calls, "call-ms/order")
	b.ReportMetric(float64(tc.callTime.Microseconds())/1000/calls, "call-ms/ticket")
	b.ReportMetric(oc.applyWait*1000/max(oc.commands, 1), "apply-wait-ms/order-command")
	b.ReportMetric(tc.applyWait*1000/max(tc.commands, 1), "apply-wait-ms/ticket-command")
	// Per process: the leader, the followers' mean, the agent.
	perProc := func(c cost, unit string) {
		b.ReportMetric(us(c.cpu[0]), "leader-"+unit)
		b.ReportMetric((us(c.cpu[1])+us(c.cpu[2]))/2, "follower-"+unit)
		b.ReportMetric(us(c.cpu[3]), "agent-"+unit)
	}
	perProc(oc, "µs/order")
	perProc(tc, "µs/ticket")
	if away {
		perProc(after, "after-µs/order")
		b.ReportMetric(after.commands/calls, "after-commands/order")
		b.ReportMetric((actionResends(b, metrics)-resends0)/calls, "resent-actions/order")
		if agentMode == "hold" {
			b.ReportMetric(float64(held)/calls, "held-actions/order")
		}
	}
	for i, name := range names {
		b.Logf("%-8s (pid %6d) per order: %5.0f µs CPU, %5.1f reads, %5.1f writes, %5.1f switches; per ticket: %5.0f µs, %5.1f reads, %5.1f writes, %5.1f switches",
			name, procs[i], us(oc.cpu[i]), float64(oc.reads[i])/calls, float64(oc.writes[i])/calls, float64(oc.switches[i])/calls,
			us(tc.cpu[i]), float64(tc.reads[i])/calls, float64(tc.writes[i])/calls, float64(tc.switches[i])/calls)
	}
	reportMemory(b, pids[:3], append([]string{metrics}, followerMetrics...), gcs0)
	b.Logf("UDP datagrams sent on the machine per order %.1f, per ticket %.1f; the leader sent %.0f actions on %.0f streams (%.1f a stream)",
		oc.udp/calls, tc.udp/calls, oc.sends, oc.streams, oc.sends/max(oc.streams, 1))
	if away {
		for i, name := range names {
			b.Logf("%-8s after the release, per order: %5.0f µs CPU, %5.1f reads, %5.1f writes, %5.1f switches",
				name, us(after.cpu[i]), float64(after.reads[i])/calls, float64(after.writes[i])/calls, float64(after.switches[i])/calls)
		}
		b.Logf("ORDERS_AGENT=%s: after the window, %.2f commands and %.2f Raft entries per order; the agent held %d actions (hold only)",
			agentMode, after.commands/calls, after.entries/calls, held)
	}
}

// actionResends reads the actions the leader has sent again
// (hostplane_action_sends_total with resend="true").
func actionResends(b *testing.B, metricsURL string) (n float64) {
	for k, v := range framework.Metrics(b, metricsURL) {
		if strings.HasPrefix(k, "hostplane_action_sends_total{") && strings.Contains(k, `resend="true"`) {
			n += v
		}
	}
	return n
}

// sentAll waits (10 s at most) until the leader has sent sends actions to
// agents (hostplane_action_sends_total over its labels).
func sentAll(b *testing.B, metricsURL string, sends float64) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, _ := actionSends(b, metricsURL)
		if n >= sends {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the leader has sent %.0f actions after 10 s; want %.0f", n, sends)
		}
	}
}

// actionSends reads the actions the leader has sent to agents and the
// streams it opened for them (hostplane_action_sends_total over its labels,
// hostplane_action_streams_total).
func actionSends(b *testing.B, metricsURL string) (sends, streams float64) {
	m := framework.Metrics(b, metricsURL)
	for k, v := range m {
		if strings.HasPrefix(k, "hostplane_action_sends_total{") {
			sends += v
		}
	}
	streams, ok := m["hostplane_action_streams_total"]
	if !ok {
		b.Fatal("the leader's /metrics lacks hostplane_action_streams_total")
	}
	return sends, streams
}

// udpSent is the UDP datagrams sent on this machine so far (OutDatagrams of
// /proc/net/snmp): the agent's QUIC session, and anything else running.
func udpSent(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "OutDatagrams" && i < len(f) {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					b.Fatal(err)
				}
				return v
			}
		}
	}
	b.Fatal("/proc/net/snmp has no Udp OutDatagrams")
	return 0
}

// raftCounts reads the leader's applied index and the number of commands it
// has proposed (hostplane_raft_apply_duration_seconds_count) from its
// /metrics listener.
func raftCounts(b *testing.B, metricsURL string) (index, commands float64) {
	m := framework.Metrics(b, metricsURL)
	index, ok1 := m["hostplane_fsm_applied_index"]
	commands, ok2 := m["hostplane_raft_apply_duration_seconds_count"]
	if !ok1 || !ok2 {
		b.Fatalf("the leader's /metrics lacks the applied index or the apply count: %v", m)
	}
	return index, commands
}

// applyWait reads the leader's summed time from proposing a command to
// its apply (hostplane_raft_apply_duration_seconds_sum), in seconds.
func applyWait(b *testing.B, metricsURL string) float64 {
	v, ok := framework.Metrics(b, metricsURL)["hostplane_raft_apply_duration_seconds_sum"]
	if !ok {
		b.Fatal("the leader's /metrics lacks hostplane_raft_apply_duration_seconds_sum")
	}
	return v
}

// fsmCounts waits (10 s at most) until each coordinator whose /metrics
// listener is at urls has applied index, then sums their FSM write
// transactions and the pages those wrote (hostplane_fsm_transactions_total,
// hostplane_fsm_pages_written_total).
func fsmCounts(b *testing.B, urls []string, index float64) (txs, pages float64) {
	for _, u := range urls {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			m := framework.Metrics(b, u)
			x, ok1 := m["hostplane_fsm_transactions_total"]
			p, ok2 := m["hostplane_fsm_pages_written_total"]
			if !ok1 || !ok2 {
				b.Fatalf("%s/metrics lacks the FSM's transaction and page counts", u)
			}
			if m["hostplane_fsm_applied_index"] >= index {
				txs, pages = txs+x, pages+p
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s has not applied index %v after 10 s", u, index)
			}
		}
	}
	return txs, pages
}

// perfRecord starts `perf record -g` on the processes when ORDERS_PERF_DIR
// is set, into ORDERS_PERF_DIR/<kind>.perf.data; stop ends it.
func perfRecord(b *testing.B, kind string, pids []int) (stop func()) {
	dir := os.Getenv("ORDERS_PERF_DIR")
	if dir == "" {
		return func() {}
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	cmd := exec.Command("perf", "record", "-q", "-F", "3999", "-g", "-p", strings.Join(ps, ","), "-o", filepath.Join(dir, kind+".perf.data"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal("perf:", err)
	}
	time.Sleep(500 * time.Millisecond) // perf attaches
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait() // perf ends on the signal, its data written
	}
}

// TestBenchCallsResendAfterNoLeader: the benchmarks' order and ticket calls
// send an Idempotency-Key and, answered 503 no_leader (an election) or 409
// idempotency_key_in_flight, send the same request again with the same key,
// counting each resend; any other refusal (a 503 of another code, a 400) is
// returned at once.
func TestBenchCallsResendAfterNoLeader(t *testing.T) {
	noLeaderBody := `{"statusCode":503,"error":"Service Unavailable","message":"the cluster is electing a leader; retry shortly","code":"no_leader"}`
	for _, tc := range []struct {
		name    string
		answers []string // status and body of each answer in turn; the last repeats
		sends   int      // requests the call makes
		fails   bool
	}{
		{"no_leader twice then created", []string{"503 " + noLeaderBody, "503 " + noLeaderBody, "201 {}"}, 3, false},
		{"no_leader, in flight, created", []string{"503 " + noLeaderBody, `409 {"statusCode":409,"error":"Conflict","message":"a request with this Idempotency-Key is still being processed","code":"idempotency_key_in_flight"}`, "201 {}"}, 3, false},
		{"created at once", []string{"201 {}"}, 1, false},
		{"503 of another code", []string{`503 {"statusCode":503,"error":"Service Unavailable","message":"draining","code":"draining"}`}, 1, true},
		{"bad request", []string{`400 {"statusCode":400,"error":"Bad Request","message":"no","code":"invalid_field"}`}, 1, true},
	} {
		for _, kind := range []string{"order", "ticket"} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				var mu sync.Mutex
				var keys []string
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					mu.Lock()
					keys = append(keys, req.Header.Get("Idempotency-Key"))
					a := tc.answers[min(len(keys), len(tc.answers))-1]
					mu.Unlock()
					st, body, _ := strings.Cut(a, " ")
					code, _ := strconv.Atoi(st)
					w.Header().Set("Content-Type", "application/json")
					if code == http.StatusServiceUnavailable {
						w.Header().Set("Retry-After", "1") // as the coordinator sends with its 503s (httpapi wrap, readGate)
					}
					w.WriteHeader(code)
					_, _ = io.WriteString(w, body)
				}))
				defer srv.Close()
				c := client.New(srv.URL, "hp_test")
				var resent atomic.Int64
				var err error
				if kind == "order" {
					_, err = benchOrder(context.Background(), c, 7, &resent)
				} else {
					err = benchTicket(context.Background(), c, "bench-ticket-7", &resent)
				}
				mu.Lock()
				defer mu.Unlock()
				if (err != nil) != tc.fails || len(keys) != tc.sends || resent.Load() != int64(tc.sends-1) {
					t.Fatalf("err %v, %d requests, %d counted resent; want failure %v, %d requests, %d resent", err, len(keys), resent.Load(), tc.fails, tc.sends, tc.sends-1)
				}
				for _, k := range keys {
					if k == "" || k != keys[0] {
						t.Fatalf("Idempotency-Keys sent: %q; want one key, the same on every send", keys)
					}
				}
			})
		}
	}
}
