package orders

import (
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestOrdersByLocation: with two nodes in two locations (one put there with
// `hostplanectl node location`, one through the admin API), a server or
// hosting order for a location lands on that location's node and shows it
// (api.Server.location, api.HostingAccount.location); a
// product offered in some locations places its orders only there; a location
// no node is in is a 409 no_capacity that charges nothing, one the product is
// not offered in a 400 naming location. Before, the location was only checked
// against the product's list and the order went to whichever node had the
// most room.
func TestOrdersByLocation(t *testing.T) {
	r := newRig(t)
	adm := r.c.AnyAlive(nil).Admin()
	r.c.StartTestAgent("orders-node-2", strings.Join(r.c.AgentAddrs(), ","), "-kvm", "-hosting")
	// The CLI on one node (a usage error without a location, then the set),
	// the client for the other.
	ctl := framework.Ctl(t)
	if out, err := exec.Command(ctl, "node", "location", "--admin-socket", r.c.Nodes[1].AdminSocket(), "orders-node-1").CombinedOutput(); err == nil || !strings.Contains(string(out), "--clear") {
		t.Fatalf("node location without a location: %v %s, want a usage error naming --clear", err, out)
	}
	if out, err := exec.Command(ctl, "node", "location", "--admin-socket", r.c.Nodes[1].AdminSocket(), "orders-node-1", "ist-1").CombinedOutput(); err != nil || !strings.Contains(string(out), "location ist-1") {
		t.Fatalf("hostplanectl node location orders-node-1 ist-1: %v %s", err, out)
	}
	if _, err := adm.SetNodeLocation(r.ctx, "orders-node-2", "fra-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.SetNodeLocation(r.ctx, "orders-node-2", "fra 1\n"); err == nil || !strings.Contains(err.Error(), `"location"`) {
		t.Fatalf("a location with a newline: %v, want a 400 naming location", err)
	}
	if n, err := r.c.AnyAlive(nil).Admin().AgentNode(r.ctx, "orders-node-1"); err != nil || n.Location != "ist-1" {
		t.Fatalf("orders-node-1: %+v %v, want location ist-1", n, err)
	}
	nodeListLocations(t, ctl, r.c.Nodes[0].AdminSocket(), map[string]string{"orders-node-1": "ist-1", "orders-node-2": "fra-1"})
	if _, err := adm.CreateProduct(r.ctx, "vps-fra", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS Fra", RetailMonthlyUsdCents: 400,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}, Locations: []string{"fra-1"}}); err != nil {
		t.Fatal(err)
	}
	r.credit(100_000)
	nodeOf := func(id string) string {
		t.Helper()
		ss, err := adm.Servers(r.ctx, r.acc, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.ID == id {
				return s.NodeID
			}
		}
		t.Fatalf("server %s not in the admin list", id)
		return ""
	}
	onNode := map[string]string{} // server or hosting id → its node
	for i, tc := range []struct {
		plan, location, node, shows string
	}{
		{"vps-t", "fra-1", "orders-node-2", "fra-1"},
		{"vps-t", "ist-1", "orders-node-1", "ist-1"},
		{"vps-t", "ist-1", "orders-node-1", "ist-1"},
		{"vps-fra", "", "orders-node-2", "fra-1"}, // the product's only location
		{"vps-fra", "fra-1", "orders-node-2", "fra-1"},
	} {
		req := order(100 + i)
		req.PlanSlug, req.Location = tc.plan, tc.location
		// A key of its own and a resend after node_reconnecting (resent), as a
		// customer orders across a leader change.
		o, err := resent(r, "order", func(key string) (api.ServerOrder, error) { return r.api(i%3).OrderServer(r.ctx, req, key) })
		if err != nil {
			t.Fatalf("%s in %q: %v", tc.plan, tc.location, err)
		}
		if got := nodeOf(o.Server.ID); got != tc.node || o.Server.Location != tc.shows {
			t.Errorf("%s in %q: on %s showing location %q, want %s showing %q", tc.plan, tc.location, got, o.Server.Location, tc.node, tc.shows)
		}
		if s, err := r.api(2).Server(r.ctx, o.Server.ID); err != nil || s.Location != tc.shows {
			t.Errorf("GET server %s: location %q %v, want %q", o.Server.ID, s.Location, err, tc.shows)
		}
		onNode[o.Server.ID] = tc.node
	}
	before, n := r.balance(), len(r.servers())
	for _, tc := range []struct {
		plan, location string
		status         int
		says           string
	}{
		{"vps-t", "ams-1", http.StatusConflict, "no"},             // no node there
		{"vps-fra", "ist-1", http.StatusBadRequest, `"location"`}, // not offered there
	} {
		req := order(200)
		req.PlanSlug, req.Location = tc.plan, tc.location
		_, err := r.api(1).OrderServer(r.ctx, req, "")
		if st, msg := status(err); st != tc.status || !strings.Contains(msg, tc.says) || strings.Contains(msg, "orders-node") {
			t.Errorf("%s in %s: %d %s, want %d saying %s (and no node name)", tc.plan, tc.location, st, msg, tc.status, tc.says)
		}
	}
	if b, m := r.balance(), len(r.servers()); b != before || m != n {
		t.Fatalf("refused orders changed the account: balance %d → %d, servers %d → %d", before, b, n, m)
	}
	// A quote answers as the order: a location no node is in is the
	// order's 409 no_capacity (not a price for what cannot be bought), one
	// a node is in a price.
	r.hostingProduct()
	quoteLocations(t, r, map[string]int{"fra-1": http.StatusOK, "ist-1": http.StatusOK, "ams-1": http.StatusConflict}, "vps-t", "web-t")
	quoteLocations(t, r, map[string]int{"": http.StatusOK, "fra-1": http.StatusOK, "ist-1": http.StatusBadRequest}, "vps-fra", "")

	// Hosting: the same choice.
	for i, loc := range []string{"fra-1", "ist-1"} {
		req := hostingOrder([]string{"fraweb", "istweb"}[i])
		req.Location = loc
		o, err := resent(r, "hosting-order", func(key string) (api.HostingOrder, error) { return r.api(i).OrderHosting(r.ctx, req, key) })
		if err != nil {
			t.Fatalf("hosting in %s: %v", loc, err)
		}
		hs, err := adm.ListHosting(r.ctx, r.acc)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"fra-1": "orders-node-2", "ist-1": "orders-node-1"}[loc]
		for _, h := range hs {
			if h.ID == o.Hosting.ID && (h.NodeID != want || h.Location != loc) {
				t.Errorf("hosting in %s went to %s showing location %q, want %s showing %s", loc, h.NodeID, h.Location, want, loc)
			}
		}
		// The customer sees the location, in the order's answer and after.
		if o.Hosting.Location != loc {
			t.Errorf("hosting order in %s answers location %q", loc, o.Hosting.Location)
		}
		if h, err := r.api(2).HostingAccount(r.ctx, o.Hosting.ID); err != nil || h.Location != loc {
			t.Errorf("GET hosting %s: location %q %v, want %s", o.Hosting.ID, h.Location, err, loc)
		}
		onNode[o.Hosting.ID] = want
	}
	req := hostingOrder("amsweb")
	req.Location = "ams-1"
	if _, err := r.api(2).OrderHosting(r.ctx, req, ""); func() bool { st, _ := status(err); return st != http.StatusConflict }() {
		t.Errorf("hosting in ams-1 (no node there): %v, want 409", err)
	}
	// An operator's hosting account in a location (hostplanectl hosting
	// create --location) is placed as an order is; ams-1 (no node there) is
	// a 409 and a location outside the rule a usage error naming the flag,
	// neither creating anything.
	sock := r.c.Nodes[1].AdminSocket()
	hostingCreate := func(user, loc string) ([]byte, error) {
		return exec.Command(ctl, "--socket", sock, "--json", "hosting", "create", "--account", r.acc, "--plan", "hosting-starter",
			"--domain", user+".example", "--username", user, "--location", loc).CombinedOutput()
	}
	for _, tc := range []struct{ user, loc, node string }{{"admfra", "fra-1", "orders-node-2"}, {"admist", "ist-1", "orders-node-1"}, {"admfrb", "fra-1", "orders-node-2"}} {
		out, err := hostingCreate(tc.user, tc.loc)
		var h api.AdminHostingCreated
		if err != nil || json.Unmarshal(out, &h) != nil || h.NodeID != tc.node || h.Hosting.Location != tc.loc {
			t.Errorf("hostplanectl hosting create --location %s: %v %s, want it on %s showing %s", tc.loc, err, out, tc.node, tc.loc)
		}
	}
	hs, err := adm.ListHosting(r.ctx, r.acc)
	if err != nil {
		t.Fatal(err)
	}
	// The operator is told why each node was passed over, in the words
	// server placement uses (placement.Outside).
	for _, tc := range []struct{ loc, says string }{{"ams-1", "no_capacity"}, {"ams-1", "orders-node-1: in location ist-1 (not ams-1)"}, {"fra/1", "--location: 400"}} {
		out, err := hostingCreate("admams", tc.loc)
		if err == nil || !strings.Contains(string(out), tc.says) {
			t.Errorf("hostplanectl hosting create --location %s: %v %s, want an error saying %s", tc.loc, err, out, tc.says)
		}
	}
	if after, err := adm.ListHosting(r.ctx, r.acc); err != nil || len(after) != len(hs) {
		t.Errorf("refused hosting creates left %d accounts, had %d (%v)", len(after), len(hs), err)
	}

	// Out of its location, a node takes no order that asks for one.
	if _, err := adm.SetNodeLocation(r.ctx, "orders-node-2", ""); err != nil {
		t.Fatal(err)
	}
	// What is on it is where it is: its servers and hosting accounts show
	// no location now, on every coordinator, one by one and in the lists;
	// orders-node-1's keep ist-1.
	locationsShown(t, r, onNode, map[string]string{"orders-node-1": "ist-1", "orders-node-2": ""})
	nodeListLocations(t, ctl, r.c.Nodes[2].AdminSocket(), map[string]string{"orders-node-1": "ist-1", "orders-node-2": "-"})
	req2 := order(300)
	req2.Location = "fra-1"
	if _, err := r.api(0).OrderServer(r.ctx, req2, ""); func() bool { st, _ := status(err); return st != http.StatusConflict }() {
		t.Errorf("fra-1 after its node left it: %v, want 409", err)
	}
	// Nor is it quoted: vps-fra (offered in fra-1 only) and fra-1 are the
	// order's 409.
	quoteLocations(t, r, map[string]int{"": http.StatusConflict, "fra-1": http.StatusConflict}, "vps-fra", "")
	quoteLocations(t, r, map[string]int{"fra-1": http.StatusConflict, "ist-1": http.StatusOK}, "vps-t", "web-t")

	// Moved into another location, they show that one.
	if _, err := adm.SetNodeLocation(r.ctx, "orders-node-2", "ams-1"); err != nil {
		t.Fatal(err)
	}
	locationsShown(t, r, onNode, map[string]string{"orders-node-1": "ist-1", "orders-node-2": "ams-1"})
}

// locationsShown checks that every server and hosting account of onNode
// (id → node) shows its node's location in want, through each coordinator:
// GET /v1/servers/{id} and /v1/hosting/{id}, and the lists. Before, they
// kept the location recorded when they were placed after their node moved.
func locationsShown(t *testing.T, r *rig, onNode map[string]string, want map[string]string) {
	t.Helper()
	for i := range r.c.Len() {
		c := r.api(i)
		listed := map[string]string{}
		for _, s := range r.serversAt(c) {
			listed[s.ID] = s.Location
		}
		hl, err := c.Hosting(r.ctx, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hl.Data {
			listed[h.ID] = h.Location
		}
		for id, node := range onNode {
			var got string
			if strings.HasPrefix(id, "srv_") {
				s, err := c.Server(r.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				got = s.Location
			} else {
				h, err := c.HostingAccount(r.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				got = h.Location
			}
			if got != want[node] || listed[id] != want[node] {
				t.Errorf("coordinator %d: %s on %s shows location %q (listed %q), want %q", i, id, node, got, listed[id], want[node])
			}
		}
	}
}

// quoteLocations quotes a server order of plan (and a hosting order of
// hostingPlan, unless "") in each location of want ("": none), wanting its
// status; a 409 must be the order's no_capacity, naming no node.
func quoteLocations(t *testing.T, r *rig, want map[string]int, plan, hostingPlan string) {
	t.Helper()
	for loc, st := range want {
		req := order(400)
		req.PlanSlug, req.Location = plan, loc
		_, err := r.api(1).QuoteServer(r.ctx, req)
		check := func(what string, err error) {
			t.Helper()
			got, msg := status(err)
			if err == nil {
				got = http.StatusOK
			}
			var ae *api.Error
			if got != st || st == http.StatusConflict && (!errors.As(err, &ae) || ae.Code != "no_capacity" || strings.Contains(msg, "orders-node")) {
				t.Errorf("%s quote in %q: %d %s, want %d (409 the order's no_capacity, no node named)", what, loc, got, msg, st)
			}
		}
		check(plan, err)
		if hostingPlan != "" {
			h := hostingOrder("quoteweb")
			h.PlanSlug, h.Location = hostingPlan, loc
			_, err := r.api(2).QuoteHosting(r.ctx, h)
			check(hostingPlan, err)
		}
	}
}

// nodeListLocations checks the LOCATION column of `hostplanectl node list`
// ("-" for a node in none) against want, node by node.
func nodeListLocations(t *testing.T, ctl, sock string, want map[string]string) {
	t.Helper()
	out, err := exec.Command(ctl, "node", "list", "--admin-socket", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("hostplanectl node list: %v %s", err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := strings.Index(lines[0], "LOCATION")
	if col < 0 {
		t.Fatalf("hostplanectl node list has no LOCATION column:\n%s", out)
	}
	got := map[string]string{}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && len(l) > col {
			got[f[0]] = strings.Fields(l[col:])[0]
		}
	}
	for id, loc := range want {
		if got[id] != loc {
			t.Errorf("hostplanectl node list shows %s in location %q, want %q:\n%s", id, got[id], loc, out)
		}
	}
}
