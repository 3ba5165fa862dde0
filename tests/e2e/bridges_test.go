package e2e

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/testenv"
	"github.com/hostplane/hostplane/tests/framework/testnet"
)

// TestServerOnPoolBridge goes through the whole path of a bridged server: an
// agent started with --bridge (a real test network: namespace, bridge, veth)
// reports it in its Hello and the node record carries it; an operator's IPv4
// and IPv6 pools on that bridge hand a new server its address and /64; the
// coordinator sends them with the bridge to the 1.3 agent, which defines the
// guest on the bridge with the clean-traffic filter holding those addresses;
// the guest boots configured with them (its console), and the test namespace
// pings it on both. An agent given a bridge that does not exist refuses to
// start, naming it.
func TestServerOnPoolBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and an agent and boots a TCG guest")
	}
	ng := testenv.RequireNetGuest(t)
	tn := testnet.New(t, testenv.Prefix()) // before the world: removed after its guests
	w := newWorld(t, clusterOpts{n: 1, bridges: []string{tn.Bridge}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// With a bridge missing an agent exits before it touches anything, naming it.
	dir := t.TempDir()
	missing := w.agent.Prefix + "-nobr"
	if out, err := exec.Command(w.agent.Bin, "-data-dir", dir+"/data", "-socket", dir+"/s.sock",
		"-bridge", missing).CombinedOutput(); err == nil || !strings.Contains(string(out), "bridge "+missing+" does not exist") {
		t.Fatalf("agent with a missing bridge: %v\n%s", err, out)
	}

	n := w.c.WaitNode(w.agent.ID, 30*time.Second, "ready with its bridge", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && slices.Equal(n.Bridges, []string{tn.Bridge})
	})
	if n.ProtocolVersion < 103 {
		t.Fatalf("node protocol %d, want >= 103", n.ProtocolVersion)
	}

	nc := w.agent.Node()
	defer nc.Close()
	const tpl = "guest-net"
	if _, err := nc.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: w.agent.Prefix + "-import-net", Name: tpl,
		OSFamily: "linux", ImagePath: ng.Disk, SHA256: testenv.SHA256File(t, ng.Disk), KernelPath: ng.Kernel,
		InitrdPath: ng.Initrd, Cmdline: ng.Cmdline, GuestAgent: true}); err != nil {
		t.Fatalf("import the networked guest: %v", err)
	}
	adm := w.c.AnyAlive(nil).Admin()
	for {
		if d, err := adm.AgentNodeDetail(ctx, w.agent.ID); err == nil && slices.Contains(d.Templates, tpl) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the node never listed the networked template")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []api.IPPoolCreateRequest{
		{Name: "e2e-v4", CIDR: testnet.Range4, Gateway: testnet.Gateway4, Bridge: tn.Bridge, Resolvers: []string{testnet.Gateway4}},
		// The /64 holding the gateway is never a server's.
		{Name: "e2e-v6", CIDR: "2001:db8:1::/48", Gateway: testnet.Gateway6, Exclude: []string{"2001:db8:1::/64"}, Bridge: tn.Bridge, PrefixLen: 64},
	} {
		if _, err := adm.CreateIPPool(ctx, p); err != nil {
			t.Fatalf("create pool %s: %v", p.Name, err)
		}
	}

	created, err := adm.CreateServer(ctx, api.AdminServerCreateRequest{AccountID: w.account, Plan: "nano", Template: tpl,
		Label: "bridged", Hostname: "bridged"})
	if err != nil {
		t.Fatalf("admin create server: %v", err)
	}
	vm := created.Server.VMName
	testenv.Cleanup(t, vm, "")
	t.Cleanup(func() { w.terminateQuietly(created.Server.ID) })
	c := w.api(nil)
	c.waitSuccess(created.Action.ID, 2*time.Minute)
	s := c.server(created.Server.ID)
	ip4, err4 := netip.ParsePrefix(s.IPv4)
	ip6, err6 := netip.ParsePrefix(s.IPv6)
	if s.Status != api.ServerRunning || err4 != nil || err6 != nil || !netip.MustParsePrefix(testnet.Range4).Contains(ip4.Addr()) ||
		!netip.MustParsePrefix("2001:db8:1::/48").Contains(ip6.Addr()) || ip6.Bits() != 64 {
		t.Fatalf("server %+v: want running with an address of each pool", s)
	}

	// libvirt's view: the guest's NIC is on the bridge with the filter and its addresses.
	x, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "dumpxml", vm).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<source bridge='" + tn.Bridge + "'/>", "<filterref filter='hostplane-clean-traffic'>",
		"<parameter name='IP' value='" + ip4.Addr().String() + "'/>", "<parameter name='IPV6' value='" + ip6.Addr().String() + "'/>"} {
		if !strings.Contains(string(x), want) {
			t.Fatalf("domain XML of %s lacks %s:\n%s", vm, want, x)
		}
	}

	// The guest's view (its console), then the network's: pings on both.
	log, err := testenv.WaitForLog(ctx, w.agent.ConsoleLog(vm), "GUEST-READY", 1)
	if err != nil {
		t.Fatalf("guest did not boot: %v\n%s", err, log)
	}
	for _, want := range []string{"GUEST-NET eth0 inet " + s.IPv4, "GUEST-NET eth0 inet6 " + s.IPv6,
		"GUEST-NET eth0 route4 via " + testnet.Gateway4, "GUEST-NET eth0 route6 via " + testnet.Gateway6,
		"GUEST-NET resolvers " + testnet.Gateway4, "GUEST-NET-READY"} {
		if !strings.Contains(log, want) {
			t.Fatalf("console lacks %q:\n%s", want, log)
		}
	}
	for _, a := range []string{ip4.Addr().String(), ip6.Addr().String()} {
		if ok, out := tn.Ping(a, 5); !ok {
			t.Fatalf("ping %s from the test namespace: %s\nconsole:\n%s", a, out, log)
		}
	}
}
