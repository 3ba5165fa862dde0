package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/testenv"
)

const actionTimeout = 2 * time.Minute

// TestEndToEnd runs one 3-coordinator cluster with one real agent and drives
// servers through the public API: the whole lifecycle, conflicting and foreign
// requests, an agent crash and a leader crash in the middle of a reinstall.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 coordinators, an agent and boots TCG guests")
	}
	w := newWorld(t, clusterOpts{n: 3})
	t.Run("Lifecycle", w.testLifecycle)
	t.Run("ConcurrentPowerAndForeignAccount", w.testConflictAndIsolation)
	t.Run("Scheduling", w.testScheduling)
	t.Run("AgentKilledDuringReinstall", w.testAgentKilled)
	t.Run("LeaderKilledDuringReinstall", w.testLeaderKilled)
}

// testLifecycle: create → boot → reboot → snapshot → revert → reinstall → stop →
// start → terminate; after each step libvirt agrees with the API, the guest's
// own markers show the step happened, and the event reaches the webhook.
func (w *world) testLifecycle(t *testing.T) {
	created := w.createServer(t, "life")
	id, vm := created.Server.ID, created.Server.VMName
	console := w.agent.ConsoleLog(vm)
	c := w.api(nil)
	first := boots(console)[0]
	if first.Count != "1" || first.InstallID == "" {
		t.Fatalf("first boot: %+v", first)
	}
	requireDomState(t, vm, "running")
	r := c.expect(http.StatusOK, http.MethodGet, "/v1/servers/"+id, nil)
	var s api.Server
	r.Decode(t, &s)
	if s.Plan.Slug != "nano" || s.OSTemplate != tplA || s.Label != "life" || s.ActionID != "" {
		t.Fatalf("server after create: %+v", s)
	}
	if strings.Contains(string(r.Body), vm) || strings.Contains(string(r.Body), w.agent.ID) {
		t.Fatalf("customer view leaks the vm name or node: %s", r.Body)
	}
	var list api.ServerList
	c.expect(http.StatusOK, http.MethodGet, "/v1/servers", nil).Decode(t, &list)
	if !slices.ContainsFunc(list.Data, func(s api.Server) bool { return s.ID == id }) {
		t.Fatalf("GET /v1/servers does not list %s: %+v", id, list.Data)
	}
	w.hooks.wait(t, "server.created", id, map[string]any{"status": nil, "label": "life"})

	// Reboot: a second boot marker, counter 2.
	acc := c.power(id, "reboot", nil)
	if acc.Action.Command != api.ActionServerReboot || acc.Server == nil || acc.Server.ID != id {
		t.Fatalf("reboot 202: %+v", acc)
	}
	// GET /v1/actions/{id} says how: the guest restarted on the ACPI
	// request, or was reset. While it runs it says "rebooting" (the guest's
	// ACPI restart may be too quick for a read to see it running).
	a, running := c.followTasks(id, acc.Action.ID, api.ActionTaskRebooting)
	if a.Method != api.NodeRebootGuest && a.Method != api.NodeRebootReset {
		t.Errorf("reboot of a running server: action method %q, want guest-acpi or reset", a.Method)
	}
	t.Logf("reboot: %d reads saw it running", running)
	if b := waitBoot(t, console, 2); b.Count != "2" || b.InstallID != first.InstallID {
		t.Fatalf("after reboot: %+v", b)
	}
	requireDomState(t, vm, "running")
	if s := c.server(id); s.Status != api.ServerRunning || s.ActionID != "" {
		t.Fatalf("after reboot: status %s action %q", s.Status, s.ActionID)
	}
	w.hooks.wait(t, "server.power.changed", id, map[string]any{"action": "reboot"})

	// Snapshot while running (disk counter 2).
	acc = c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.CreateServerSnapshot(ctx, id, api.SnapshotCreateRequest{Name: "after-boot-2", Description: "e2e"}, "")
	})
	if acc.Snapshot == nil || acc.Snapshot.ID == "" {
		t.Fatalf("snapshot 202 without snapshot: %+v", acc)
	}
	snapID := acc.Snapshot.ID
	_, running = c.followTasks(id, acc.Action.ID, api.ActionTaskSnapshotting)
	t.Logf("snapshot: %d reads saw it running", running)
	var snaps api.ServerSnapshotList
	snaps = c.snapshots(id)
	if len(snaps.Data) != 1 || snaps.Data[0].ID != snapID || snaps.Data[0].Name != "after-boot-2" {
		t.Fatalf("snapshots after create: %+v", snaps.Data)
	}
	if ls := libvirtSnapshots(t, vm); len(ls) != 1 {
		t.Fatalf("libvirt snapshots of %s: %v, want 1", vm, ls)
	}

	// Reboot again (counter 3), then revert: the disk goes back to 2.
	acc = c.power(id, "reboot", nil)
	c.waitSuccess(acc.Action.ID, actionTimeout)
	waitBoot(t, console, 3)
	disk := w.agent.DiskPath(vm)
	if got := testenv.ReadGuestFile(t, disk, "/bootcount"); got != "3" {
		t.Fatalf("disk bootcount before revert: %s, want 3", got)
	}
	acc = c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.RevertServerSnapshot(ctx, id, snapID, "")
	})
	if acc.Action.Command != api.ActionSnapshotRevert {
		t.Fatalf("revert 202: %+v", acc.Action)
	}
	_, running = c.followTasks(id, acc.Action.ID, api.ActionTaskReverting)
	t.Logf("revert: %d reads saw it running", running)
	if got := testenv.ReadGuestFile(t, disk, "/bootcount"); got != "2" {
		t.Fatalf("disk bootcount after revert: %s, want 2 (the snapshot's)", got)
	}
	requireDomState(t, vm, "running") // it was running when snapshotted
	if s := c.server(id); s.Status != api.ServerRunning {
		t.Fatalf("after revert: status %s, libvirt running", s.Status)
	}

	// Reinstall from the other template: new install-id, counter reset, snapshots gone.
	before := len(boots(console))
	r = c.expect(http.StatusAccepted, http.MethodPost, "/v1/servers/"+id+"/reinstall", api.ReinstallRequest{OSTemplate: tplB})
	r.Decode(t, &acc)
	if acc.RootPassword == "" || acc.Action.Command != api.ActionServerReinstall {
		t.Fatalf("reinstall 202: want a root password and a reinstall action: %s", r)
	}
	// A reinstall runs for seconds (new disk, swap, boot): reads see it
	// running, with a reinstall's task, and the server names it.
	_, running = c.followTasks(id, acc.Action.ID, api.ActionTaskPreparingDisk, api.ActionTaskReplacingDisk,
		api.ActionTaskRemovingOldDisk, api.ActionTaskStarting)
	if running == 0 {
		t.Errorf("reinstall %s: no read saw it running", acc.Action.ID)
	}
	t.Logf("reinstall: %d reads saw it running", running)
	b := waitBoot(t, console, before+1)
	if b.Count != "1" || b.InstallID == first.InstallID {
		t.Fatalf("after reinstall: %+v (first install %s)", b, first.InstallID)
	}
	requireDomState(t, vm, "running")
	if s := c.server(id); s.Status != api.ServerRunning || s.OSTemplate != tplB || s.ActionID != "" {
		t.Fatalf("after reinstall: status %s template %s action %q", s.Status, s.OSTemplate, s.ActionID)
	}
	snaps = c.snapshots(id)
	if len(snaps.Data) != 0 {
		t.Fatalf("API lists snapshots of the old disk after reinstall: %+v", snaps.Data)
	}
	if ls := libvirtSnapshots(t, vm); len(ls) != 0 {
		t.Fatalf("libvirt snapshots after reinstall: %v", ls)
	}
	w.hooks.wait(t, "server.reinstalled", id, map[string]any{"osTemplate": tplB, "os": nil})

	// Stop: graceful, shut off, status stopped.
	acc = c.power(id, "stop", nil)
	c.waitSuccess(acc.Action.ID, actionTimeout)
	requireDomState(t, vm, "shut off")
	if s := c.server(id); s.Status != api.ServerStopped {
		t.Fatalf("after stop: status %s, libvirt shut off", s.Status)
	}
	if log := framework.ReadFile(t, console); !strings.Contains(log, "clean-shutdown") {
		t.Fatal("stop did not shut the guest down through ACPI (no clean-shutdown in its console)")
	}
	w.hooks.wait(t, "server.power.changed", id, map[string]any{"action": "stop", "method": api.NodePowerGraceful})

	// bootStopped sends a power action to the stopped server and checks
	// that it boots: the action's method, a new boot marker, libvirt and
	// the API running, and the event with the data given.
	bootStopped := func(action, wantMethod string, event map[string]any) {
		t.Helper()
		n := len(boots(console))
		acc := c.power(id, action, nil)
		if a := c.waitSuccess(acc.Action.ID, actionTimeout); a.Method != wantMethod {
			t.Errorf("%s of a stopped server: action method %q, want %s", action, a.Method, wantMethod)
		}
		waitBoot(t, console, n+1)
		requireDomState(t, vm, "running")
		if s := c.server(id); s.Status != api.ServerRunning {
			t.Fatalf("after a %s while stopped: status %s", action, s.Status)
		}
		w.hooks.wait(t, "server.power.changed", id, event)
	}

	// Reboot while stopped: the node starts it (a fresh boot, not a
	// reboot), and the customer's action and event say so (method
	// "started"); then it is stopped again for the start below.
	bootStopped("reboot", api.NodeRebootStarted, map[string]any{"action": "reboot", "method": api.NodeRebootStarted})
	acc = c.power(id, "stop", nil)
	c.waitSuccess(acc.Action.ID, actionTimeout)
	requireDomState(t, vm, "shut off")

	// Start: it boots again.
	bootStopped("start", api.NodePowerStarted, map[string]any{"action": "start"})

	// Terminate: the domain is gone.
	acc = c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.TerminateServer(ctx, id, "")
	})
	if acc.Action.Command != api.ActionServerTerminate {
		t.Fatalf("terminate 202: %+v", acc.Action)
	}
	c.waitSuccess(acc.Action.ID, actionTimeout)
	requireDomState(t, vm, "missing")
	switch r := c.do(http.MethodGet, "/v1/servers/"+id, nil); r.Status {
	case http.StatusNotFound:
	case http.StatusOK:
		r.Decode(t, &s)
		if s.Status != api.ServerTerminated || s.TerminatedAt == nil {
			t.Fatalf("after terminate: %+v", s)
		}
	default:
		t.Fatalf("read after terminate: %s", r)
	}
	w.hooks.wait(t, "server.terminated", id, nil)
	c.expect(http.StatusOK, http.MethodGet, "/v1/servers", nil).Decode(t, &list)
	for _, s := range list.Data {
		if s.ID == id && s.Status != api.ServerTerminated {
			t.Fatalf("list after terminate: %+v", s)
		}
	}

	// The operator sees the work on the coordinators' /metrics (their own
	// listeners). The counters are a leader's: each is on the coordinator
	// that led when the action was sent or finished, so with a change of
	// leader during the test (an election under load) they are on the old
	// one, and an operator scrapes every coordinator. The gauges are the
	// current leader's.
	var all strings.Builder
	for _, p := range w.c.Nodes {
		if p.Alive() {
			all.WriteString(getText(t, p.MetricsURL()+"/metrics"))
		}
	}
	for _, want := range []string{
		`hostplane_actions_finished_total{command="server.reboot",status="success"}`,
		`hostplane_actions_finished_total{command="server.terminate",status="success"}`,
		`hostplane_action_sends_total{command="server.reinstall",resend="false"}`,
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no coordinator's /metrics has %s", want)
		}
	}
	leader := getText(t, w.c.Leader().MetricsURL()+"/metrics")
	for _, want := range []string{"hostplane_agent_sessions 1", "hostplane_actions_open 0"} {
		if !strings.Contains(leader, want) {
			t.Errorf("leader /metrics lacks %s", want)
		}
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// testConflictAndIsolation: two power requests at once get one 202 and one 409;
// another account sees 404 for the server on every route.
func (w *world) testConflictAndIsolation(t *testing.T) {
	created := w.createServer(t, "conflict")
	id := created.Server.ID
	c := w.api(nil)

	// A snapshot to aim the foreign requests at.
	acc := c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.CreateServerSnapshot(ctx, id, api.SnapshotCreateRequest{Name: "s1"}, "")
	})
	snapID := acc.Snapshot.ID
	c.waitSuccess(acc.Action.ID, actionTimeout)

	var wg sync.WaitGroup
	start := make(chan struct{})
	replies := make([]reply, 2)
	errs := make([]error, 2)
	for i, verb := range []string{"reboot", "stop"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i], errs[i] = c.try(http.MethodPost, "/v1/servers/"+id+"/power/"+verb, nil)
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	statuses := []int{replies[0].Status, replies[1].Status}
	slices.Sort(statuses)
	if statuses[0] != http.StatusAccepted || statuses[1] != http.StatusConflict {
		t.Fatalf("two concurrent power requests: want one 202 and one 409, got\n%s\n%s", replies[0], replies[1])
	}
	var won api.ActionAccepted
	for _, r := range replies {
		if r.Status == http.StatusConflict && r.Code() != "action_in_progress" {
			t.Errorf("409 code %q, want action_in_progress: %s", r.Code(), r)
		}
		if r.Status == http.StatusAccepted {
			r.Decode(t, &won)
		}
	}
	c.waitSuccess(won.Action.ID, actionTimeout)

	// Another account: 404 everywhere, indistinguishable from an unknown id.
	o := newAPIClient(t, w.c.AnyAlive(nil).URL(), w.other)
	unknown := o.do(http.MethodGet, "/v1/servers/srv_doesnotexist0000", nil)
	if unknown.Status != http.StatusNotFound {
		t.Fatalf("unknown server id: %s", unknown)
	}
	routes := []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/servers/" + id, nil},
		{http.MethodGet, "/v1/servers/" + id + "/stats", nil},
		{http.MethodGet, "/v1/servers/" + id + "/snapshots", nil},
		{http.MethodPost, "/v1/servers/" + id + "/snapshots", api.SnapshotCreateRequest{Name: "mine"}},
		{http.MethodPost, "/v1/servers/" + id + "/snapshots/" + snapID + "/revert", nil},
		{http.MethodDelete, "/v1/servers/" + id + "/snapshots/" + snapID, nil},
		{http.MethodPost, "/v1/servers/" + id + "/power/start", nil},
		{http.MethodPost, "/v1/servers/" + id + "/power/stop", nil},
		{http.MethodPost, "/v1/servers/" + id + "/power/reboot", nil},
		{http.MethodPost, "/v1/servers/" + id + "/reinstall", api.ReinstallRequest{OSTemplate: tplB}},
		{http.MethodPatch, "/v1/servers/" + id + "/label", api.LabelRequest{Label: "stolen"}},
		{http.MethodDelete, "/v1/servers/" + id, nil},
		{http.MethodGet, "/v1/actions/" + won.Action.ID, nil},
	}
	for _, rt := range routes {
		r := o.do(rt.method, rt.path, rt.body)
		if r.Status != http.StatusNotFound || r.Code() != unknown.Code() {
			t.Errorf("another account: want 404 (%s) like an unknown id: %s", unknown.Code(), r)
		}
	}
	var list api.ServerList
	o.expect(http.StatusOK, http.MethodGet, "/v1/servers", nil).Decode(t, &list)
	for _, s := range list.Data {
		if s.ID == id {
			t.Errorf("another account lists server %s", id)
		}
	}
	// Nothing happened to the owner's server.
	s := c.server(id)
	if s.Label != "conflict" || s.ActionID != "" || s.Status == api.ServerTerminated {
		t.Fatalf("owner's server after foreign requests: %+v", s)
	}
	snaps := c.snapshots(id)
	if len(snaps.Data) != 1 || snaps.Data[0].ID != snapID {
		t.Fatalf("owner's snapshots after foreign requests: %+v", snaps.Data)
	}
}

// testAgentKilled: the agent SIGKILLs itself right after a reinstall swapped the
// disk; restarted, it finishes that reinstall without running it again and the
// coordinators record the result.
func (w *world) testAgentKilled(t *testing.T) {
	created := w.createServer(t, "agentkill")
	id, vm := created.Server.ID, created.Server.VMName
	console := w.agent.ConsoleLog(vm)
	old := boots(console)[0]
	c := w.api(nil)

	w.agent.Stop()
	w.agent.Start("vm.reinstall:disk-swapped")
	w.waitNodeReady(30 * time.Second)
	acc := c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.ReinstallServer(ctx, id, api.ReinstallRequest{OSTemplate: tplB}, "")
	})
	w.agent.WaitExit(time.Minute)
	if !strings.Contains(framework.ReadFile(t, w.agent.LogPath()), "failpoint: killing the agent") {
		t.Fatalf("agent exited but not at the failpoint; log:\n%s", framework.Tail(w.agent.LogPath(), 30))
	}
	if a := c.waitActionOpen(acc.Action.ID); a.Finished() {
		t.Fatalf("action finished while its agent was dead: %+v", a)
	}

	w.agent.Start("")
	w.waitNodeReady(30 * time.Second)
	a := c.waitSuccess(acc.Action.ID, actionTimeout)
	b := waitBoot(t, console, 2)
	if b.Count != "1" || b.InstallID == old.InstallID {
		t.Fatalf("boot after the resumed reinstall: %+v (before: %+v)", b, old)
	}
	requireSingleInstall(t, console, old.InstallID)
	if s := c.server(id); s.Status != api.ServerRunning || s.OSTemplate != tplB || s.ActionID != "" {
		t.Fatalf("server after the resumed reinstall: %+v", s)
	}
	requireDomState(t, vm, "running")
	w.hooks.wait(t, "server.reinstalled", id, map[string]any{"osTemplate": tplB})
	t.Logf("reinstall %s resumed after an agent crash and recorded at %v", a.ID, a.FinishedAt)
}

// testLeaderKilled: the leader is SIGKILLed while a reinstall runs; the action
// finishes exactly once and every coordinator, the killed one included once it
// is back, reports its result.
func (w *world) testLeaderKilled(t *testing.T) {
	created := w.createServer(t, "leaderkill")
	id, vm := created.Server.ID, created.Server.VMName
	console := w.agent.ConsoleLog(vm)
	old := boots(console)[0]

	leader := w.c.Leader()
	follower := w.c.AnyAlive(leader)
	c := w.api(follower)
	acc := c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.ReinstallServer(ctx, id, api.ReinstallRequest{OSTemplate: tplB}, "")
	})
	a := c.waitActionRunning(acc.Action.ID, 30*time.Second)
	if a.Status != api.ActionRunning {
		t.Fatalf("reinstall was not seen running before the leader kill: %+v", a)
	}
	leader.Kill()
	killed := time.Now()
	newLeader := w.c.Leader()
	t.Logf("leader %s killed while the reinstall ran; %s leads after %s", leader.ID, newLeader.ID, time.Since(killed).Round(time.Millisecond))

	a = c.waitSuccess(acc.Action.ID, actionTimeout)
	b := waitBoot(t, console, 2)
	if b.Count != "1" || b.InstallID == old.InstallID {
		t.Fatalf("boot after the reinstall: %+v (before: %+v)", b, old)
	}
	// One more action through the new leader: had the reinstall been dispatched
	// again, it would have run before this one finished.
	r := c.power(id, "reboot", nil)
	c.waitSuccess(r.Action.ID, actionTimeout)
	waitBoot(t, console, 3)
	requireSingleInstall(t, console, old.InstallID)
	if s := c.server(id); s.Status != api.ServerRunning || s.OSTemplate != tplB {
		t.Fatalf("server after the reinstall across a leader kill: %+v", s)
	}
	w.waitNodeReady(30 * time.Second)
	requireLeaderKnowsTemplates(t, w.c.Leader(), w.account, w.agent.ID)

	// The killed coordinator comes back and serves the recorded result.
	if err := leader.Restart(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	back := w.api(leader)
	got := back.waitAction(acc.Action.ID, 30*time.Second)
	if got.Status != api.ActionSuccess || got.FinishedAt == nil || !got.FinishedAt.Equal(*a.FinishedAt) {
		t.Fatalf("restarted coordinator %s reports the reinstall as %+v, want %+v", leader.ID, got, a)
	}
	w.hooks.wait(t, "server.reinstalled", id, map[string]any{"osTemplate": tplB})
}

// requireSingleInstall fails unless the console shows exactly one install after
// oldInstall, and that install booted fresh (bootcount=1) exactly once: a second
// run of the reinstall would either bring another install-id or reset the
// counter again.
func requireSingleInstall(t *testing.T, console, oldInstall string) {
	t.Helper()
	var installs []string
	fresh := 0
	for _, b := range boots(console) {
		if b.InstallID == oldInstall {
			continue
		}
		if !slices.Contains(installs, b.InstallID) {
			installs = append(installs, b.InstallID)
		}
		if b.Count == "1" {
			fresh++
		}
	}
	if len(installs) != 1 || fresh != 1 {
		t.Fatalf("want exactly one reinstall booted fresh once; the console shows installs %v with %d fresh boots:\n%s",
			installs, fresh, framework.ReadFile(t, console))
	}
}

// waitActionOpen reads an action that is expected to be still open.
func (c *apiClient) waitActionOpen(id string) api.Action {
	c.t.Helper()
	return retry503(c, "read action "+id, func(ctx context.Context) (api.Action, error) { return c.cl.Action(ctx, id) })
}

// waitActionRunning polls an action until it leaves pending.
func (c *apiClient) waitActionRunning(id string, timeout time.Duration) api.Action {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a := c.waitActionOpen(id)
		if a.Status != api.ActionPending || time.Now().After(deadline) {
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// followTasks follows an action to success as waitSuccess does, checking on
// every read the current_task a customer sees: "queued" while pending, one of
// tasks while running, absent once finished. After the first read that shows
// it running it reads the server: if the next read of the action still shows
// it open, the server named it (action_id) when read. It returns the finished
// action and how many reads saw it running.
func (c *apiClient) followTasks(serverID, id string, tasks ...string) (api.Action, int) {
	c.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	running := 0
	var srv *api.Server // read while the action ran, not yet checked
	serverRead := false
	for {
		a := c.waitActionOpen(id)
		if srv != nil && !a.Finished() && srv.ActionID != id {
			c.t.Errorf("GET /v1/servers/%s while action %s (%s) ran: action_id %q", serverID, id, a.Command, srv.ActionID)
		}
		srv = nil
		switch a.Status {
		case api.ActionPending:
			if a.CurrentTask != api.ActionTaskQueued {
				c.t.Errorf("action %s (%s) pending: current_task %q, want %q", id, a.Command, a.CurrentTask, api.ActionTaskQueued)
			}
		case api.ActionRunning:
			running++
			if !slices.Contains(tasks, a.CurrentTask) {
				c.t.Errorf("action %s (%s) running: current_task %q, want one of %q", id, a.Command, a.CurrentTask, tasks)
			}
			if !serverRead {
				serverRead = true
				s := c.server(serverID)
				srv = &s
			}
		default:
			if a.CurrentTask != "" {
				c.t.Errorf("action %s (%s) %s: current_task %q, want none once finished", id, a.Command, a.Status, a.CurrentTask)
			}
			if a.Status != api.ActionSuccess {
				c.t.Fatalf("action %s (%s) ended %s: %+v", id, a.Command, a.Status, a.Error)
			}
			if a.Progress != 100 || a.FinishedAt == nil {
				c.t.Errorf("successful action %s: progress %d, finished_at %v", id, a.Progress, a.FinishedAt)
			}
			return a, running
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("action %s not finished after %s; last: %s (%s)", id, actionTimeout, a.Status, a.CurrentTask)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// requireLeaderKnowsTemplates: a leader (here, one elected after the agent's
// session was with another coordinator) learns which node holds which template
// from the whole inventory the agent sends on each new session, so node detail
// lists the node's templates and placement refuses a template no node holds
// (had the leader no inventory for the node, it would place the server there
// and let the agent fail it).
func requireLeaderKnowsTemplates(t *testing.T, leader *framework.CoordinatorProcess, account, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := leader.Admin()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := adm.AgentNodeDetail(ctx, node)
		if err == nil && slices.Contains(d.Templates, tplA) && slices.Contains(d.Templates, tplB) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader %s does not list templates %s, %s of node %s after 30s: %+v %v", leader.ID, tplA, tplB, node, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err := adm.CreateServer(ctx, api.AdminServerCreateRequest{AccountID: account, Plan: "nano", Template: "no-such-template", NodeID: node})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || !strings.Contains(ae.Message, `no template "no-such-template"`) {
		t.Fatalf("create on the new leader with a template node %s lacks: want 409 naming it, got %v", node, err)
	}
}
