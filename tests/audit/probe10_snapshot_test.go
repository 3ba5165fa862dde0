package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/hostplane/hostplane/tests/framework"
)

// agentSnapshotDescription is the rule the node agent applies to a
// snapshot's description before it takes the snapshot
// (agent/internal/ops/snapshots.go): a description it refuses fails the
// snapshot.create action after the customer's 202.
func agentSnapshotDescription(d string) error { return validate.Text("description", d, 1024) }

// TestProbe10SnapshotDescriptionTheNodeTakes: a client written from the
// schema (description: a string of at most 500 characters) sends
// descriptions with a line break, a carriage return, or 500 four-byte
// characters. Each is either refused by POST /v1/servers/:id/snapshots
// with a 400 naming description, making no snapshot, or one the node agent
// takes: never a 202 whose action the agent then fails (the scripted node
// here takes every action, so the agent's own check is asked). Before, all
// three were accepted, and a real node refused each ("description contains
// control characters", "longer than 1024 bytes"). A description of 500
// two-byte characters, one with a tab, and hostileText (bidi override, C1
// controls: the node takes them; hostplanectl prints them safely) are
// still taken.
func TestProbe10SnapshotDescriptionTheNodeTakes(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Agents: true,
		AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second})
	r := rigOn(t, c, "p10snap", 2*time.Minute)
	c.StartTestAgent("p10-node-1", c.AgentAddrs()[0], "-kvm")
	createProduct(r.ctx, t, c.Admin(0), "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}})
	c.Credit(r.ctx, r.accA.ID, serverPrice)
	framework.WaitFor(t, "the node's template", 20*time.Second, 100*time.Millisecond, func() bool {
		var tpls struct {
			Data []api.OSTemplate `json:"data"`
		}
		r.call(0, r.keyA, "GET", "/v1/os-templates", nil, nil).Decode(t, &tpls)
		return len(tpls.Data) == 1
	})
	rep := r.write(0, r.keyA, "POST", "/v1/servers", serverBody("web-1"))
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	var so api.ServerOrder
	rep.Decode(t, &so)
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), so.Action.ID, 60*time.Second)
	srv := "/v1/servers/" + so.Server.ID
	count := func() int {
		var l api.ServerSnapshotList
		r.get(t, 0, r.keyA, srv+"/snapshots", &l)
		return len(l.Data)
	}

	for i, d := range []string{"before the upgrade\nand after", "carriage\rreturn", strings.Repeat("😀", 500), strings.Repeat("ğ", 500), "tab\there", hostileText} {
		before := count()
		rep := r.call(0, r.keyA, "POST", srv+"/snapshots", map[string]any{"name": "s" + string(rune('a'+i)), "description": d}, nil)
		switch rep.Status {
		case 400:
			if !strings.Contains(rep.DecodeError(t).Message, `"description"`) {
				t.Errorf("description %.40q: %s; a 400 must name description", d, rep)
			}
			if agentSnapshotDescription(d) == nil {
				t.Errorf("description %.40q (%d bytes): refused, but the node takes it: %s", d, len(d), rep)
			}
			if after := count(); after != before {
				t.Errorf("description %.40q: refused, yet %d snapshots, were %d", d, after, before)
			}
		case 202:
			t.Logf("description %.40q: 202", d)
			if err := agentSnapshotDescription(d); err != nil {
				t.Errorf("description %.40q (%d bytes): 202, but the node refuses it (%v): the snapshot would fail after the customer was told it is under way", d, len(d), err)
			}
			var acc api.ActionAccepted
			rep.Decode(t, &acc)
			framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), acc.Action.ID, 30*time.Second)
		default:
			t.Errorf("description %.40q: %s; want 400 or 202", d, rep)
		}
	}
}
