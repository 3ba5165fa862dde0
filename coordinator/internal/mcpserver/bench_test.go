package mcpserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkToolCallVsREST compares the get_ticket tool with the same REST
// call (GET /v1/tickets/{id}) on one coordinator over loopback, in the same
// run, the kinds alternating:
//
//   - rest: a keep-alive net/http client;
//   - mcp: a tools/call JSON-RPC POST to /mcp on an initialized session,
//     sent and read with the same plain net/http client (what the server
//     costs, the client being as cheap as REST's), which the fast path
//     answers;
//   - mcp_sdkpath: the same POSTs with the fast path off (the SDK's
//     transport answers them, as before the fast path);
//   - sdk: the Go SDK's client CallTool (client and server in this process,
//     so its client's JSON-RPC work is counted too).
//
// Each iteration runs benchCalls calls of each kind from one client (p50
// latency) and from benchWorkers concurrent clients (throughput). It reports
// them and the ratios against REST (aim: mcp throughput ratio ≥ 0.8), and
// the CPU time the process spent per call of each kind in the concurrent
// phases.
func BenchmarkToolCallVsREST(b *testing.B) {
	const benchWorkers, benchCalls = 8, 400
	c := testcluster.New(b, 1, testcluster.WithRateLimit(100_000_000))
	_, key := c.NewAccount("bench-mcp@example.com", api.AllScopes...)
	ctx := context.Background()
	tk, err := c.Client(0, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "bench", Message: "benchmark ticket"}, "")
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers * 2}}
	do := func(req *http.Request, want string) error {
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(want)) {
			return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
		}
		return nil
	}
	rest := func(int) error {
		req, _ := http.NewRequest("GET", c.URL(0)+"/v1/tickets/"+tk.ID, nil)
		return do(req, tk.ID)
	}

	// Raw sessions: initialize, initialized, then tools/call POSTs.
	rawSessions := make([]string, benchWorkers)
	for i := range rawSessions {
		resp, err := hc.Do(mcpserver.RPCRequest(c.URL(0)+"/mcp", key, "", mcpserver.InitializeBody))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rawSessions[i] = resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode != 200 || rawSessions[i] == "" {
			b.Fatalf("initialize: %d, session %q", resp.StatusCode, rawSessions[i])
		}
		resp, err = hc.Do(mcpserver.RPCRequest(c.URL(0)+"/mcp", key, rawSessions[i], `{"jsonrpc":"2.0","method":"notifications/initialized"}`))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("initialized: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	callBody := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"` + tk.ID + `"}}}`
	raw := func(w int) error {
		return do(mcpserver.RPCRequest(c.URL(0)+"/mcp", "", rawSessions[w], callBody), `"structuredContent":{"id":"`+tk.ID)
	}

	sessions := make([]*mcp.ClientSession, benchWorkers)
	for i := range sessions {
		tr := &mcp.StreamableClientTransport{Endpoint: c.URL(0) + "/mcp", DisableStandaloneSSE: true,
			HTTPClient: &http.Client{Transport: bearer{key: key, next: hc.Transport}}}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx, tr, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		sessions[i] = cs
	}
	args := map[string]any{"id": tk.ID}
	sdk := func(w int) error {
		r, err := sessions[w].CallTool(ctx, &mcp.CallToolParams{Name: "get_ticket", Arguments: args})
		if err != nil {
			return err
		}
		if r.IsError {
			return fmt.Errorf("tool error: %v", r.Content)
		}
		return nil
	}

	type kind struct {
		name    string
		call    func(w int) error
		sdkPath bool            // fast path off
		lat     []time.Duration // sequential calls
		n       int             // concurrent calls
		took    time.Duration   // their time
		cpu     time.Duration   // the process's CPU time during them
		rounds  []float64       // each iteration's concurrent throughput
	}
	kinds := []*kind{{name: "rest", call: rest}, {name: "mcp", call: raw}, {name: "mcp_sdkpath", call: raw, sdkPath: true},
		{name: "sdk", call: sdk}}
	defer mcpserver.SetFastCalls(true)
	// phase runs benchCalls calls from workers clients; it returns the
	// elapsed time and appends each call's latency to lat.
	phase := func(workers int, lat *[]time.Duration, call func(w int) error) time.Duration {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				local := make([]time.Duration, 0, benchCalls/workers)
				for i := 0; i < benchCalls/workers; i++ {
					t0 := time.Now()
					if err := call(w); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				*lat = append(*lat, local...)
				mu.Unlock()
			}(w)
		}
		wg.Wait()
		return time.Since(start)
	}
	for _, k := range kinds { // warm connections, sessions, the key cache
		mcpserver.SetFastCalls(!k.sdkPath)
		phase(benchWorkers, new([]time.Duration), k.call)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, k := range kinds {
			mcpserver.SetFastCalls(!k.sdkPath)
			phase(1, &k.lat, k.call)
		}
		for _, k := range kinds {
			mcpserver.SetFastCalls(!k.sdkPath)
			var lat []time.Duration
			cpu0 := processCPU(b)
			took := phase(benchWorkers, &lat, k.call)
			k.cpu += processCPU(b) - cpu0
			k.took += took
			k.n += len(lat)
			k.rounds = append(k.rounds, float64(len(lat))/took.Seconds())
		}
	}
	b.StopTimer()
	restP50, restTput := p50(kinds[0].lat), float64(kinds[0].n)/kinds[0].took.Seconds()
	restCPU := kinds[0].cpu.Seconds() / float64(kinds[0].n)
	for _, k := range kinds {
		kp50, tput, cpu := p50(k.lat), float64(k.n)/k.took.Seconds(), k.cpu.Seconds()/float64(k.n)
		b.ReportMetric(float64(kp50.Microseconds()), k.name+"_p50_µs")
		b.ReportMetric(tput, k.name+"_calls/s")
		b.ReportMetric(cpu*1e6, k.name+"_cpu_µs/call")
		if k.name != "rest" {
			b.ReportMetric(tput/restTput, k.name+"/rest_throughput")
			b.ReportMetric(float64(restP50)/float64(kp50), "rest/"+k.name+"_p50")
			// CPU per call (client and server, this process) against REST's:
			// the throughput ratio a saturated CPU allows, steadier than
			// the wall clock on a machine other processes share.
			b.ReportMetric(restCPU/cpu, k.name+"/rest_cpu")
			// The median of the iterations' ratios (each iteration's phases
			// run one after the other): less moved by a load that changes
			// from one second to the next than the ratio of the sums.
			ratios := make([]float64, len(k.rounds))
			for i := range k.rounds {
				ratios[i] = k.rounds[i] / kinds[0].rounds[i]
			}
			sort.Float64s(ratios)
			b.ReportMetric(ratios[len(ratios)/2], k.name+"/rest_throughput_median")
		}
	}
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
