package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestServerOrderPlacedAmongNodes: a server order reads the nodes once for
// its template's check and its placement (placeServerOrder); with two
// ready nodes whose agents report different templates, an order goes to
// the node offering its template, a template no node offers is the 400
// naming os_template before any placement, and a node that fits but lacks
// the template is never chosen.
func TestServerOrderPlacedAmongNodes(t *testing.T) {
	s := newSrvAPIWith(t, Config{NodeID: "n1"})
	s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_2", Hash: "h2", ExpiresAt: time.Now().Add(time.Hour)})
	s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_2", TokenHash: "h2", NodeID: "hv-b", CertSerial: "s2", CertNotAfter: time.Now().Add(24 * time.Hour)})
	for i, node := range []string{"hv-secret-node", "hv-b"} {
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: node, CertSerial: []string{"s1", "s2"}[i], Roles: []string{api.RoleKVM}, ProtocolVersion: 103,
			Capacity: api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}})
	}
	s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "vps-b", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "B",
		RetailMonthlyUsdCents: 1200, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}})
	acc, _ := s.account(api.ScopeOrdersWrite)
	deps, err := s.a.serverDeps()
	if err != nil {
		t.Fatal(err)
	}
	offered := map[string][]string{"hv-secret-node": {"ubuntu-24.04"}, "hv-b": {"debian-12"}}
	deps.NodeTemplates = func(id string) ([]string, bool) { t, ok := offered[id]; return t, ok }

	for tmpl, want := range map[string]string{"debian-12": "hv-b", "ubuntu-24.04": "hv-secret-node"} {
		for range 3 {
			p, err := s.a.placeServerOrder(api.ServerOrderRequest{PlanSlug: "vps-b", Hostname: "a.example.com", OSTemplate: tmpl}, acc, time.Now())
			if err != nil {
				t.Fatalf("order of %s: %v", tmpl, err)
			}
			p.deps.DropSecret(p.create.Action.ID)
			if got := p.create.Server.NodeID; got != want {
				t.Fatalf("an order of %s went to %s, want %s (the only node offering it)", tmpl, got, want)
			}
			if p.create.Server.OS != strings.Split(tmpl, "-")[0] {
				t.Fatalf("an order of %s shows OS %q", tmpl, p.create.Server.OS)
			}
		}
	}
	_, err = s.a.placeServerOrder(api.ServerOrderRequest{PlanSlug: "vps-b", Hostname: "a.example.com", OSTemplate: "centos-9"}, acc, time.Now())
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusBadRequest || !strings.Contains(he.msg, `"os_template"`) {
		t.Fatalf("an order of a template no node offers: %v, want the 400 naming os_template", err)
	}
	// The nodes read for the check are the state's, unchanged by the order.
	var nodes []store.AgentNode
	_ = s.a.state.Read(func(r store.ReadTx) (err error) { nodes, err = r.AgentNodes(); return })
	if len(nodes) != 2 {
		t.Fatalf("%d nodes in the state, want 2", len(nodes))
	}
	if got, _ := placementNodesOf(nodes, nil, "hv-b"); len(got) != 1 || got[0].ID != "hv-b" || nodes[0].ID != "hv-b" && nodes[1].ID != "hv-b" {
		t.Fatalf("placementNodesOf(hv-b) = %v over %v", got, nodes)
	}
	if nodes[0].ID != "hv-b" || nodes[1].ID != "hv-secret-node" {
		t.Fatalf("placementNodesOf changed the list it filtered: %v", nodes)
	}
}
