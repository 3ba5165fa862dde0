package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework/testenv"
)

// unplugDeadline is how long an action waits for its node in TestNodeUnplugged.
const unplugDeadline = 8 * time.Second

// TestNodeUnplugged pulls the agent (SIGKILL, no goodbye): stats answer 503
// node_offline at once, a new action fails at its deadline, the node is shown
// unreachable; the guest keeps running, and when the agent returns the node is
// ready again, the expired action never runs and new actions work.
func TestNodeUnplugged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator, an agent and boots a TCG guest")
	}
	// The agent samples at the product's default interval (10 s): what a
	// customer's stats stream sees between two cycles is checked below.
	w := newWorld(t, clusterOpts{n: 1, actionDeadline: unplugDeadline, agentStats: 10 * time.Second})
	created := w.createServer(t, "unplug")
	id, vm := created.Server.ID, created.Server.VMName
	console := w.agent.ConsoleLog(vm)
	c := w.api(nil)

	// Stats flow while the node is there. memory_bytes is the agent's figure
	// for the guest (the agent's own sample of the same time has the same),
	// more than zero and at most the plan's memory; once the guest's balloon
	// driver reports, it is what the guest uses, not QEMU's resident set, which
	// holds QEMU's own memory too (over 100 MiB under TCG): below it by more
	// than guestBelowQEMU.
	const guestBelowQEMU = 64 << 20
	testenv.RequireGuestVersion(t, w.agent.Guest, testenv.BalloonGuestVersion)
	plan := created.Server.Plan.MemoryMiB << 20
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.do(http.MethodGet, "/v1/servers/"+id+"/stats", nil)
		if r.Status == http.StatusOK {
			var st api.ServerStats
			r.Decode(t, &st)
			if st.ServerID != id {
				t.Fatalf("stats of another server: %s", r)
			}
			if st.MemoryBytes == 0 || st.MemoryBytes > plan {
				t.Fatalf("stats: memory_bytes %d (%d MiB), want more than 0 and at most the plan's %d MiB: %s", st.MemoryBytes, st.MemoryBytes>>20, plan>>20, r)
			}
			local := agentSampleAt(t, w, vm, st.Time)
			if local != nil && local.MemoryBytes != st.MemoryBytes {
				t.Fatalf("stats: memory_bytes %d, the agent's sample of %s has %d", st.MemoryBytes, st.Time, local.MemoryBytes)
			}
			rss := testenv.QEMURSS(t, vm)
			if local != nil && st.MemoryBytes+guestBelowQEMU < rss {
				t.Logf("memory_bytes %d MiB (plan %d MiB; QEMU resident %d MiB), the agent's sample the same", st.MemoryBytes>>20, plan>>20, rss>>20)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stats after 30 s: memory_bytes %d MiB, QEMU resident %d MiB (want the guest's use, below it by more than %d MiB), the agent's sample of the same time %+v: %s",
					st.MemoryBytes>>20, rss>>20, guestBelowQEMU>>20, local, r)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("stats of a running server on a connected node: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}

	liveStatsStream(t, w.c.AnyAlive(nil).URL(), w.key, id)

	w.agent.Kill()
	unplugged := time.Now()

	// Stats: 503 node_offline, each answer quick, within the grace period.
	for {
		t0 := time.Now()
		r := c.do(http.MethodGet, "/v1/servers/"+id+"/stats", nil)
		if took := time.Since(t0); took > 3*time.Second {
			t.Fatalf("stats took %s with the node gone; want a quick answer: %s", took, r)
		}
		// A call in flight when the session drops may answer 503
		// stats_unavailable; once the node is known gone it is node_offline.
		if r.Status == http.StatusServiceUnavailable && r.Code() == "node_offline" {
			break
		}
		if r.Status != http.StatusOK && r.Status != http.StatusServiceUnavailable {
			t.Fatalf("stats with the node gone: want 503 node_offline: %s", r)
		}
		if time.Since(unplugged) > agentGrace+3*time.Second {
			t.Fatalf("stats not 503 node_offline %s after the agent was killed: %s", time.Since(unplugged).Round(time.Millisecond), r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("stats 503 node_offline %s after the unplug", time.Since(unplugged).Round(time.Millisecond))

	// A new action is accepted and fails at its deadline.
	acc := c.power(id, "reboot", nil)
	a := c.waitAction(acc.Action.ID, unplugDeadline+30*time.Second)
	if a.Status != api.ActionFailed || a.Error == nil || a.Error.Code == "" || a.FinishedAt == nil {
		t.Fatalf("reboot for an absent node: want status error with a code, got %+v (error %+v)", a, a.Error)
	}
	if waited := a.FinishedAt.Sub(a.CreatedAt); waited < unplugDeadline-time.Second || waited > unplugDeadline+5*time.Second {
		t.Fatalf("reboot for an absent node failed after %s, want about the %s deadline (error %+v)", waited, unplugDeadline, a.Error)
	}
	t.Logf("reboot failed after %s: %s: %s", a.FinishedAt.Sub(a.CreatedAt).Round(time.Millisecond), a.Error.Code, a.Error.Message)

	n := w.c.WaitNode(w.agent.ID, 10*time.Second, "unreachable", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeUnreachable && !n.Connected
	})
	t.Logf("node %s unreachable (state changed %s after the unplug)", n.ID, n.StateChangedAt.Sub(unplugged).Round(time.Millisecond))
	// The guest does not depend on its agent.
	requireDomState(t, vm, "running")
	if s := c.server(id); s.ActionID != "" {
		t.Fatalf("server still has an open action after it failed: %+v", s)
	}

	// Plugged back in.
	w.agent.Start("")
	w.waitNodeReady(30 * time.Second)
	deadline = time.Now().Add(15 * time.Second)
	for {
		r := c.do(http.MethodGet, "/v1/servers/"+id+"/stats", nil)
		if r.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats after the node returned: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := c.waitActionOpen(acc.Action.ID); got.Status != api.ActionFailed {
		t.Fatalf("the expired reboot changed after the node returned: %+v", got)
	}
	acc = c.power(id, "reboot", nil)
	c.waitSuccess(acc.Action.ID, actionTimeout)
	if b := waitBoot(t, console, 2); b.Count != "2" {
		t.Fatalf("after the one reboot that ran: %+v", b)
	}
	if bs := boots(console); len(bs) != 2 {
		t.Fatalf("the guest booted %d times, want 2 (the expired reboot must not run late): %+v", len(bs), bs)
	}
	if s := c.server(id); s.Status != api.ServerRunning {
		t.Fatalf("server after the node returned: %+v", s)
	}

	// A running action whose node then stays away a whole deadline fails with
	// "outcome unknown"; the agent finishes (or undoes) the work when it comes
	// back, and the server takes actions again.
	w.agent.Stop()
	w.agent.Start("vm.reinstall:disk-swapped")
	w.waitNodeReady(30 * time.Second)
	acc = c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.ReinstallServer(ctx, id, api.ReinstallRequest{OSTemplate: tplB}, "")
	})
	w.agent.WaitExit(time.Minute)
	gone := time.Now()
	if a := c.waitActionOpen(acc.Action.ID); a.Status != api.ActionRunning {
		t.Fatalf("reinstall when its agent died: want running, got %+v", a)
	}
	a = c.waitAction(acc.Action.ID, unplugDeadline+30*time.Second)
	if a.Status != api.ActionFailed || a.Error == nil || a.Error.Code != "node_unreachable" || !strings.Contains(a.Error.Message, "outcome is unknown") {
		t.Fatalf("running reinstall with its node away: want error node_unreachable, outcome unknown; got %+v (error %+v)", a, a.Error)
	}
	if away := a.FinishedAt.Sub(gone); away < unplugDeadline-time.Second {
		t.Fatalf("running reinstall failed %s after its node went away, before the %s deadline", away, unplugDeadline)
	}
	w.agent.Start("")
	w.waitNodeReady(30 * time.Second)
	if got := c.waitActionOpen(acc.Action.ID); got.Status != api.ActionFailed {
		t.Fatalf("the failed reinstall changed after the node returned: %+v", got)
	}
	acc = c.power(id, "reboot", &api.PowerRequest{Force: true})
	c.waitSuccess(acc.Action.ID, actionTimeout)
	requireDomState(t, vm, "running")
}

// liveStatsStream reads four events of GET /v1/servers/{id}/stats?stream=1&
// interval=1: each is a sample taken when it was sent (its time within 1.5 s
// of its arrival, later than the event before), though the agent samples
// every 10 s. Before the agent's live samples, the stream sent the last
// cycle's sample again each second, its time unchanged for ten events.
func liveStatsStream(t *testing.T, base, key, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/servers/"+id+"/stats?stream=1&interval=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stats stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stats stream: %d %s", resp.StatusCode, b)
	}
	var prev time.Time
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for n < 4 && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		arrived := time.Now()
		var st api.ServerStats
		if err := json.Unmarshal([]byte(data), &st); err != nil || st.ServerID != id || st.State != "running" {
			t.Fatalf("stream event %d: %v %s", n, err, data)
		}
		if age := arrived.Sub(st.Time); age > 1500*time.Millisecond || age < -time.Second {
			t.Fatalf("stream event %d: sample taken at %s arrived at %s (%s old): not live", n, st.Time.Format(time.RFC3339Nano), arrived.Format(time.RFC3339Nano), age)
		}
		if !st.Time.After(prev) {
			t.Fatalf("stream event %d: sample time %s, not after the previous event's %s (the same sample sent again)", n, st.Time.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano))
		}
		prev = st.Time
		n++
	}
	if n < 4 {
		t.Fatalf("stats stream ended after %d events: %v", n, sc.Err())
	}
}

// agentSampleAt is the agent's own stats sample of vm taken at at (to the
// millisecond, as the session carries it), read from its local socket; nil if
// the agent holds none of that time.
func agentSampleAt(t *testing.T, w *world, vm string, at time.Time) *api.NodeVMStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.agent.Node().Stats(ctx, vm)
	if err != nil {
		t.Fatalf("the agent's stats of %s: %v", vm, err)
	}
	for _, s := range st.VMs[vm] {
		if s.Time.UnixMilli() == at.UnixMilli() {
			return &s
		}
	}
	return nil
}
