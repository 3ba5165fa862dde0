package ops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func bridgedReq(id, name string) api.NodeProvisionRequest {
	r := provReq(id, name)
	r.Bridge, r.IPv4, r.Gateway4 = "br-public", "198.51.100.10/24", "198.51.100.1"
	r.IPv6, r.Gateway6, r.Resolvers = "2001:db8:0:5::1/64", "2001:db8:0:5::fffe", []string{"2001:db8::53", "198.51.100.53"}
	return r
}

// TestProvisionOnBridge: a provision with a configured bridge defines the
// domain on that bridge with the dual-stack traffic filter and the assigned
// addresses, and keeps them in the journal for reinstalls.
func TestProvisionOnBridge(t *testing.T) {
	hv := hvfake.New(t.TempDir())
	m, j, _ := newManager(t, hv)
	m.cfg.Bridges = []string{"br-private", "br-public"}
	ctx := context.Background()
	op, err := m.Provision(ctx, bridgedReq("p1", "vm1"))
	if err != nil || op.State != api.NodeOpSucceeded {
		t.Fatalf("%+v %v", op, err)
	}
	spec := hv.Doms["vm1"].Spec
	if spec.Network != "bridge:br-public" || spec.Filter == nil || spec.Filter.Name != hypervisor.DualStackFilter {
		t.Fatalf("spec network %q filter %+v", spec.Network, spec.Filter)
	}
	ll, _ := hypervisor.LinkLocalEUI64(spec.MAC)
	want := []hypervisor.FilterParam{{Name: "IP", Value: "198.51.100.10"}, {Name: "IPV6", Value: "2001:db8:0:5::1"}, {Name: "IPV6", Value: ll.String()}}
	if !slices.Equal(spec.Filter.Params, want) {
		t.Fatalf("filter params %v, want %v", spec.Filter.Params, want)
	}
	vm, err := j.GetVM("vm1")
	if err != nil || vm.Bridge != "br-public" || vm.IPv6 != "2001:db8:0:5::1/64" || vm.Gateway6 != "2001:db8:0:5::fffe" ||
		!slices.Equal(vm.Resolvers, []string{"2001:db8::53", "198.51.100.53"}) {
		t.Fatalf("journal %+v %v", vm, err)
	}

	// A reinstall redefines the domain from the journal: same bridge and filter.
	if op, err := m.Reinstall(ctx, "vm1", api.NodeReinstallRequest{OpID: "r1", Template: "base", RootPassword: secret}); err != nil || op.State != api.NodeOpSucceeded {
		t.Fatalf("reinstall: %+v %v", op, err)
	}
	if s := hv.Doms["vm1"].Spec; s.Network != "bridge:br-public" || s.Filter == nil || !slices.Equal(s.Filter.Params, want) {
		t.Fatalf("after reinstall: %q %+v", s.Network, s.Filter)
	}

	// IPv4 only on a bridge: libvirt's clean-traffic with IP.
	r := bridgedReq("p2", "vm2")
	r.IPv6, r.Gateway6 = "", ""
	if _, err := m.Provision(ctx, r); err != nil {
		t.Fatal(err)
	}
	if f := hv.Doms["vm2"].Spec.Filter; f == nil || f.Name != hypervisor.CleanTrafficFilter || len(f.Params) != 1 || f.Params[0] != (hypervisor.FilterParam{Name: "IP", Value: "198.51.100.10"}) {
		t.Fatalf("v4-only filter %+v", f)
	}

	// IPv6 only: the agent's IPv6-only filter (no IPv4 or ARP at all).
	r = bridgedReq("p4", "vm4")
	r.IPv4, r.Gateway4 = "", ""
	if _, err := m.Provision(ctx, r); err != nil {
		t.Fatal(err)
	}
	if f := hv.Doms["vm4"].Spec.Filter; f == nil || f.Name != hypervisor.IPv6OnlyFilter || len(f.Params) != 2 || f.Params[0] != (hypervisor.FilterParam{Name: "IPV6", Value: "2001:db8:0:5::1"}) {
		t.Fatalf("v6-only filter %+v", f)
	}

	// No bridge: today's interface, no filter.
	if _, err := m.Provision(ctx, provReq("p3", "vm3")); err != nil {
		t.Fatal(err)
	}
	if s := hv.Doms["vm3"].Spec; s.Filter != nil || s.Network != "user" {
		t.Fatalf("unbridged spec %q %+v", s.Network, s.Filter)
	}
}

// TestProvisionBridgeRefused: bad or unknown bridges and addresses are refused
// before anything is created, with a message naming what is wrong.
func TestProvisionBridgeRefused(t *testing.T) {
	hv := hvfake.New(t.TempDir())
	m, _, _ := newManager(t, hv)
	m.cfg.Bridges = []string{"br-public"}
	ctx := context.Background()
	cases := []struct {
		name, want string
		mod        func(r *api.NodeProvisionRequest)
	}{
		{"unknown bridge", "not configured on this node", func(r *api.NodeProvisionRequest) { r.Bridge = "br-other" }},
		{"bad bridge name", "bridge", func(r *api.NodeProvisionRequest) { r.Bridge = "br0'/><filterref" }},
		{"no address", "needs an ipv4 or ipv6", func(r *api.NodeProvisionRequest) { r.IPv4, r.Gateway4, r.IPv6, r.Gateway6 = "", "", "", "" }},
		{"other network", "disagree", func(r *api.NodeProvisionRequest) { r.Network = "bridge:br-x" }},
		{"ipv6 not cidr", "ipv6", func(r *api.NodeProvisionRequest) { r.IPv6 = "2001:db8::1" }},
		{"ipv6 is v4", "ipv6", func(r *api.NodeProvisionRequest) { r.IPv6 = "198.51.100.9/24" }},
		{"gateway6 multicast", "gateway6", func(r *api.NodeProvisionRequest) { r.Gateway6 = "ff02::2" }},
		{"gateway6 alone", "gateway6", func(r *api.NodeProvisionRequest) { r.IPv6 = "" }},
		{"bad resolver", "resolver", func(r *api.NodeProvisionRequest) { r.Resolvers = []string{"dns.example"} }},
		{"resolver with zone", "resolver", func(r *api.NodeProvisionRequest) { r.Resolvers = []string{"fe80::1%eth0"} }},
	}
	for i, c := range cases {
		r := bridgedReq("bad"+string(rune('a'+i)), "vm1")
		c.mod(&r)
		_, err := m.Provision(ctx, r)
		var ne *api.NodeError
		invalid := errors.Is(err, validate.ErrInvalid) || errors.As(err, &ne) && ne.Code == api.NodeErrInvalid
		if !invalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid mentioning %q", c.name, err, c.want)
		}
	}
	if n := hv.Count("DefineDomain"); n != 0 || len(hv.Vols) != 1 {
		t.Fatalf("refused provisions left %d domains defined, volumes %v", n, hv.Vols)
	}
}
