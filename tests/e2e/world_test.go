package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/testenv"
)

// world is a cluster, one enrolled agent with the test templates, an account
// with a key and a webhook receiver, and a second account for isolation checks.
type world struct {
	t       testing.TB
	c       *framework.ProcessCluster
	agent   *framework.AgentProcess
	account string // owner of the servers
	key     string
	other   string // key of another account
	hooks   hookReceiver
}

// Templates the agent holds: two distinct disks of the test guest.
const (
	tplA = "guest-a"
	tplB = "guest-b"
)

func newWorld(t testing.TB, opts clusterOpts) *world {
	t.Helper()
	testenv.RequireLibvirt(t)
	testenv.RequireGuest(t)
	w := &world{t: t, c: newCluster(t, opts)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := w.c.AnyAlive(nil).Admin()
	scopes := []string{api.ScopeAccountRead, api.ScopeServersRead, api.ScopeServersWrite, api.ScopeServersDestroy,
		api.ScopeWebhooksRead, api.ScopeWebhooksWrite}
	for i, email := range []string{"owner@example.com", "other@example.com"} {
		acc, err := adm.CreateAccount(ctx, api.AccountCreateRequest{Email: email})
		if err != nil {
			t.Fatalf("create account: %v", err)
		}
		k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: scopes})
		if err != nil {
			t.Fatalf("create key: %v", err)
		}
		if i == 0 {
			w.account, w.key = acc.ID, k.Key
		} else {
			w.other = k.Key
		}
	}

	tok, err := adm.CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "e2e"})
	if err != nil {
		t.Fatalf("create join token: %v", err)
	}
	w.agent = framework.NewAgentProcess(t, framework.AgentBinary(t), w.c.AgentAddrs(), tok.Token)
	w.agent.StatsInterval = opts.agentStats
	w.agent.ConsoleListen = framework.FreeAddr(t, "tcp")
	w.agent.Bridges = opts.bridges
	w.agent.Start("")
	w.waitNodeReady(30 * time.Second)
	w.agent.ImportTemplate(tplA, w.agent.Guest.Disk)
	w.agent.ImportTemplate(tplB, w.agent.Guest.DiskAlt)
	// The coordinators learn the templates from the node's inventory.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := adm.AgentNodeDetail(ctx, w.agent.ID)
		if err == nil && slices.Contains(d.Templates, tplA) && slices.Contains(d.Templates, tplB) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s does not list templates %s, %s after 30s: %+v %v", w.agent.ID, tplA, tplB, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.hooks = hookReceiver{framework.NewWebhookReceiver(t)}
	r := w.api(nil).expect(http.StatusCreated, http.MethodPost, "/v1/webhooks",
		api.WebhookCreateRequest{URL: w.hooks.URL + "/hook", Events: []string{api.WebhookEventAll}, Description: "e2e"})
	_ = r
	return w
}

// api is a client with the owner's key against p (nil: any live coordinator).
func (w *world) api(p *framework.CoordinatorProcess) *apiClient {
	if p == nil {
		p = w.c.AnyAlive(nil)
	}
	return newAPIClient(w.t, p.URL(), w.key)
}

// waitNodeReady waits until the agent's node is ready and holds a session.
func (w *world) waitNodeReady(timeout time.Duration) api.AgentNode {
	w.t.Helper()
	return w.c.WaitNode(w.agent.ID, timeout, "ready and connected", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected
	})
}

// createServer places and provisions a nano server for the owner through the
// admin API, waits until it runs and its guest printed its first boot marker.
// The server is terminated (and its domain removed) when the test ends.
func (w *world) createServer(t testing.TB, label string) api.AdminServerCreated {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := w.c.AnyAlive(nil).Admin().CreateServer(ctx, api.AdminServerCreateRequest{AccountID: w.account, Plan: "nano",
		Template: tplA, Label: label, Hostname: label})
	if err != nil {
		t.Fatalf("admin create server: %v", err)
	}
	if created.Server.VMName == "" || created.Server.NodeID != w.agent.ID || created.Action.ID == "" {
		t.Fatalf("admin create server: want node %s, a vm name and an action: %+v", w.agent.ID, created)
	}
	vm := created.Server.VMName
	testenv.Cleanup(t, vm, "") // after the API terminate below, if that failed
	t.Cleanup(func() { w.terminateQuietly(created.Server.ID) })
	c := w.api(nil)
	c.waitSuccess(created.Action.ID, 2*time.Minute)
	if s := c.server(created.Server.ID); s.Status != api.ServerRunning {
		t.Fatalf("server after provisioning: status %s, want running", s.Status)
	}
	waitBoot(t, w.agent.ConsoleLog(vm), 1)
	return created
}

// terminateQuietly terminates a server if it still exists (cleanup).
func (w *world) terminateQuietly(id string) {
	c := w.api(nil)
	r, err := c.try(http.MethodDelete, "/v1/servers/"+id, nil)
	if err != nil || r.Status != http.StatusAccepted {
		return
	}
	var acc api.ActionAccepted
	if json.Unmarshal(r.Body, &acc) == nil {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			r, err := c.try(http.MethodGet, "/v1/actions/"+acc.Action.ID, nil)
			var a api.Action
			if err == nil && json.Unmarshal(r.Body, &a) == nil && a.Finished() {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// Guest evidence.

// boots lists the guest's boot markers in its console log (testenv.Boots).
func boots(consoleLog string) []testenv.Boot {
	b, _ := os.ReadFile(consoleLog)
	return testenv.Boots(string(b))
}

// waitBoot waits for the n-th boot marker of the guest and returns it. A TCG
// guest boots in seconds on an idle machine, and took 96.5 s from a reboot's
// reset to its marker at load 34–41 (tests/upgrade's bootWait): 3 minutes.
func waitBoot(t testing.TB, consoleLog string, n int) testenv.Boot {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if bs := boots(consoleLog); len(bs) >= n {
			return bs[n-1]
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(consoleLog)
			t.Fatalf("guest boot #%d not seen in %s after 3m; console:\n%s", n, consoleLog, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// virsh runs a read-only virsh command against the system libvirtd.
func virsh(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// domState is libvirt's state of a domain ("running", "shut off"), or "missing".
func domState(name string) string {
	out, err := virsh("domstate", name)
	if err != nil {
		if _, err := virsh("dominfo", name); err != nil {
			return "missing"
		}
		return "error: " + out
	}
	return out
}

// requireDomState fails unless the domain is in state (libvirt settles within
// a few seconds after an action reports success, so it is polled briefly).
func requireDomState(t testing.TB, name, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := domState(name)
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirt domain %s is %q, want %q", name, got, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// libvirtSnapshots lists a domain's snapshot names.
func libvirtSnapshots(t testing.TB, name string) []string {
	t.Helper()
	out, err := virsh("snapshot-list", name, "--name")
	if err != nil {
		t.Fatalf("virsh snapshot-list %s: %v %s", name, err, out)
	}
	return strings.Fields(out)
}

// Webhooks.

// hookReceiver is the account's webhook endpoint.
type hookReceiver struct{ *framework.WebhookReceiver }

// wait waits for an event of type typ about server id whose data has every
// field of want (nil values: present, any value).
func (h hookReceiver) wait(t testing.TB, typ, serverID string, want map[string]any) framework.WebhookDelivery {
	t.Helper()
	return h.Wait(t, typ, 20*time.Second, func(d map[string]any) bool {
		if d["serverId"] != serverID {
			return false
		}
		for k, v := range want {
			if got, has := d[k]; !has || (v != nil && got != v) {
				return false
			}
		}
		return true
	})
}
