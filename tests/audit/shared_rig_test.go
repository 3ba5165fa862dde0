package audit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// Shared clusters. Starting three coordinators costs a test seconds of
// CPU, and most tests here use their cluster only as customers would:
// accounts, keys, orders, requests, webhooks and tickets of their own. Such
// a test takes its rig on a cluster shared by the tests of its
// configuration (sharedLightRig, sharedMCPRig, sharedRig): started by the
// first of them, stopped once none has used it for sharedIdle (and by
// TestMain after every test), started again by the next. Each test still has
// accounts of its own (a prefix numbered per rig) and its own keys, so no
// test depends on another's data or order (-shuffle=on), and a test run
// again (-count) gets a cluster none of its earlier runs used, so names it
// takes on the whole cluster (a hosting username, a domain) are free again.
// A test that reads what the whole cluster holds (an operator's list of
// every account's tickets, metrics) filters it to its own data. A test
// that kills, pauses, restarts or reconfigures a coordinator, changes
// membership, restores a backup, sets a clock, holds the node's actions,
// makes the registry fail or wait, adds an address pool, cordons the node,
// or runs in parallel (t.Parallel) with the others keeps a cluster of its
// own (newLightRig, lightRig, hookRig, newRig...). The shared clusters run
// with --ip-rate-limit raised as the framework raises --rate-limit: a
// budget per client address for requests without a valid key (300 a minute
// by default), which the tests sharing a cluster would spend together, all
// from 127.0.0.1; the tests of that budget (ratelimit_ip_test.go) start
// clusters of their own.
type sharedCluster struct {
	name   string
	start  func(tb testing.TB) *sharedRun // starts the cluster for tb (an outliving)
	mu     sync.Mutex
	run    *sharedRun  // nil: not started
	active int         // tests using run now
	idle   *time.Timer // closes run once sharedIdle has passed with no test using it
}

// sharedRun is one start of a shared cluster.
type sharedRun struct {
	c    *framework.ProcessCluster
	reg  *framework.EPPD // sharedRig's registry
	sim  *framework.Sim  // sharedRig's scripted node
	life *outliving      // stops it (close)
	used map[string]bool // the tests that used it
}

var (
	sharedLight = &sharedCluster{name: "light", start: func(tb testing.TB) *sharedRun { return lightRun(tb) }}
	sharedMCP   = &sharedCluster{name: "mcp", start: func(tb testing.TB) *sharedRun {
		return lightRun(tb, "--public-url", "https://api.audit.example")
	}}
	sharedFull = &sharedCluster{name: "audit", start: func(tb testing.TB) *sharedRun {
		reg := framework.StartEPPD(tb, framework.EPPDOptions{TLDs: []string{"test"}})
		c := auditCluster(tb, reg, sharedFlags...)
		sim := auditNode(c)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		auditCatalogue(ctx, tb, c)
		return &sharedRun{c: c, reg: reg, sim: sim}
	}}
	shared = []*sharedCluster{sharedLight, sharedMCP, sharedFull}
	// sharedIdle is how long a shared cluster waits for its next test
	// before it stops. An idle cluster of three coordinators costs about
	// 5 CPU-s a minute (heartbeats, 500 ms Raft timeouts, timers; 510
	// and 553 hundredths of a second in a minute for the light and the
	// full one, at load 24), a start about 1.7 CPU-s (a test of a few
	// requests on a cluster of its own: 1.7 to 2.2 CPU-s with the test
	// binary, load 19): kept for the whole run (about 10 min), the
	// three cost more than the starts they save. So the tests that share
	// one run one after the other: go test runs a package's tests in the
	// order of its files' names (and within a file, in source order), and
	// the files of the tests on a shared cluster are named for it, in an
	// order that keeps each cluster's tests together: shared1_full_*
	// (sharedRig), shared2_fullmcp_* (a test on sharedRig, then one on
	// sharedMCPRig), shared3_mcp_*, shared4_mcplight_* (tests on
	// sharedMCPRig and on sharedLightRig) and shared5_light_*. Each
	// cluster then starts about once per go test run (run-tests.sh runs
	// the package in two shards, two runs), where spread over the files
	// the 44 tests made about 20 starts. A test that takes a shared
	// cluster belongs in the files of that cluster (a test of its own
	// cluster anywhere else); -shuffle=on still passes, only with more
	// starts.
	sharedIdle = 10 * time.Second
	sharedRigs atomic.Int64 // numbers the shared rigs' account prefixes
	// sharedFlags are every shared cluster's `run` flags beyond its
	// configuration's.
	sharedFlags = []string{"--ip-rate-limit", "1000000"}
)

// lightRun starts lightRig's cluster (with the extra flags) for tb.
func lightRun(tb testing.TB, extra ...string) *sharedRun {
	o := framework.ProcessOptions{N: 3, Bin: framework.Coordinator(tb), RaftTimeout: framework.RaftTimeout, Webhooks: true,
		Extra: func(int, *framework.CoordinatorProcess) []string { return slices.Concat(sharedFlags, extra) }}
	return &sharedRun{c: framework.NewProcessCluster(tb, o)}
}

// get is s's cluster for t: started when none runs, or when t used the
// one that runs (t runs again: -count).
func (s *sharedCluster) get(t *testing.T) *sharedRun {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	if s.run != nil && s.run.used[t.Name()] {
		s.run.life.close()
		s.run = nil
	}
	if s.run == nil {
		life := &outliving{TB: t}
		started := false
		defer func() { // t failed while starting it (t.Fatal)
			if !started {
				life.close()
			}
		}()
		run := s.start(life)
		run.life, run.used, started = life, map[string]bool{}, true
		s.run = run
	}
	s.run.used[t.Name()] = true
	s.active++
	run := s.run
	t.Cleanup(func() { s.release(run) })
	return run
}

// release is the end of a test that used run: once no test has used it
// for sharedIdle, it stops.
func (s *sharedCluster) release(run *sharedRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active--; s.active > 0 || s.run != run {
		return
	}
	s.idle = time.AfterFunc(sharedIdle, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.run == run && s.active == 0 {
			run.life.close()
			s.run, s.idle = nil, nil
		}
	})
}

// rig is a rig (rigOn) on s's cluster with accounts of its own,
// prefixN-a@ and prefixN-b@example.com; its cluster is the shared one as
// t's (framework.ProcessCluster.For).
func (s *sharedCluster) rig(t *testing.T, prefix string) *rig {
	t.Helper()
	run := s.get(t)
	r := rigOn(t, run.c.For(t), fmt.Sprintf("%s%d", prefix, sharedRigs.Add(1)), 4*time.Minute)
	r.reg, r.sim = run.reg, run.sim
	return r
}

// sharedLightRig is lightRig's cluster (no extra flags) shared: for tests
// that only use it as customers would.
func sharedLightRig(t *testing.T, prefix string) *rig {
	t.Helper()
	return sharedLight.rig(t, prefix)
}

// sharedMCPRig is lightRig's cluster with --public-url
// https://api.audit.example (one for the cluster, as the README asks of
// several coordinators serving /mcp and OAuth) shared: for tests that only
// use it as customers would.
func sharedMCPRig(t *testing.T, prefix string) *rig {
	t.Helper()
	return sharedMCP.rig(t, prefix)
}

// sharedRig is newRig's cluster (registry, scripted node, catalogue; no
// extra flags) shared: for tests that only use it as customers would. Its
// registry and node are shared too: a test on it neither makes the
// registry fail or wait nor holds the node's actions.
func sharedRig(t *testing.T, prefix string) *rig {
	t.Helper()
	return sharedFull.rig(t, prefix)
}

// closeShared stops the shared clusters (TestMain, after every test).
func closeShared() {
	for _, s := range shared {
		s.mu.Lock()
		if s.idle != nil {
			s.idle.Stop()
		}
		if s.run != nil {
			s.run.life.close()
			s.run = nil
		}
		s.mu.Unlock()
	}
}

// outliving is the test that starts a shared cluster, as the testing.TB
// the cluster is started with: it fails and logs as that test, but what is
// started with it lasts until close (its Cleanup and TempDir are its own),
// and once that test has ended nothing may fail or log through it (a
// shared rig's cluster is the test's: framework.ProcessCluster.For). Its
// cleanups print no log tails (Failed is false): a test that fails on a
// shared cluster prints them itself (For).
type outliving struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (o *outliving) Cleanup(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cleanups = append(o.cleanups, f)
}

func (o *outliving) TempDir() string {
	dir, err := framework.MkdirTemp("audit-shared")
	if err != nil {
		o.Fatal(err)
	}
	o.Cleanup(func() { _ = framework.RemoveTemp(dir) })
	return dir
}

func (o *outliving) Failed() bool { return false }

// close runs the cleanups, the last registered first (as testing does).
func (o *outliving) close() {
	o.mu.Lock()
	fs := o.cleanups
	o.cleanups = nil
	o.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}
