package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestProfiledParts: in a profiling run each part of a phase measured in
// rounds gets profiles of its own, every node's and the clients', numbered in
// the order the parts ran, so the parts of one kind can be summed; outside a
// profiling run the phase runs as it is.
func TestProfiledParts(t *testing.T) {
	ran := 0
	phase := func(time.Duration) Result { ran++; return Result{OK: 7} }
	t.Setenv("BENCH_PPROF_BASE_PORT", "")
	if r := profiledParts("leader-writes", phase)(time.Millisecond); r.OK != 7 || ran != 1 {
		t.Fatalf("outside a profiling run: %+v after %d runs", r, ran)
	}

	base := pprofListeners(t, 3)
	dir := t.TempDir()
	t.Setenv("BENCH_PPROF_BASE_PORT", strconv.Itoa(base))
	t.Setenv("BENCH_PROFILE_DIR", dir)
	profiledPart.Store(0)
	leader, spread := profiledParts("leader-writes", phase), profiledParts("spread-writes", phase)
	for _, p := range []func(time.Duration) Result{leader, spread, spread, leader} {
		if r := p(time.Millisecond); r.OK != 7 {
			t.Fatalf("the part's result was lost: %+v", r)
		}
	}
	if ran != 5 {
		t.Fatalf("the phase ran %d times, want 5", ran)
	}
	for n, kind := range []string{"leader", "spread", "spread", "leader"} {
		for _, who := range []string{"node0", "node1", "node2", "client"} {
			f := filepath.Join(dir, fmt.Sprintf("%s-writes-%d-%s.pprof", kind, n+1, who))
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if who != "client" && string(b) != "profile of "+who {
				t.Fatalf("%s holds %q", f, b)
			}
		}
	}
}

// pprofListeners serves n nodes' CPU profile endpoints on ports base+1…base+n
// (as the coordinators' --pprof-addr in a profiling run) and returns base.
func pprofListeners(t *testing.T, n int) int {
	for range 100 {
		base := 20000 + rand.IntN(30000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i+1))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < n {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for i, ln := range lns {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/debug/pprof/profile" || r.URL.Query().Get("seconds") == "" {
					http.NotFound(w, r)
					return
				}
				fmt.Fprintf(w, "profile of node%d", i)
			})}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close() })
		}
		return base
	}
	t.Fatal("no free consecutive ports")
	return 0
}
