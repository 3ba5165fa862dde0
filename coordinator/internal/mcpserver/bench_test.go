package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkToolCallVsREST compares the get_ticket tool with the same REST
// call (GET /v1/tickets/{id}) on one coordinator over loopback, in the same
// run, the kinds alternating:
//
//   - rest: GET /v1/tickets/{id} with the key;
//   - mcp: the tools/call JSON-RPC POST to /mcp on an initialized session,
//     which the fast path answers;
//   - mcp_sdkpath: the same POSTs with the fast path off (the SDK's
//     transport answers them, as before the fast path);
//   - sdk: the Go SDK's client CallTool (client and server in this process,
//     so its client's JSON-RPC work is counted too).
//
// rest, mcp and mcp_sdkpath are sent by the same plain client in a child
// process (bench_client_test.go): one request from prebuilt headers and
// body, the whole answer read and compared byte for byte with the answer
// checked once at the start (the ticket, and for a tool call its text and
// structured content equal to the REST body). The coordinator's CPU time per
// call (this process: server_cpu) and the client's (the child: client_cpu)
// are measured apart; the machine is still shared by both.
//
// Each iteration (a round) runs benchCalls calls of each kind from one
// client (p50 latency) and from benchWorkers concurrent clients
// (throughput), rest and mcp twice, in the order rest, mcp, mcp, rest, after
// a garbage collection (see the loop). It reports
// them and the ratios against REST (aim: mcp throughput ratio ≥ 0.8), and
// the CPU time per call of each kind in the concurrent phases: mcp/rest_cpu
// is the ratio of client plus server CPU (REST's over the kind's; for sdk the
// process's), mcp/rest_server_cpu that of the coordinator's alone (the
// throughput ratio a saturated coordinator allows).
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
	// answer sends call once in this process: its body, checked by check.
	answer := func(call benchCall, check func([]byte) error) []byte {
		req, err := http.NewRequest(call.Method, call.URL, bytes.NewReader(call.Body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = call.Header.Clone()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s %s: %d %s", call.Method, call.URL, resp.StatusCode, body)
		}
		if err := check(body); err != nil {
			b.Fatalf("%s %s: %v\n%s", call.Method, call.URL, err, body)
		}
		return body
	}
	rest := benchCall{Method: "GET", URL: c.URL(0) + "/v1/tickets/" + tk.ID, Header: http.Header{"Authorization": {"Bearer " + key}}}
	rest.Want = answer(rest, func(body []byte) error {
		var got api.Ticket
		if err := json.Unmarshal(body, &got); err != nil || got.ID != tk.ID || got.Subject != "bench" {
			return fmt.Errorf("not the ticket (%v)", err)
		}
		return nil
	})

	// Raw sessions: initialize, initialized, then tools/call POSTs.
	callBody := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"` + tk.ID + `"}}}`)
	raw := make([]benchCall, benchWorkers)
	for i := range raw {
		resp, err := hc.Do(mcpserver.RPCRequest(c.URL(0)+"/mcp", key, "", mcpserver.InitializeBody))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sess := resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode != 200 || sess == "" {
			b.Fatalf("initialize: %d, session %q", resp.StatusCode, sess)
		}
		resp, err = hc.Do(mcpserver.RPCRequest(c.URL(0)+"/mcp", key, sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("initialized: %v %v", err, resp)
		}
		resp.Body.Close()
		req := mcpserver.RPCRequest(c.URL(0)+"/mcp", key, sess, string(callBody))
		raw[i] = benchCall{Method: "POST", URL: req.URL.String(), Header: req.Header, Body: callBody}
		raw[i].Want = answer(raw[i], func(body []byte) error { return checkToolAnswer(body, rest.Want) })
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
		if len(r.Content) != 1 {
			return fmt.Errorf("tool answer %v, want the REST body", r.Content)
		}
		if tc, ok := r.Content[0].(*mcp.TextContent); !ok || tc.Text != string(bytes.TrimSpace(rest.Want)) {
			return fmt.Errorf("tool answer %v, want the REST body", r.Content)
		}
		return nil
	}

	type kind struct {
		name      string
		calls     []benchCall       // sent by the child process
		call      func(w int) error // else called here
		sdkPath   bool              // fast path off
		lat       []time.Duration   // sequential calls
		n         int               // concurrent calls
		took      time.Duration     // their time
		serverCPU time.Duration     // this process's CPU time during them
		clientCPU time.Duration     // the child's
		rounds    []float64         // each iteration's concurrent throughput
	}
	kinds := []*kind{{name: "rest", calls: []benchCall{rest}}, {name: "mcp", calls: raw},
		{name: "mcp_sdkpath", calls: raw, sdkPath: true}, {name: "sdk", call: sdk}}
	defer mcpserver.SetFastCalls(true)
	client := startBenchClient(b)
	// phase runs benchCalls calls of k from workers clients; it returns the
	// elapsed time, the CPU time of this process and of the child (0 when
	// the kind runs here), and each call's latency.
	phase := func(k *kind, workers int) (took, server, cl time.Duration, lat []time.Duration) {
		mcpserver.SetFastCalls(!k.sdkPath)
		if k.calls != nil {
			res, server := client.run(b, benchPhase{Calls: k.calls, Workers: workers, N: benchCalls})
			return res.Took, server, res.CPU, res.Latencies
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		cpu0 := proccpu.Self()
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				local := make([]time.Duration, 0, benchCalls/workers)
				for i := 0; i < benchCalls/workers; i++ {
					t0 := time.Now()
					if err := k.call(w); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}(w)
		}
		wg.Wait()
		return time.Since(start), proccpu.Self() - cpu0, 0, lat
	}
	for _, k := range kinds { // warm connections, sessions, the key cache
		phase(k, benchWorkers)
	}
	// Each iteration is a round: a collection first (the previous round's
	// garbage, the SDK kinds' above all, is no phase's cost), then rest and
	// mcp in the order rest, mcp, mcp, rest (sequential phases, then
	// concurrent ones), so that neither always runs first, or always after
	// the other, within a round; the SDK kinds run last. A round's
	// throughput of a kind is its two concurrent phases' calls over their
	// time.
	pair, others := []*kind{kinds[0], kinds[1], kinds[1], kinds[0]}, kinds[2:]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		for _, ks := range [][]*kind{pair, others} {
			for _, k := range ks {
				_, _, _, lat := phase(k, 1)
				k.lat = append(k.lat, lat...)
			}
			took := make(map[*kind]time.Duration)
			n := make(map[*kind]int)
			for _, k := range ks {
				d, server, cl, lat := phase(k, benchWorkers)
				k.serverCPU += server
				k.clientCPU += cl
				k.took += d
				k.n += len(lat)
				took[k] += d
				n[k] += len(lat)
			}
			for _, k := range kinds {
				if took[k] > 0 {
					k.rounds = append(k.rounds, float64(n[k])/took[k].Seconds())
				}
			}
		}
		if os.Getenv("HP_MCPBENCH_ROUNDS") != "" {
			b.Logf("round %d: rest %.0f calls/s, mcp %.0f (%.3f)", i, kinds[0].rounds[i], kinds[1].rounds[i], kinds[1].rounds[i]/kinds[0].rounds[i])
		}
	}
	b.StopTimer()
	restP50, restTput := p50(kinds[0].lat), float64(kinds[0].n)/kinds[0].took.Seconds()
	perCall := func(d time.Duration, n int) float64 { return d.Seconds() / float64(n) }
	restServer, restAll := perCall(kinds[0].serverCPU, kinds[0].n), perCall(kinds[0].serverCPU+kinds[0].clientCPU, kinds[0].n)
	for _, k := range kinds {
		kp50, tput := p50(k.lat), float64(k.n)/k.took.Seconds()
		server, all := perCall(k.serverCPU, k.n), perCall(k.serverCPU+k.clientCPU, k.n)
		b.ReportMetric(float64(kp50.Microseconds()), k.name+"_p50_µs")
		b.ReportMetric(tput, k.name+"_calls/s")
		if k.calls != nil {
			b.ReportMetric(server*1e6, k.name+"_server_cpu_µs/call")
			b.ReportMetric(perCall(k.clientCPU, k.n)*1e6, k.name+"_client_cpu_µs/call")
		} else {
			b.ReportMetric(all*1e6, k.name+"_cpu_µs/call") // client and server, this process
		}
		if k.name == "rest" {
			continue
		}
		b.ReportMetric(tput/restTput, k.name+"/rest_throughput")
		b.ReportMetric(float64(restP50)/float64(kp50), "rest/"+k.name+"_p50")
		// CPU per call against REST's: the throughput ratio a saturated
		// CPU allows, steadier than the wall clock on a machine other
		// processes share.
		b.ReportMetric(restAll/all, k.name+"/rest_cpu")
		if k.calls != nil {
			b.ReportMetric(restServer/server, k.name+"/rest_server_cpu")
		}
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

// checkToolAnswer: body is the answer to a get_ticket tools/call (an SSE
// message event or a JSON body) whose result holds the REST body restBody as
// its text and its structured content, and no error.
func checkToolAnswer(body, restBody []byte) error {
	data := body
	if d, ok := bytes.CutPrefix(body, []byte("event: message\ndata: ")); ok {
		data = bytes.TrimSuffix(d, []byte("\n\n"))
	}
	var msg struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int    `json:"id"`
		Result  struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			StructuredContent json.RawMessage `json:"structuredContent"`
			IsError           bool            `json:"isError"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return err
	}
	r := msg.Result
	var compact bytes.Buffer
	if err := json.Compact(&compact, restBody); err != nil {
		return err
	}
	if msg.JSONRPC != "2.0" || msg.ID != 2 || r.IsError || len(r.Content) != 1 || r.Content[0].Type != "text" ||
		r.Content[0].Text != string(bytes.TrimSpace(restBody)) || !bytes.Equal(r.StructuredContent, compact.Bytes()) {
		return fmt.Errorf("not the REST body as text and structured content")
	}
	return nil
}

func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
