package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestSeed002ServerAsACyberPanelClient: the CyberPanel seed's VPS flow (plans
// and templates, create and poll the deployment, snapshots) by a client that
// knows only the seed and SPEC.md, on one coordinator and the scripted node.
// An order naming an unknown plan or template is a 400 naming the field that
// charges nothing. The deployment's progress never goes back and ends at 100
// with the server running. A snapshot created with a name and a description
// is listed with both; the same create sent again with its Idempotency-Key
// answers the first snapshot and makes no second one, and with another body
// is a 422 that makes nothing; names the seed's clients could send by
// mistake (empty, a path, a newline) are 400s naming name; a key without
// servers:write gets a 403 naming it, and another account a 404, neither
// making a snapshot; a deleted snapshot leaves the list.
func TestSeed002ServerAsACyberPanelClient(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Agents: true,
		AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second})
	r := rigOn(t, c, "s002srv", 2*time.Minute)
	c.StartTestAgent("s002-node-1", c.AgentAddrs()[0], "-kvm")
	adm := c.Admin(0)
	createProduct(r.ctx, t, adm, "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}})
	c.Credit(r.ctx, r.accA.ID, serverPrice)
	call := func(key, method, path string, body any, hdr map[string]string) framework.Reply {
		t.Helper()
		return r.call(0, key, method, path, body, hdr)
	}

	// Plans and templates.
	var prods struct {
		Data []api.Product `json:"data"`
	}
	call(r.keyA, "GET", "/v1/products", nil, nil).Decode(t, &prods)
	if len(prods.Data) != 1 || prods.Data[0].Slug != "vps-a" || prods.Data[0].Specs.VCPU != 1 || prods.Data[0].Specs.RAMMB != 256 || prods.Data[0].Specs.DiskGB != 1 {
		t.Errorf("GET /v1/products: %+v", prods.Data)
	}
	var tpls struct {
		Data []api.OSTemplate `json:"data"`
	}
	framework.WaitFor(t, "the node's template in GET /v1/os-templates", 20*time.Second, 100*time.Millisecond, func() bool {
		call(r.keyA, "GET", "/v1/os-templates", nil, nil).Decode(t, &tpls)
		return len(tpls.Data) == 1 && tpls.Data[0].Name == "base"
	})

	// Unknown plan or template: a 400 naming the field, nothing charged.
	before := r.charged(r.keyA)
	for _, bad := range []struct {
		field string
		body  map[string]any
	}{
		{"plan_slug", map[string]any{"plan_slug": "vps-none", "label": "web-1", "hostname": "web-1", "os_template": "base"}},
		{"os_template", map[string]any{"plan_slug": "vps-a", "label": "web-1", "hostname": "web-1", "os_template": "ubuntu-99.04"}},
	} {
		if rep := call(r.keyA, "POST", "/v1/servers", bad.body, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), bad.field) {
			t.Errorf("an order with an unknown %s: %s, want 400 naming it", bad.field, rep)
		}
	}
	if after := r.charged(r.keyA); after != before {
		t.Errorf("refused orders changed the account: %+v, was %+v", after, before)
	}

	// Create and poll the deployment.
	rep := call(r.keyA, "POST", "/v1/servers", serverBody("web-1"), map[string]string{"Idempotency-Key": "s002-order"})
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	var so api.ServerOrder
	rep.Decode(t, &so)
	srv := "/v1/servers/" + so.Server.ID
	last := -1
	var act api.Action
	framework.WaitFor(t, "the deployment", 60*time.Second, 20*time.Millisecond, func() bool {
		call(r.keyA, "GET", "/v1/actions/"+so.Action.ID, nil, nil).Decode(t, &act)
		if act.Progress < last || act.Progress < 0 || act.Progress > 100 {
			t.Fatalf("deployment progress went from %d to %d", last, act.Progress)
		}
		last = act.Progress
		return act.Finished()
	})
	var s api.Server
	call(r.keyA, "GET", srv, nil, nil).Decode(t, &s)
	if act.Status != api.ActionSuccess || act.Progress != 100 || act.FinishedAt == nil || s.Status != "running" {
		t.Fatalf("deployment finished %+v, server %s", act, s.Status)
	}

	// Snapshots.
	snaps := func() []api.ServerSnapshot {
		t.Helper()
		var l api.ServerSnapshotList
		call(r.keyA, "GET", srv+"/snapshots", nil, nil).Decode(t, &l)
		return l.Data
	}
	body := map[string]any{"name": "pre_upgrade_snapshot", "description": "Before upgrading to Ubuntu 24.04"}
	idem := map[string]string{"Idempotency-Key": "s002-snap-1"}
	rep = call(r.keyA, "POST", srv+"/snapshots", body, idem)
	if rep.Status != 202 {
		t.Fatalf("snapshot create: %s", rep)
	}
	var first api.ActionAccepted
	rep.Decode(t, &first)
	if first.Snapshot == nil {
		t.Fatalf("snapshot create answered no snapshot: %s", rep)
	}
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), first.Action.ID, 30*time.Second)
	rep = call(r.keyA, "POST", srv+"/snapshots", body, idem)
	var again api.ActionAccepted
	rep.Decode(t, &again)
	if rep.Status != 202 || rep.Header.Get("Idempotent-Replayed") != "true" || again.Snapshot == nil || again.Snapshot.ID != first.Snapshot.ID || again.Action.ID != first.Action.ID {
		t.Errorf("the same snapshot create again: %s, want the first answer (snapshot %s)", rep, first.Snapshot.ID)
	}
	other := map[string]any{"name": "other", "description": "another body"}
	if rep := call(r.keyA, "POST", srv+"/snapshots", other, idem); rep.Status != 422 || rep.Code() != "idempotency_key_reused" {
		t.Errorf("the key with another body: %s, want 422 idempotency_key_reused", rep)
	}
	for _, name := range []string{"", " lead", "../etc", "a/b", "snap\nx", strings.Repeat("n", 300)} {
		if rep := call(r.keyA, "POST", srv+"/snapshots", map[string]any{"name": name}, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), "name") {
			t.Errorf("snapshot name %q: %s, want 400 naming name", name, rep)
		}
	}
	ro := r.keyOfA(t, api.KeyCreateRequest{Scopes: []string{api.ScopeServersRead}})
	if rep := call(ro, "POST", srv+"/snapshots", map[string]any{"name": "ro"}, nil); rep.Status != 403 || !strings.Contains(string(rep.Body), "servers:write") {
		t.Errorf("a snapshot with a servers:read key: %s, want 403 naming servers:write", rep)
	}
	if rep := call(r.keyB, "POST", srv+"/snapshots", map[string]any{"name": "b"}, nil); rep.Status != 404 {
		t.Errorf("B's snapshot of A's server: %s, want 404", rep)
	}
	l := snaps()
	if len(l) != 1 || l[0].ID != first.Snapshot.ID || l[0].Name != "pre_upgrade_snapshot" || l[0].Description != "Before upgrading to Ubuntu 24.04" {
		t.Fatalf("snapshots after the creates: %+v, want the one with its name and description", l)
	}

	// Delete: gone from the list.
	rep = call(r.keyA, "DELETE", srv+"/snapshots/"+first.Snapshot.ID, nil, nil)
	r.accepted(t, "snapshot delete", r.keyA, rep, 30*time.Second)
	if l := snaps(); len(l) != 0 {
		t.Errorf("snapshots after the delete: %+v", l)
	}
}
