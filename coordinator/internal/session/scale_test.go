package session_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

func envDur(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestAgentSessionScale holds many simulated agents (one simulator process,
// real QUIC on loopback, mutual TLS) on a 3-node cluster and reports memory per
// idle session on the leader, CPU per ping, and the time for all of them to
// reconnect after the leader is killed. Set HOSTPLANE_SESSION_SCALE=5000 to run.
func TestAgentSessionScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HOSTPLANE_SESSION_SCALE"))
	if n <= 0 {
		t.Skip("set HOSTPLANE_SESSION_SCALE=<agents> to run the session scale benchmark")
	}
	ping := 5 * time.Second
	if v, err := time.ParseDuration(os.Getenv("HOSTPLANE_SESSION_PING")); err == nil {
		ping = v
	}
	buildSim(t)
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		cfg.Nodes.ListenAddr = freeUDP(t)
		cfg.Nodes.PingInterval = ping
		cfg.Nodes.Grace = 6 * ping
		// Two cores run three coordinators and every simulated agent: the
		// test cluster's 500 ms Raft timeouts would make the leader flap.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 2*time.Second, 2*time.Second
	})
	ld := c.WaitLeader(10 * time.Second)
	ctx := context.Background()

	// Tokens, made concurrently through the admin API.
	start := time.Now()
	tokens := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	admin := c.Admin(ld)
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := range next {
				tok, err := admin.CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 3600})
				if err != nil {
					t.Error(err)
					return
				}
				tokens[i] = tok.Token
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d join tokens in %s", n, time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := sessionAddrs(c, ld)
	for i := range c.Nodes {
		if i != ld {
			addrs += "," + sessionAddrs(c, i)
		}
	}
	// Baseline CPU of the three idle coordinators (Raft heartbeats, timers).
	window := 3 * ping
	cpuIdle := proccpu.Self()
	time.Sleep(window)
	cpuIdle = proccpu.Self() - cpuIdle
	before := heapAndStacks()
	gBefore := runtime.NumGoroutine()
	start = time.Now()
	ramp := time.Duration(n) * time.Second / 100 // a fleet does not boot in the same millisecond
	if v, err := time.ParseDuration(os.Getenv("HOSTPLANE_SESSION_RAMP")); err == nil {
		ramp = v
	}
	p := startSim(t, "-ramp", ramp.String(), "-coordinators", addrs, "-tokens-file", tf, "-node-id", "sim", "-dir", filepath.Join(dir, "nodes"), "-n", strconv.Itoa(n),
		"-quiet", "-backoff-min", "200ms", "-backoff-max", "5s", "-dial-timeout", envDur("HOSTPLANE_SESSION_DIAL", 10*time.Second).String(), "-log-level", os.Getenv("HOSTPLANE_SESSION_SIM_LOG"))
	if os.Getenv("HOSTPLANE_SESSION_SIM_LOG") != "" {
		defer func() { t.Log(p.Stderr.String()) }()
	}
	waitConnected := func(what string, want int, timeout time.Duration) []time.Duration {
		var at []time.Duration
		t0 := time.Now()
		seen := map[string]bool{}
		deadline := time.After(timeout)
		progress := time.NewTicker(10 * time.Second)
		defer progress.Stop()
		for len(seen) < want {
			select {
			case <-progress.C:
				t.Logf("%s: %d of %d connected after %s", what, len(seen), want, time.Since(t0).Round(time.Second))
			case e := <-p.Events:
				if e.Kind == "connected" && !seen[e.Node] {
					seen[e.Node] = true
					at = append(at, time.UnixMilli(e.T).Sub(t0))
				}
			case <-p.Exited():
				t.Fatalf("simulator exited: %s", p.Stderr.String())
			case <-deadline:
				t.Fatalf("%s: %d of %d connected after %s", what, len(seen), want, timeout)
			}
		}
		return at
	}
	pct := func(at []time.Duration) string {
		slices.Sort(at)
		q := func(f float64) time.Duration { return at[int(f*float64(len(at)-1))].Round(time.Millisecond) }
		return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s", q(0.5), q(0.9), q(0.99), q(1))
	}
	at0 := waitConnected("enrol", n, ramp+2*time.Minute)
	t.Logf("%d agents enrolled and connected in %s, started over %s (%s)", n, time.Since(start).Round(time.Millisecond), ramp, pct(at0))
	// The leader may have changed under the enrolment load: measure on the
	// one that holds the sessions now.
	var srv *session.Server
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if l := c.Leader(); l >= 0 {
			if ld != l {
				t.Logf("leadership moved from n%d to n%d during enrolment", ld+1, l+1)
				ld = l
			}
			srv = c.Nodes[ld].Server.AgentSessions()
			if len(srv.Sessions()) >= n {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader holds %d of %d sessions", len(srv.Sessions()), n)
		}
	}

	// Idle: memory per session and CPU per ping on this process (all three
	// coordinators; only the leader holds sessions).
	time.Sleep(2 * ping)
	after := heapAndStacks()
	t.Logf("leader holds %d sessions: heap+stacks %.1f MiB more than before → %.1f KiB per idle session; goroutines +%d (%.1f per session)",
		len(srv.Sessions()), float64(after-before)/(1<<20), float64(after-before)/float64(n)/1024,
		runtime.NumGoroutine()-gBefore, float64(runtime.NumGoroutine()-gBefore)/float64(n))
	cpu0, pings0, idx0 := proccpu.Self(), srv.Pings(), c.Nodes[ld].Server.Node.FSM.AppliedIndex()
	time.Sleep(window)
	cpu, pings := proccpu.Self()-cpu0, srv.Pings()-pings0
	extra := cpu - cpuIdle
	t.Logf("pings: %d in %s (%.0f/s); coordinator process CPU %s (idle baseline %s) → %.1f µs per ping above the baseline, %.1f%% of one core; raft entries meanwhile: %d",
		pings, window, float64(pings)/window.Seconds(), cpu.Round(time.Millisecond), cpuIdle.Round(time.Millisecond),
		float64(extra.Microseconds())/float64(max(pings, 1)), 100*extra.Seconds()/window.Seconds(), c.Nodes[ld].Server.Node.FSM.AppliedIndex()-idx0)

	// Leader killed: every agent reconnects to the new leader.
	start = time.Now()
	c.Kill(ld)
	at := waitConnected("reconnect", n, 5*time.Minute)
	nl := c.WaitLeader(10 * time.Second)
	nsrv := c.Nodes[nl].Server.AgentSessions()
	t.Logf("all %d agents reconnected %s after the leader was killed (new leader n%d holds %d sessions); per agent %s",
		n, time.Since(start).Round(time.Millisecond), nl+1, len(nsrv.Sessions()), pct(at))

	// Memory of the sessions alone: stop the agents cleanly (each closes its
	// connection) and measure what the new leader frees.
	time.Sleep(2 * ping)
	held := heapAndStacks()
	gHeld := runtime.NumGoroutine()
	p.Stop()
	for deadline := time.Now().Add(time.Minute); len(nsrv.Sessions()) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	freed := heapAndStacks()
	t.Logf("agents stopped: %d sessions left; heap+stacks freed %.1f MiB → %.1f KiB per idle session; goroutines −%d (%.1f per session)",
		len(nsrv.Sessions()), (float64(held)-float64(freed))/(1<<20), (float64(held)-float64(freed))/float64(n)/1024,
		gHeld-runtime.NumGoroutine(), float64(gHeld-runtime.NumGoroutine())/float64(n))
}
