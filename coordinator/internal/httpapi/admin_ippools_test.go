package httpapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func TestParsePlanAddresses(t *testing.T) {
	got, err := ParsePlanAddresses("nano=1/0, large=2/1")
	if err != nil || got["nano"] != (PlanAddrs{1, 0}) || got["large"] != (PlanAddrs{2, 1}) || len(got) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParsePlanAddresses(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %+v %v", got, err)
	}
	for _, bad := range []string{"nano", "nano=1", "huge=1/1", "nano=-1/0", "nano=1/17", "nano=a/b", "=1/1"} {
		if _, err := ParsePlanAddresses(bad); err == nil || !strings.Contains(err.Error(), "plan-addresses") {
			t.Errorf("%q: want an error naming plan-addresses, got %v", bad, err)
		}
	}
}

// TestPlacementByBridge: a node that reports bridges is placed only when a
// pool serves one of them; a node that reports none keeps today's behaviour
// (placed, no pool address unless a bridgeless pool serves it).
func TestPlacementByBridge(t *testing.T) {
	node := func(id string, bridges ...string) placement.Candidate {
		return placement.Candidate{Connected: true, Node: api.AgentNode{ID: id, State: api.AgentNodeReady, Roles: []string{"kvm"}, Bridges: bridges,
			Capacity: api.AgentNodeCapacity{VCPUs: 8, MemoryBytes: 16 << 30, DiskBytes: 100 << 30}}}
	}
	pool := func(name, cidr, gw, bridge string, nodes ...string) store.IPPool {
		return store.IPPool{Pool: ipam.Pool{Name: name, CIDR: cidr, Gateway: gw, Bridge: bridge, Nodes: nodes}}
	}
	pools := []store.IPPool{
		pool("pub4", "198.51.100.0/24", "198.51.100.1", "br-pub"),
		pool("pub6", "2001:db8::/48", "fe80::1", "br-pub"),
		pool("hv3only", "203.0.113.0/24", "203.0.113.1", "", "hv-3"),
	}
	cands := []placement.Candidate{node("hv-1", "br-pub"), node("hv-2", "br-other"), node("hv-3"), node("hv-4")}
	served := poolsFor(cands, pools, DefaultPlanAddrs)
	if f := served["hv-1"]; !slices.Equal(f[0], []string{"pub4"}) || !slices.Equal(f[1], []string{"pub6"}) || cands[0].Unfit != "" {
		t.Fatalf("hv-1 (br-pub): %v %q", f, cands[0].Unfit)
	}
	if !strings.Contains(cands[1].Unfit, "no IPv4 pool on its bridges (br-other)") {
		t.Fatalf("hv-2 (br-other) should be unfit: %q", cands[1].Unfit)
	}
	if f := served["hv-3"]; !slices.Equal(f[0], []string{"hv3only"}) || len(f[1]) != 0 || cands[2].Unfit != "" {
		t.Fatalf("hv-3 (no bridge, a bridgeless pool for it): %v %q", f, cands[2].Unfit)
	}
	if f := served["hv-4"]; len(f[0])+len(f[1]) != 0 || cands[3].Unfit != "" {
		t.Fatalf("hv-4 (no bridge): %v %q", f, cands[3].Unfit)
	}
	// Choose skips the unfit node and says why.
	_, err := placement.Choose(cands[1:2], api.ServerPlan{Slug: "nano", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, "t", placement.Policy{})
	if err == nil || !strings.Contains(err.Error(), "hv-2: no IPv4 pool on its bridges") {
		t.Fatalf("choose among unfit nodes: %v", err)
	}
	// A plan that takes no IPv6 prefix does not need an IPv6 pool.
	cands = []placement.Candidate{node("hv-5", "br-v4only")}
	poolsFor(cands, []store.IPPool{pool("v4", "192.0.2.0/24", "192.0.2.1", "br-v4only"), pools[1]}, PlanAddrs{IPv4: 1})
	if cands[0].Unfit != "" {
		t.Fatalf("hv-5: %q", cands[0].Unfit)
	}
}
