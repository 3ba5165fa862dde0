package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// netRig is what the net_* tests start: a real PowerDNS, three coordinators
// driving it, the scripted agent node, the vps-a product, IPv4 and IPv6
// pools with their reverse zones mapped, and two accounts with every scope
// (A with money, B without). Everything after it is HTTP to the product, as
// a customer's client (or an operator's hostplanectl) would send it.
type netRig struct {
	*rig
	pdns *framework.PowerDNS
	sim  *framework.Sim // the node's scripted agent (hold, release)
}

const (
	netNode  = "net-node-1"
	netZone4 = "100.51.198.in-addr.arpa"
	netZone6 = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
	netCIDR6 = "2001:db8:1::/48"
)

// newNetRig starts the rig with an IPv4 pool pub4 of cidr4 (in
// 198.51.100.0/24, gateway .1) whose released addresses wait quarantine
// seconds, and an IPv6 pool pub6 (/64 per server).
func newNetRig(t *testing.T, cidr4 string, quarantine int64) *netRig {
	return netRigOf(t, "net", 3*time.Minute, false, cidr4, quarantine)
}

// netRigOf is newNetRig of rig name within budget, whose coordinators
// deliver webhooks (to loopback receivers) when webhooks is set.
func netRigOf(t *testing.T, name string, budget time.Duration, webhooks bool, cidr4 string, quarantine int64) *netRig {
	p := framework.StartPowerDNS(t)
	keyFile := filepath.Join(t.TempDir(), "pdns-key")
	if err := os.WriteFile(keyFile, []byte(p.APIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second, Webhooks: webhooks,
		Extra: func(int, *framework.CoordinatorProcess) []string {
			return []string{"--pdns-api-url", p.APIURL, "--pdns-api-key-file", keyFile, "--pdns-nameservers", "ns1.example.test,ns2.example.test",
				"--pdns-ptr-ttl", "300", "--pdns-retry-max", "1s"}
		}})
	r := &netRig{rig: rigOn(t, c, name, budget), pdns: p}
	ctx := r.ctx
	r.sim = c.StartTestAgent(netNode, strings.Join(c.AgentAddrs(), ","), "-kvm")
	adm := r.adm()
	createProduct(ctx, t, adm, "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}})
	for _, pool := range []api.IPPoolCreateRequest{
		{Name: "pub4", CIDR: cidr4, Gateway: "198.51.100.1", QuarantineSeconds: quarantine},
		{Name: "pub6", CIDR: netCIDR6, Gateway: "fe80::1", PrefixLen: 64, QuarantineSeconds: quarantine},
	} {
		setUp(ctx, t, "pool "+pool.Name, adm.IPPools, func(x api.IPPool) bool { return x.Name == pool.Name },
			func(ctx context.Context) (api.IPPool, error) { return adm.CreateIPPool(ctx, pool) })
	}
	for _, z := range []api.ReverseZoneRequest{{Zone: netZone4, Pool: "pub4"}, {Zone: netZone6, Pool: "pub6"}} {
		// Sent again after a leadership 503 once the zones show it was
		// not mapped, as the pools (before, a 503 no_leader failed the rig).
		setUp(ctx, t, "zone "+z.Zone, adm.ReverseZones, func(x api.ReverseZone) bool { return x.Zone == z.Zone },
			func(ctx context.Context) (api.ReverseZone, error) { return adm.AddReverseZone(ctx, z) })
	}
	return r
}

// adm is the admin API of a live coordinator.
func (r *netRig) adm() *client.Admin { return r.c.AnyAlive(nil).Admin() }

// call sends one request to coordinator i.
func (r *netRig) call(i int, key, method, path string, body any, hdr map[string]string) framework.Reply {
	r.t.Helper()
	return r.apis[i].Call(key, method, path, body, hdr)
}

// order buys a vps-a server for key on coordinator i and waits for its
// provisioning; it returns the server.
func (r *netRig) order(i int, key, label string) api.Server {
	r.t.Helper()
	rep := r.call(i, key, "POST", "/v1/servers", serverBody(label), map[string]string{"Idempotency-Key": "order-" + label})
	if rep.Status != 201 {
		r.t.Fatalf("order %s: %s", label, rep)
	}
	var so api.ServerOrder
	rep.Decode(r.t, &so)
	framework.WaitActionSuccess(r.t, r.apis[0].Client(key), so.Action.ID, 60*time.Second)
	return so.Server
}

// ips is GET /v1/servers/:id/ips on coordinator i.
func (r *netRig) ips(i int, key, id string) []api.ServerIP {
	r.t.Helper()
	var l api.ServerIPList
	r.get(r.t, i, key, "/v1/servers/"+id+"/ips", &l)
	return l.Data
}

// addrs are the server's IPv4 and IPv6 addresses as GET …/ips shows them.
func (r *netRig) addrs(key, id string) (v4, v6 string) {
	r.t.Helper()
	for _, v := range r.ips(0, key, id) {
		if v.Version == 4 && v4 == "" {
			v4 = v.IP
		}
		if v.Version == 6 && v6 == "" {
			v6 = v.IP
		}
	}
	if v4 == "" || v6 == "" {
		r.t.Fatalf("server %s has no IPv4 and IPv6 from the pools: %+v", id, r.ips(0, key, id))
	}
	return v4, v6
}

// served is what PowerDNS answers for the PTR of ip: the targets and the
// response code.
func (r *netRig) served(ip string) ([]string, int) {
	r.t.Helper()
	name, err := dns.ReverseAddr(ip)
	if err != nil {
		r.t.Fatal(err)
	}
	m := framework.AskDNS(r.t, r.pdns.DNSAddr, name, dns.TypePTR)
	var out []string
	for _, rr := range m.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, p.Ptr)
		}
	}
	return out, m.Rcode
}

// waitServed waits until PowerDNS answers want for the PTR of ip ("": no
// such name).
func (r *netRig) waitServed(ip, want string) {
	r.t.Helper()
	var got []string
	var rc int
	framework.WaitFor(r.t, "PowerDNS answers PTR "+ip+" = "+want, 20*time.Second, 100*time.Millisecond, func() bool {
		got, rc = r.served(ip)
		if want == "" {
			return len(got) == 0 && rc == dns.RcodeNameError
		}
		return len(got) == 1 && got[0] == want
	})
}
