package audit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe10ActionPagesUnderInsertsAndALeaderKill: GET /v1/actions pages
// by cursor (the next_cursor of the page before). A client walks it with
// limit=2 through a follower while the account starts a power action
// between two of its page requests, and the leader is killed in the middle
// of the walk: no action is seen twice, and every action that existed
// before the walk is seen. A cursor of another list (a ticket's id) is a 400
// naming cursor; another account's action is the 404 an unknown one gets.
func TestProbe10ActionPagesUnderInsertsAndALeaderKill(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout, Agents: true,
		AgentPing: 200 * time.Millisecond, AgentGrace: 5 * time.Second})
	r := rigOn(t, c, "p10act", 4*time.Minute)
	c.StartTestAgent("p10-act-node", strings.Join(c.AgentAddrs(), ","), "-kvm")
	createProduct(r.ctx, t, c.AnyAlive(nil).Admin(), "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}})
	c.Credit(r.ctx, r.accA.ID, serverPrice)
	f := r.follower()
	framework.WaitFor(t, "the node's template", 20*time.Second, 100*time.Millisecond, func() bool {
		var tpls struct {
			Data []api.OSTemplate `json:"data"`
		}
		r.call(f, r.keyA, "GET", "/v1/os-templates", nil, nil).Decode(t, &tpls)
		return len(tpls.Data) == 1
	})
	rep := r.call(f, r.keyA, "POST", "/v1/servers", serverBody("web-1"), map[string]string{"Idempotency-Key": "p10-order"})
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	var so api.ServerOrder
	rep.Decode(t, &so)
	framework.WaitActionSuccess(t, r.apis[f].Client(r.keyA), so.Action.ID, 60*time.Second)
	n := 0
	power := func() string {
		t.Helper()
		n++
		var acc api.ActionAccepted
		rep := r.call(f, r.keyA, "POST", "/v1/servers/"+so.Server.ID+"/power/reboot", nil, map[string]string{"Idempotency-Key": fmt.Sprintf("p10-power-%d", n)})
		if rep.Status != 202 {
			t.Fatalf("power reboot %d: %s", n, rep)
		}
		rep.Decode(t, &acc)
		framework.WaitActionSuccess(t, r.apis[f].Client(r.keyA), acc.Action.ID, 60*time.Second)
		return acc.Action.ID
	}
	before := []string{so.Action.ID}
	for range 6 {
		before = append(before, power())
	}

	seen := map[string]int{}
	cursor := ""
	for page := 0; page < 30; page++ {
		var l api.ActionList
		r.get(t, f, r.keyA, "/v1/actions?limit=2&cursor="+cursor, &l)
		for _, a := range l.Data {
			seen[a.ID]++
		}
		if l.NextCursor == nil {
			break
		}
		cursor = *l.NextCursor
		if page == 1 {
			ld, err := c.LeaderIndex(20 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Kill(ld)
		}
		power()
	}
	checkWalkSawEachOnce(t, "action", seen, before)

	tk := r.ticket(f, r.keyA, "not an action")
	if rep := r.call(f, r.keyA, "GET", "/v1/actions?cursor="+tk.ID, nil, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), "cursor") {
		t.Errorf("a ticket id as the cursor: %s; want a 400 naming cursor", rep)
	}
	other := r.call(f, r.keyB, "GET", "/v1/actions?cursor="+before[1], nil, nil)
	none := r.call(f, r.keyB, "GET", "/v1/actions?cursor="+unknown(before[1]), nil, nil)
	if other.Status != 404 || none.Status != 404 || !sameError(string(other.Body), string(none.Body), before[1]) {
		t.Errorf("another account's action as the cursor: %s; an unknown one: %s; want the same 404", other, none)
	}
}
