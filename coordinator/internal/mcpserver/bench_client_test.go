package mcpserver_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
)

// The raw kinds of BenchmarkToolCallVsREST run their clients in a child
// process (this test binary again, benchClientEnv set), so that the
// coordinator's CPU time per call (this process) and the client's (the
// child) are measured apart. The two processes still share the machine.

const benchClientEnv = "HP_MCPBENCH_CLIENT"

// benchCall is one prebuilt HTTP request of a client and the exact answer
// body it must get (status 200).
type benchCall struct {
	Method string      `json:"method"`
	URL    string      `json:"url"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body,omitempty"`
	Want   []byte      `json:"want"`
}

// benchPhase asks the child for calls calls (in total) from workers
// concurrent clients, worker w sending Calls[w % len(Calls)] each time.
type benchPhase struct {
	Calls   []benchCall `json:"calls"`
	Workers int         `json:"workers"`
	N       int         `json:"n"`
}

// benchResult is the child's account of a phase.
type benchResult struct {
	Latencies []time.Duration `json:"latencies"`
	Took      time.Duration   `json:"took"`
	CPU       time.Duration   `json:"cpu"` // the child's CPU time during the phase
	Err       string          `json:"err,omitempty"`
}

func TestMain(m *testing.M) {
	if os.Getenv(benchClientEnv) != "" {
		os.Exit(benchClientMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// benchClientMain serves phases read from in, one JSON object a line, until
// in ends.
func benchClientMain(in io.Reader, out io.Writer) int {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var p benchPhase
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			fmt.Fprintln(os.Stderr, "bench client:", err)
			return 2
		}
		if err := enc.Encode(runBenchPhase(hc, p)); err != nil {
			return 2
		}
	}
	return 0
}

// runBenchPhase sends the phase's calls. Each call is what a plain client of
// the API does: one request built from the prebuilt method, URL, headers and
// body, the whole answer read and compared with the expected bytes.
func runBenchPhase(hc *http.Client, p benchPhase) benchResult {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		res  benchResult
		fail error
	)
	cpu0 := proccpu.Self()
	start := time.Now()
	for w := 0; w < p.Workers; w++ {
		wg.Add(1)
		go func(c benchCall) {
			defer wg.Done()
			local := make([]time.Duration, 0, p.N/p.Workers)
			for i := 0; i < p.N/p.Workers; i++ {
				t0 := time.Now()
				if err := benchDo(hc, &c); err != nil {
					mu.Lock()
					fail = err
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, local...)
			mu.Unlock()
		}(p.Calls[w%len(p.Calls)])
	}
	wg.Wait()
	res.Took = time.Since(start)
	res.CPU = proccpu.Self() - cpu0
	if fail != nil {
		res.Err = fail.Error()
	}
	return res
}

func benchDo(hc *http.Client, c *benchCall) error {
	var body io.Reader
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	req, err := http.NewRequest(c.Method, c.URL, body)
	if err != nil {
		return err
	}
	req.Header = c.Header // read only: shared by the worker's requests
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, c.Want) {
		return fmt.Errorf("%s %s: %d %s\nwant %s", c.Method, c.URL, resp.StatusCode, got, c.Want)
	}
	return nil
}

// benchClient is the child process running phases for the benchmark.
type benchClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startBenchClient(b *testing.B) *benchClient {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchClientEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 16<<20)
	bc := &benchClient{cmd: cmd, in: in, out: sc}
	b.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	return bc
}

// run runs one phase in the child; it returns the child's result and the
// CPU time this process (the coordinator) spent meanwhile.
func (bc *benchClient) run(b *testing.B, p benchPhase) (benchResult, time.Duration) {
	line, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := proccpu.Self()
	if _, err := bc.in.Write(append(line, '\n')); err != nil {
		b.Fatal(err)
	}
	if !bc.out.Scan() {
		b.Fatalf("bench client ended: %v", bc.out.Err())
	}
	server := proccpu.Self() - cpu0
	var res benchResult
	if err := json.Unmarshal(bc.out.Bytes(), &res); err != nil {
		b.Fatal(err)
	}
	if res.Err != "" {
		b.Fatal(res.Err)
	}
	return res, server
}
