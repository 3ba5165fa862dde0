package session_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/tests/framework"
)

// BenchmarkActionExchange is the provisioning exchange of an order alone:
// the coordinator's session server sends echo actions (an ActionAssign, a
// progress and a result back, as the scripted node of the orders
// benchmarks answers a create) to the real agent session of the testagent
// process, in bursts of 4 calls every 10 ms (about what the dispatcher
// sends while orders arrive at ~400/s: it gathers new actions for 10 ms).
// It reports the CPU per action of the agent process and of this process
// (the coordinator's end, with the benchmark's own callers).
//
// With ACTIONS_PERF set (and perf(1) on PATH, as root), perf runs on the
// agent over the calls with those arguments and -p <agent pid>: e.g.
// ACTIONS_PERF="record -g -o agent.data" or ACTIONS_PERF="stat -e
// syscalls:sys_enter_sendmsg" (its figures are for the whole run); with
// ACTIONS_PERF_SELF set too, on this process instead.
//
//	go test ./coordinator/internal/session -run '^$' -bench ActionExchange -benchtime 2000x
func BenchmarkActionExchange(b *testing.B) {
	b.Run("stream-per-action", func(b *testing.B) { benchExchange(b, false) })
	b.Run("stream-per-burst", func(b *testing.B) { benchExchange(b, true) })
}

// benchExchange runs BenchmarkActionExchange's calls, each burst on one
// stream (CallEach) with batch.
func benchExchange(b *testing.B, batch bool) {
	f := newCallsFixture(b)
	a := f.agentFrom(b, framework.Binary(b, framework.PkgTestAgent, framework.BuildOptions{}), "bench-1", "-inventory-interval", "1h")
	burst, gap := 4, 10*time.Millisecond
	if n, _ := strconv.Atoi(os.Getenv("ACTIONS_BURST")); n > 0 {
		burst = n
	}
	ctx := context.Background()
	// Warm up the session (stream credit, buffers).
	for i := 0; i < 20; i++ {
		if err := callEcho(ctx, f.srv, "bench-1", fmt.Sprintf("warm-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	var perf *exec.Cmd
	if args := os.Getenv("ACTIONS_PERF"); args != "" {
		pid := a.Pid()
		if os.Getenv("ACTIONS_PERF_SELF") != "" {
			pid = os.Getpid() // the coordinator's end instead
		}
		perf = exec.Command("perf", append(strings.Fields(args), "-p", strconv.Itoa(pid))...)
		perf.Stderr = os.Stderr
		if err := perf.Start(); err != nil {
			b.Fatal("perf:", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	agent0, self0 := proccpu.Of(a.Pid()), proccpu.Self()
	b.ResetTimer()
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < b.N; i += burst {
		if batch {
			if err := callEchoEach(ctx, f.srv, "bench-1", i, min(i+burst, b.N)); err != nil {
				b.Fatal(err)
			}
			time.Sleep(gap)
			continue
		}
		var wg sync.WaitGroup
		for j := i; j < min(i+burst, b.N); j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := callEcho(ctx, f.srv, "bench-1", fmt.Sprintf("act-%d", j)); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		time.Sleep(gap)
	}
	b.StopTimer()
	agent, self := proccpu.Of(a.Pid())-agent0, proccpu.Self()-self0
	if perf != nil {
		_ = perf.Process.Signal(os.Interrupt)
		_ = perf.Wait()
	}
	b.ReportMetric(float64(agent.Microseconds())/float64(b.N), "agent-cpu-µs/action")
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "coordinator-cpu-µs/action")
}
