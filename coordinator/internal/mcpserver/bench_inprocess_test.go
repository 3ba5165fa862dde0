package mcpserver_test

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkServerCostInProcess measures what one call costs the coordinator
// alone, through its public handler without a network or a client: rest is
// GET /v1/tickets/{id}; mcp the get_ticket tools/call POST on an initialized
// /mcp session (which runs that same request in-process), answered by the
// fast path; mcp_sdkpath the same POST with the fast path off (the SDK's
// transport); ping a JSON-RPC ping on the session, the SDK's floor for one
// message. Each reports the process's CPU time per call (cpu_µs/call): the
// coordinator's, the client being only the request's construction.
func BenchmarkServerCostInProcess(b *testing.B) {
	r := newMCPRig(b, "bench-inproc@example.com", api.AllScopes, testcluster.WithRateLimit(100_000_000))
	h, key, post, sess := r.h, r.key, r.post, r.sess
	tk, err := r.c.Client(0, key).CreateTicket(context.Background(), api.TicketCreateRequest{Subject: "b", Message: "m"}, "")
	if err != nil {
		b.Fatal(err)
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"` + tk.ID + `"}}}`
	rest := func(b *testing.B) {
		req := httptest.NewRequest("GET", "/v1/tickets/"+tk.ID, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
	tool := func(b *testing.B) {
		w := post(sess, call)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "structuredContent") {
			b.Fatal(w.Code, w.Body.String())
		}
	}
	calls(b, "rest", rest)
	calls(b, "mcp", tool)
	// interleaved: blocks of 50 rest and 50 mcp calls alternate (b.N pairs
	// of blocks) on one locked OS thread, each block timed by the thread's
	// own CPU clock: the work each call does on its request's goroutine,
	// both kinds under the same load of the machine (not counted: work
	// handed to other goroutines, the read barrier's and the garbage
	// collector's background marking).
	b.Run("interleaved", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		const block = 50
		var cpu [2]time.Duration
		for i := 0; i < b.N; i++ {
			for k, f := range []func(*testing.B){rest, tool} {
				t0 := threadCPU(b)
				for j := 0; j < block; j++ {
					f(b)
				}
				cpu[k] += threadCPU(b) - t0
			}
		}
		n := float64(b.N * block)
		b.ReportMetric(cpu[0].Seconds()*1e6/n, "rest_thread_cpu_µs/call")
		b.ReportMetric(cpu[1].Seconds()*1e6/n, "mcp_thread_cpu_µs/call")
		b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "mcp/rest_thread_cpu")
	})
	fast := mcpserver.SetFastCalls(false)
	calls(b, "mcp_sdkpath", tool)
	mcpserver.SetFastCalls(fast)
	calls(b, "ping", func(b *testing.B) {
		w := post(sess, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	})
}

// calls runs call b.N times as the sub-benchmark name, reporting its
// allocations and the process's CPU time per call.
func calls(b *testing.B, name string, call func(*testing.B)) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, proccpu.Self())
		for i := 0; i < b.N; i++ {
			call(b)
		}
	})
}

// reportCPU reports the process's CPU time per iteration since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((proccpu.Self()-cpu0).Microseconds())/float64(b.N), "cpu_µs/call")
}

// threadCPU is the CPU time (user and system) of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is Linux's RUSAGE_THREAD.
const rusageThread = 1
