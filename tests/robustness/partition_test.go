package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// Network partitions, checked from outside: the register's history (16
// clients through all three coordinators, register_test.go) while the
// network between the coordinators is cut, each coordinator in a network
// namespace of its own (framework.PartitionNet) and the clients reaching all
// of them throughout. Besides porcupine's verdict (with every coordinator's
// last linearizable read in the history, so that an acknowledged write lost
// in the cut shows), a coordinator that can send to no other one must answer
// no read and no write with a 200 while it is cut off (it can confirm no
// leadership and commit nothing), and once healed the coordinators' states
// must be the same (applied index, the register read from each one's own
// state).

// httpCall is one request of the package's httpc (the register's reads and
// writes) as a partition test's transport saw it.
type httpCall struct {
	node       int  // the coordinator's index in c.procs (-1: another host)
	write      bool // not a GET
	stale      bool // ?consistency=stale
	status     int  // 0: no answer
	code       string
	err        error
	start, end time.Time
}

// outcome says what the client got: "200", "503 no_leader", "no answer in
// 3 s", "connection refused"...
func (k httpCall) outcome() string {
	switch {
	case k.err != nil && errors.Is(k.err, context.DeadlineExceeded):
		return "no answer in 3 s"
	case k.err != nil:
		return "error: " + k.err.Error()
	case k.code != "":
		return fmt.Sprintf("%d %s", k.status, k.code)
	}
	return strconv.Itoa(k.status)
}

// callLog is an http.RoundTripper that records every request it carries.
type callLog struct {
	base  http.RoundTripper
	nodes map[string]int // API host:port -> index
	mu    sync.Mutex
	calls []httpCall
}

func (l *callLog) RoundTrip(req *http.Request) (*http.Response, error) {
	k := httpCall{node: -1, write: req.Method != http.MethodGet, stale: strings.Contains(req.URL.RawQuery, "consistency=stale"), start: time.Now()}
	if i, ok := l.nodes[req.URL.Host]; ok {
		k.node = i
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		k.err = err
	} else if k.status = resp.StatusCode; k.status != http.StatusOK {
		// The error code, from a body small enough to keep.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var e api.Error
		if rerr == nil && json.Unmarshal(body, &e) == nil {
			k.code = e.Code
		}
	}
	k.end = time.Now()
	l.mu.Lock()
	l.calls = append(l.calls, k)
	l.mu.Unlock()
	return resp, err
}

// between is the calls that began in [from, to).
func (l *callLog) between(from, to time.Time) []httpCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []httpCall
	for _, k := range l.calls {
		if !k.start.Before(from) && k.start.Before(to) {
			out = append(out, k)
		}
	}
	return out
}

// logCalls records httpc's requests to c's coordinators until the test ends.
// The partition tests do not run in parallel with the package's others.
func logCalls(t *testing.T, c *cluster) *callLog {
	l := &callLog{base: httpc.Transport, nodes: map[string]int{}}
	for i, p := range c.procs {
		l.nodes[p.APIAddr] = i
	}
	httpc.Transport = l
	t.Cleanup(func() { httpc.Transport = l.base })
	return l
}

// window is one cut: what, which coordinators could send to no other, when
// (end zero while it lasts).
type window struct {
	what       string
	mute       []int
	start, end time.Time
}

// staleRead is a ?consistency=stale read of the register (outside the check).
type staleRead struct {
	start  time.Time
	value  int
	status int
	err    error
}

// noFaults is runClients' faults for clients that run alongside others
// through their faults.
type noFaults struct{}

func (noFaults) inject(context.Context, *testing.T, *cluster, *recorder) <-chan struct{} {
	done := make(chan struct{})
	close(done)
	return done
}

// netPlan is a partition schedule: faults for runClients.
type netPlan struct {
	pn       *framework.PartitionNet
	schedule func(ctx context.Context, t *testing.T, n *netPlan, c *cluster, at func(time.Duration) bool)

	rec     *recorder // the run's clock (set by inject)
	mu      sync.Mutex
	windows []window
	stale   []staleRead
	probes  []porcupine.Operation // isolateFollower's, for the history
}

func (n *netPlan) inject(ctx context.Context, t *testing.T, c *cluster, rec *recorder) <-chan struct{} {
	n.rec = rec
	done := make(chan struct{})
	// at waits until rec's clock reads d: false if ctx ended first.
	at := func(d time.Duration) bool {
		select {
		case <-time.After(d - time.Duration(rec.now())):
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(done)
		defer n.heal(t)
		n.schedule(ctx, t, n, c, at)
	}()
	return done
}

// cut applies do (the cut) and opens a window.
func (n *netPlan) cut(t *testing.T, what string, mute []int, do func()) {
	do()
	n.mu.Lock()
	n.windows = append(n.windows, window{what: what, mute: mute, start: time.Now()})
	n.mu.Unlock()
	t.Logf("%.1fs: %s (cut: %s)", time.Duration(n.rec.now()).Seconds(), what, n.pn.Cuts())
}

// heal closes the open window and heals every cut.
func (n *netPlan) heal(t *testing.T) {
	n.mu.Lock()
	if k := len(n.windows) - 1; k >= 0 && n.windows[k].end.IsZero() {
		n.windows[k].end = time.Now()
		t.Logf("%.1fs: healed", time.Duration(n.rec.now()).Seconds())
	}
	n.mu.Unlock()
	n.pn.HealAll()
}

// The single cuts begin at cutAt into a run and last cutFor; a run lasts
// cutRun; the flapping lasts flapFor.
const (
	cutAt, cutFor, cutRun = 2500 * time.Millisecond, 6 * time.Second, 12 * time.Second
	flapFor, flapRun      = 20 * time.Second, 24 * time.Second
)

// leaderAtCut waits until cutAt into the run and returns the coordinator
// that leads then (known within 3 s); false when the run ended first, or
// when none leads (failing t with none).
func leaderAtCut(t *testing.T, c *cluster, at func(time.Duration) bool, none string) (int, bool) {
	t.Helper()
	if !at(cutAt) {
		return -1, false
	}
	ld := c.leaderOrNone(3 * time.Second)
	if ld < 0 {
		t.Error(none)
		return -1, false
	}
	return ld, true
}

// isolateLeader: the leader (alive, keeping its clients) cut from both
// followers both ways for cutFor.
func isolateLeader(ctx context.Context, t *testing.T, n *netPlan, c *cluster, at func(time.Duration) bool) {
	ld, ok := leaderAtCut(t, c, at, "no leader to isolate")
	if !ok {
		return
	}
	n.cut(t, "leader "+c.procs[ld].ID+" isolated", []int{ld}, func() { n.pn.Isolate(ld) })
	at(cutAt + cutFor)
}

// muteLeader: an asymmetric cut for cutFor: what the leader sends
// to the followers is dropped; it still hears them.
func muteLeader(ctx context.Context, t *testing.T, n *netPlan, c *cluster, at func(time.Duration) bool) {
	ld, ok := leaderAtCut(t, c, at, "no leader to cut")
	if !ok {
		return
	}
	n.cut(t, "leader "+c.procs[ld].ID+" unheard (it hears the followers)", []int{ld}, func() {
		for j := range c.procs {
			n.pn.Cut(ld, j)
		}
	})
	at(cutAt + cutFor)
}

// The probes' client ids and written value: apart from the register's.
const probeClient, probeValue = 1 << 20, 1 << 20

// isolateFollower: a follower cut from both others for cutFor;
// meanwhile its ?consistency=stale reads (outside the check) are recorded.
func isolateFollower(ctx context.Context, t *testing.T, n *netPlan, c *cluster, at func(time.Duration) bool) {
	ld, ok := leaderAtCut(t, c, at, "no leader")
	if !ok {
		return
	}
	f := (ld + 1) % len(c.procs)
	n.cut(t, "follower "+c.procs[f].ID+" isolated", []int{f}, func() { n.pn.Isolate(f) })
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// A read and a write sent at once, which the follower forwards before it
	// notices the cut, must be answered before the heal, and not with a 200
	// (reportCuts): it must not hold them until the network heals.
	probes := sync.WaitGroup{}
	for k, write := range []bool{false, true} {
		probes.Add(1)
		go func() {
			defer probes.Done()
			pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer pcancel()
			v := probeValue + k
			op := porcupine.Operation{ClientId: probeClient + k, Input: regInput{write: write, value: v}, Call: n.rec.now(), Metadata: c.procs[f].ID + " (probe at the cut)"}
			var st int
			var err error
			var got string
			if write {
				st, err = c.write(pctx, c.procs[f], strconv.Itoa(v))
			} else {
				got, st, err = c.read(pctx, c.procs[f], "")
			}
			op.Return = n.rec.now()
			el := time.Duration(op.Return - op.Call)
			t.Logf("probe %s sent to %s at the cut: status %d, %v, after %.2fs", map[bool]string{false: "read", true: "write"}[write], c.procs[f].ID, st, err, el.Seconds())
			if el > cutFor {
				t.Errorf("the cut-off follower %s held a request it forwarded at the cut %.1fs, past the heal (%s)", c.procs[f].ID, el.Seconds(), cutFor)
			}
			switch {
			case write && (err != nil || st != 200):
				op.Return = pendingForever // it may take effect once the network heals
			case !write && (err != nil || st != 200):
				return
			case !write:
				op.Output, _ = strconv.Atoi(got)
			}
			n.mu.Lock()
			n.probes = append(n.probes, op)
			n.mu.Unlock()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(sctx, 3*time.Second)
			s := staleRead{start: time.Now()}
			var v string
			v, s.status, s.err = c.read(rctx, c.procs[f], "consistency=stale")
			rcancel()
			s.value, _ = strconv.Atoi(v)
			n.mu.Lock()
			n.stale = append(n.stale, s)
			n.mu.Unlock()
			select {
			case <-time.After(100 * time.Millisecond):
			case <-sctx.Done():
			}
		}
	}()
	at(cutAt + cutFor)
	cancel()
	wg.Wait()
	n.heal(t)
	probes.Wait()
}

// flap: for flapFor from cutAt, one coordinator (the one that says it leads, else
// any) isolated for 1-2 s, then all healed for 1-2 s, again and again.
func flap(ctx context.Context, t *testing.T, n *netPlan, c *cluster, at func(time.Duration) bool) {
	if !at(cutAt) {
		return
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	pause := func() bool {
		return at(time.Duration(n.rec.now()) + time.Second + time.Duration(rng.IntN(1000))*time.Millisecond)
	}
	for time.Duration(n.rec.now()) < cutAt+flapFor {
		i := c.leaderOrNone(300 * time.Millisecond)
		what := "leader "
		if i < 0 {
			i, what = rng.IntN(len(c.procs)), "(no leader) "
		}
		n.cut(t, what+c.procs[i].ID+" isolated", []int{i}, func() { n.pn.Isolate(i) })
		ok := pause()
		n.heal(t)
		if !ok || !pause() {
			return
		}
	}
}

// partitionCluster starts the three coordinators in a PartitionNet, with
// their requests logged.
func partitionCluster(t *testing.T) (*cluster, *framework.PartitionNet, *callLog) {
	if testing.Short() {
		t.Skip("runs three coordinator processes")
	}
	pn := framework.NewPartitionNet(t, 3) // before the cluster: removed after it
	start := time.Now()
	c := newClusterWith(t, "partition", clusterOptions{place: pn.Place})
	t.Logf("three coordinators in namespaces %v (%v), ready in %.1fs", pn.NS, pn.Addrs, time.Since(start).Seconds())
	return c, pn, logCalls(t, c)
}

// TestPartitionLinearizable runs the register's clients under four network
// partitions, each on a register of its own, one after the other on one
// cluster: (a) the leader isolated from both followers for 6 s, (b) an
// asymmetric cut (the followers stop hearing the leader, which still hears
// them) for 6 s, (c) a flapping partition (one coordinator, the leader when
// there is one, isolated for 1-2 s and healed for 1-2 s, for 20 s), (d) a
// follower isolated for 6 s (its ?consistency=stale reads are recorded
// outside the check). Under (a) the ticket set's clients (ticketset_test.go)
// run too, so that every ticket whose create was acknowledged, in the cut or
// not, must be listed at the end by every coordinator.
func TestPartitionLinearizable(t *testing.T) {
	c, pn, calls := partitionCluster(t)
	for _, ph := range []struct {
		name     string
		dur      time.Duration
		schedule func(context.Context, *testing.T, *netPlan, *cluster, func(time.Duration) bool)
		tickets  bool
	}{
		{"leader-isolated", cutRun, isolateLeader, true},
		{"asymmetric", cutRun, muteLeader, false},
		{"flapping", flapRun, flap, false},
		{"follower-isolated", cutRun, isolateFollower, false},
	} {
		t.Run(ph.name, func(t *testing.T) {
			if err := c.pc.WaitSettled(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			c.newRegister(t)
			plan := &netPlan{pn: pn, schedule: ph.schedule}
			checkPartition(t, c, calls, plan, ph.name, ph.dur, ph.tickets)
		})
	}
}

// checkPartition runs the register under plan for dur and checks the
// history, what the cut-off coordinators answered, and the replicas after;
// with tickets, the ticket set's clients run alongside (through the same
// cuts) and their history is checked too.
func checkPartition(t *testing.T, c *cluster, calls *callLog, plan *netPlan, name string, dur time.Duration, tickets bool) {
	start := time.Now()
	var wg sync.WaitGroup
	var setHist []porcupine.Operation
	var sets setStats
	if tickets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			setHist, sets = runTicketSet(t, c, noFaults{}, dur)
		}()
	}
	hist, s := runRegister(t, c, plan, dur)
	end := time.Now()
	wg.Wait()
	hist = append(hist, plan.probes...)
	if tickets {
		t.Logf("%s tickets: %d operations: %d reads (%d failed), %d creates (%d unknown, %d retried)",
			name, len(setHist), sets.reads, sets.failedReads, sets.creates, sets.unknown, sets.retried)
		if sets.reads < 50 || sets.creates < 30 {
			t.Errorf("%s tickets: too little happened to check (%d reads, %d creates)", name, sets.reads, sets.creates)
		}
		checkBites(t, setModel, name+"-tickets", setHist, "a lost ticket", corruptSet)
	}
	hist = c.lastWord(t, plan.rec, hist)
	t.Logf("%s: %d operations (%d reads, %d writes of which %d unknown), %d failed reads, %.1fs of load; cuts: %d",
		name, s.ops, s.reads, s.writes, s.unknownWrites, s.failedReads, s.elapsed.Seconds(), len(plan.windows))
	if s.reads < 50 || s.writes-s.unknownWrites < 50 || len(plan.windows) == 0 {
		t.Errorf("%s: too little happened to check (%d reads, %d acknowledged writes, %d cuts)", name, s.reads, s.writes-s.unknownWrites, len(plan.windows))
	}
	phase := calls.between(start, end)
	muted := c.reportCuts(t, name, plan.rec, phase, plan.windows)
	c.reportStale(t, name, plan.rec, hist, plan.stale)
	// The cut check bites: the stale reads the cut-off coordinator answered
	// within the cut, taken for default reads, are caught.
	var asDefault []httpCall
	for _, k := range phase {
		if k.stale && k.status == 200 {
			k.stale = false
			asDefault = append(asDefault, k)
		}
	}
	if caught := len(answeredCutOff(asDefault, plan.windows)); len(asDefault) > 0 {
		t.Logf("%s: the cut check bites: %d of the %d stale reads answered, taken for default reads, are caught", name, caught, len(asDefault))
		if caught == 0 {
			t.Errorf("%s: the cut check caught none of the stale reads the cut-off coordinator answered", name)
		}
	}
	c.sameReplicas(t, name)

	checked, dropped := dropUnobserved(hist)
	t.Logf("%s: %d writes of unknown outcome never observed, left out of the check", name, dropped)
	res := checkLinearizable(t, registerModel, name, checked)
	if res != porcupine.Ok || muted > 0 {
		path := filepath.Join(artifactDir(), fmt.Sprintf("hostplane-partition-%s-%d.jsonl", name, time.Now().Unix()))
		saveHistory(t, path, hist)
		t.Errorf("%s: history kept in %s", name, path)
	}
	// The check bites: the same history with one read made stale is illegal.
	if bad, ok := corrupt(checked); !ok {
		t.Errorf("%s: no read to corrupt in the history", name)
	} else if res := porcupine.CheckOperationsTimeout(registerModel, bad, checkTimeout); res != porcupine.Illegal {
		t.Errorf("%s: a history with a stale read was judged %s, want Illegal", name, res)
	} else {
		t.Logf("%s: the same history with one read made stale: %s", name, res)
	}
	t.Logf("%s: whole phase %.1fs", name, time.Since(start).Seconds())
}

// artifactDir is where a failing run's history goes (as visualize's).
func artifactDir() string {
	if dir := os.Getenv("HOSTPLANE_TEST_ARTIFACTS"); dir != "" {
		return dir
	}
	return os.TempDir()
}

// lastWord adds each coordinator's linearizable read of the register, once
// everything is healed and the clients are done, to hist: an acknowledged
// write lost in a cut (overwritten by a new leader's log) makes the history
// illegal.
func (c *cluster) lastWord(t *testing.T, rec *recorder, hist []porcupine.Operation) []porcupine.Operation {
	client := 0
	for _, op := range hist {
		client = max(client, op.ClientId+1)
	}
	for i, p := range c.procs {
		framework.PollFor(t, p.ID+" reading a last time", 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (struct{}, error) {
			call := rec.now()
			v, st, err := c.read(ctx, p, "")
			ret := rec.now()
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d", st)
			}
			if err != nil {
				return struct{}{}, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return struct{}{}, err
			}
			hist = append(hist, porcupine.Operation{ClientId: client + i, Input: regInput{}, Call: call, Output: n, Return: ret, Metadata: p.ID + " (last word)"})
			return struct{}{}, nil
		}, func(struct{}) bool { return true })
	}
	return hist
}

// reportCuts logs what the clients saw during each cut and after it, and
// fails the test for every 200 a cut-off coordinator gave to a request sent
// after the cut began and answered before it healed (stale reads aside); it
// returns how many.
func (c *cluster) reportCuts(t *testing.T, name string, rec *recorder, calls []httpCall, windows []window) int {
	for wi, w := range windows {
		at := func(tm time.Time) float64 { return tm.Sub(rec.start).Seconds() }
		var firstAck, firstAckMute *httpCall
		inCut := map[string]int{}     // at the cut-off coordinators, sent and answered within the cut
		elsewhere := map[string]int{} // at the others, sent within the cut
		next := time.Time{}
		if wi+1 < len(windows) {
			next = windows[wi+1].start
		}
		for ki := range calls {
			k := &calls[ki]
			if k.stale || k.start.Before(w.start) {
				continue
			}
			mute := slices.Contains(w.mute, k.node)
			if k.write && k.status == 200 && (firstAck == nil || k.end.Before(firstAck.end)) && (next.IsZero() || k.start.Before(next)) {
				firstAck = k
			}
			if mute && k.status == 200 && k.start.After(w.end) && (firstAckMute == nil || k.end.Before(firstAckMute.end)) && (next.IsZero() || k.start.Before(next)) {
				firstAckMute = k
			}
			if !k.start.Before(w.end) {
				continue
			}
			kind := "read "
			if k.write {
				kind = "write "
			}
			if mute && !k.end.After(w.end) {
				inCut[kind+k.outcome()]++
			} else if !mute {
				elsewhere[kind+k.outcome()]++
			}
		}
		line := fmt.Sprintf("%s: cut %d, %s, %.1fs-%.1fs: at the cut-off coordinator %s; at the others %s", name, wi+1, w.what,
			at(w.start), at(w.end), tally(inCut), tally(elsewhere))
		if firstAck != nil {
			when := "during the cut"
			if firstAck.end.After(w.end) {
				when = "after the heal"
			}
			line += fmt.Sprintf("; first acknowledged write sent after the cut: %.2fs after it began, %s (via %s)", firstAck.end.Sub(w.start).Seconds(), when, c.procs[firstAck.node].ID)
		} else {
			line += "; no write sent after the cut was acknowledged before the next cut"
		}
		if firstAckMute != nil {
			line += fmt.Sprintf("; the cut-off coordinator's first 200 after the heal: %.2fs after it", firstAckMute.end.Sub(w.end).Seconds())
		}
		t.Log(line)
	}
	bad := answeredCutOff(calls, windows)
	if len(bad) > 0 {
		t.Errorf("%s: %d requests answered with 200 by a coordinator while it was cut off; the first ones:", name, len(bad))
	}
	for _, k := range bad[:min(len(bad), 5)] {
		t.Errorf("%s: %s answered a %s with 200 while it was cut off (sent at %.3fs, answered at %.3fs)",
			name, c.procs[k.node].ID, map[bool]string{false: "read", true: "write"}[k.write], k.start.Sub(rec.start).Seconds(), k.end.Sub(rec.start).Seconds())
	}
	return len(bad)
}

// answeredCutOff is the calls (stale reads aside) that a coordinator unable
// to send to any other answered with a 200 although they were sent after
// the cut began and answered before it healed: it could neither confirm
// its leadership nor commit nor reach a leader.
func answeredCutOff(calls []httpCall, windows []window) []httpCall {
	var out []httpCall
	for _, w := range windows {
		for _, k := range calls {
			if !k.stale && k.status == 200 && slices.Contains(w.mute, k.node) && !k.start.Before(w.start) && !k.end.After(w.end) {
				out = append(out, k)
			}
		}
	}
	return out
}

// tally formats outcome counts, most frequent first.
func tally(m map[string]int) string {
	if len(m) == 0 {
		return "nothing"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, m[k])
	}
	return b.String()
}

// reportStale logs the ?consistency=stale reads of a cut-off follower: how
// many were answered and how many of those showed a value overwritten
// before the read was sent (allowed: the documented exception).
func (c *cluster) reportStale(t *testing.T, name string, rec *recorder, hist []porcupine.Operation, stale []staleRead) {
	if len(stale) == 0 {
		return
	}
	// When each value was acknowledged, and when it was overwritten for
	// good: the call of the first write acknowledged after it.
	ackedAt := map[int]int64{0: 0}
	var acked []porcupine.Operation
	for _, op := range hist {
		if in := op.Input.(regInput); in.write && op.Return != pendingForever {
			ackedAt[in.value] = op.Return
			acked = append(acked, op)
		}
	}
	outcomes := map[string]int{}
	behind := 0
	for _, s := range stale {
		switch {
		case s.err != nil && errors.Is(s.err, context.DeadlineExceeded):
			outcomes["no answer in 3 s"]++
		case s.err != nil:
			outcomes["error"]++
		default:
			outcomes[strconv.Itoa(s.status)]++
		}
		if s.err != nil || s.status != 200 {
			continue
		}
		call := int64(s.start.Sub(rec.start))
		if at, ok := ackedAt[s.value]; ok {
			for _, op := range acked {
				if op.Call > at && op.Return < call {
					behind++
					break
				}
			}
		}
	}
	t.Logf("%s: %d ?consistency=stale reads of the cut-off follower: %s; %d showed a value overwritten before they were sent (allowed for stale reads; the same answer to a default read would fail the cut check)",
		name, len(stale), tally(outcomes), behind)
}

// sameReplicas waits (20 s at most) until the coordinators have applied the
// same Raft index and each one's own state (a ?consistency=stale read)
// holds the same register value, and fails the test if they never do.
func (c *cluster) sameReplicas(t *testing.T, name string) {
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var idx []uint64
		var vals []string
		for _, p := range c.procs {
			st, err := p.Admin().ClusterStatus(ctx)
			v, code, rerr := c.read(ctx, p, "consistency=stale")
			if err != nil || rerr != nil || code != 200 {
				idx, vals = nil, nil
				last = fmt.Sprintf("%s: %v %v %d", p.ID, err, rerr, code)
				break
			}
			idx, vals = append(idx, st.AppliedIndex), append(vals, v)
		}
		cancel()
		if len(idx) == len(c.procs) {
			if slices.Min(idx) == slices.Max(idx) && slices.Min(vals) == slices.Max(vals) {
				t.Logf("%s: replicas the same: applied index %d, register %s on every coordinator", name, idx[0], vals[0])
				return
			}
			last = fmt.Sprintf("applied %v, register %v", idx, vals)
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the replicas differ 20 s after the heal: %s", name, last)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
