// Package rdns tests reverse DNS end to end: a real three-coordinator
// cluster with a simulated agent, and a real PowerDNS Authoritative that the
// leader drives through its HTTP API, asked over DNS.
package rdns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/miekg/dns"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// ptrName is the reverse name of an address (independent of the product's
// code: miekg/dns computes it).
func ptrName(t *testing.T, ip string) string {
	t.Helper()
	n, err := dns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ask queries the DNS server for name/typ; it returns the answer records'
// data and the response code.
func ask(t *testing.T, addr, name string, typ uint16) ([]string, int) {
	t.Helper()
	r := framework.AskDNS(t, addr, name, typ)
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.PTR:
			out = append(out, v.Ptr)
		case *dns.SOA:
			out = append(out, v.Ns)
		case *dns.NS:
			out = append(out, v.Ns)
		}
	}
	return out, r.Rcode
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (last: %s)", what, timeout, last)
}

type rig struct {
	t    *testing.T
	c    *framework.ProcessCluster
	pdns *framework.PowerDNS
	acc  string
	key  string
	node string
	ctx  context.Context
}

// adm is the admin API of a live coordinator.
func (r *rig) adm() *client.Admin { return r.c.AnyAlive(nil).Admin() }

func newRig(t *testing.T) *rig {
	p := framework.StartPowerDNS(t)
	keyFile := filepath.Join(t.TempDir(), "pdns-key")
	if err := os.WriteFile(keyFile, []byte(p.APIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t),
		RaftTimeout: framework.RaftTimeout, LogLevel: "debug", Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second,
		Extra: func(int, *framework.CoordinatorProcess) []string {
			return []string{"--pdns-api-url", p.APIURL, "--pdns-api-key-file", keyFile, "--pdns-nameservers", "ns1.example.test,ns2.example.test",
				"--pdns-ptr-ttl", "300", "--pdns-retry-max", "1s", "--pdns-account", "hostplane"}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	r := &rig{t: t, c: c, pdns: p, ctx: ctx, node: "rdns-node-1"}
	acc, key, err := c.NewAccount(ctx, "rdns@example.com", api.ScopeServersRead, api.ScopeServersWrite, api.ScopeServersDestroy)
	if err != nil {
		t.Fatal(err)
	}
	r.acc, r.key = acc.ID, key
	// The scripted agent: real sessions, every action succeeds, template "base".
	c.StartTestAgent(r.node, c.AgentAddrs()[0], "-kvm")
	return r
}

// api is the account's client against coordinator i.
func (r *rig) api(i int) *client.Client { return r.c.Client(i, r.key) }

func (r *rig) waitAction(id string) {
	r.t.Helper()
	framework.WaitActionSuccess(r.t, r.api(0), id, 30*time.Second)
}

// server creates a server (ipv4 "": addresses from the pools) and waits
// until it is provisioned.
func (r *rig) server(ipv4 string) string {
	r.t.Helper()
	created, err := r.adm().CreateServer(r.ctx, api.AdminServerCreateRequest{AccountID: r.acc, Plan: "nano", Template: "base",
		IPv4: ipv4, NodeID: r.node, NoPassword: true})
	if err != nil {
		r.t.Fatalf("create server %s: %v", ipv4, err)
	}
	r.waitAction(created.Action.ID)
	return created.Server.ID
}

// addrs are the server's IPv4 and IPv6 addresses (from GET …/ips).
func (r *rig) addrs(id string) (v4, v6 string) {
	r.t.Helper()
	l, err := r.api(0).ServerIPs(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, v := range l.Data {
		if v.Version == 4 && v4 == "" {
			v4 = v.IP
		}
		if v.Version == 6 && v6 == "" {
			v6 = v.IP
		}
	}
	if v4 == "" || v6 == "" {
		r.t.Fatalf("server %s has no IPv4 and IPv6 from the pools: %+v", id, l.Data)
	}
	return v4, v6
}

// ipView is the address's item of GET /v1/servers/:id/ips on coordinator i.
func (r *rig) ipView(i int, id, ip string) api.ServerIP {
	r.t.Helper()
	l, err := r.api(i).ServerIPs(r.ctx, id)
	if err != nil {
		r.t.Fatalf("ips of %s: %v", id, err)
	}
	for _, v := range l.Data {
		if v.IP == ip {
			return v
		}
	}
	r.t.Fatalf("ips of %s: no %s in %+v", id, ip, l.Data)
	return api.ServerIP{}
}

// waitPTR waits until PowerDNS answers want for ip ("" waits for NXDOMAIN).
func (r *rig) waitPTR(ip, want string) {
	r.t.Helper()
	start := time.Now()
	eventually(r.t, 20*time.Second, "PowerDNS answers PTR "+ip+" = "+want, func() (bool, string) {
		got, rc := ask(r.t, r.pdns.DNSAddr, ptrName(r.t, ip), dns.TypePTR)
		if want == "" {
			return len(got) == 0 && rc == dns.RcodeNameError, strings.Join(got, ",") + " " + dns.RcodeToString[rc]
		}
		return len(got) == 1 && got[0] == want, strings.Join(got, ",") + " " + dns.RcodeToString[rc]
	})
	r.t.Logf("PowerDNS answered PTR %s = %q after %s", ip, want, time.Since(start).Round(time.Millisecond))
}

func (r *rig) waitSync(i int, id, ip, want string) {
	r.t.Helper()
	eventually(r.t, 20*time.Second, "ptrSync of "+ip+" on coordinator "+r.c.Nodes[i].ID+" is "+want, func() (bool, string) {
		v := r.ipView(i, id, ip)
		return v.PTRSync == want, v.PTRSync
	})
}

// TestReverseDNSOnPowerDNS: mapped zones (IPv4 and an IPv6 nibble zone, each
// linked to the IP pool it serves) are created in PowerDNS with SOA and NS;
// the PTRs of a server's pool addresses set through the API are served over
// DNS and show synced on every coordinator; with PowerDNS stopped a new PTR
// is recorded and shows pending, and appears once PowerDNS is back (also when
// the leader was killed meanwhile: the new one applies it); terminating a server removes its PTR; an
// address outside every mapped zone is recorded only (zoneHosted false); an
// unmapped zone is deleted from PowerDNS.
func TestReverseDNSOnPowerDNS(t *testing.T) {
	r := newRig(t)
	const (
		zone4 = "100.51.198.in-addr.arpa"
		zone6 = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
		ipOut = "203.0.113.5"
	)
	for _, p := range []api.IPPoolCreateRequest{
		{Name: "pub4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"},
		{Name: "pub6", CIDR: "2001:db8:1::/48", Gateway: "fe80::1", PrefixLen: 64},
	} {
		if _, err := r.adm().CreateIPPool(r.ctx, p); err != nil {
			t.Fatalf("create pool %s: %v", p.Name, err)
		}
	}
	// Refused with the field named, nothing stored.
	for _, bad := range []struct {
		req   api.ReverseZoneRequest
		field string
	}{
		{api.ReverseZoneRequest{Zone: "example.com"}, `"zone"`},
		{api.ReverseZoneRequest{Zone: "1.2.3.4.in-addr.arpa"}, `"zone"`},
		{api.ReverseZoneRequest{Zone: zone4, Pool: "No Such Pool!"}, `"pool"`},
		{api.ReverseZoneRequest{Zone: zone4, Pool: "nope"}, `"pool"`},
		{api.ReverseZoneRequest{Zone: zone4, Pool: "pub6"}, `"pool"`}, // no address of the pool in the zone
	} {
		_, err := r.adm().AddReverseZone(r.ctx, bad.req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, bad.field) {
			t.Errorf("add %+v: %v, want a 400 naming %s", bad.req, err, bad.field)
		}
	}
	if zs, err := r.adm().ReverseZones(r.ctx); err != nil || len(zs) != 0 {
		t.Fatalf("refused zones stored: %+v %v", zs, err)
	}
	for _, z := range []api.ReverseZoneRequest{{Zone: zone4 + ".", Pool: "pub4"}, {Zone: strings.ToUpper(zone6), Pool: "pub6"}} { // any case, with or without the dot
		if _, err := r.adm().AddReverseZone(r.ctx, z); err != nil {
			t.Fatalf("add zone %s: %v", z.Zone, err)
		}
	}
	if _, err := r.adm().AddReverseZone(r.ctx, api.ReverseZoneRequest{Zone: zone4}); err == nil {
		t.Error("mapping a zone twice was accepted")
	}
	// Both zones exist in PowerDNS with SOA and NS.
	for _, z := range []string{zone4, zone6} {
		eventually(t, 20*time.Second, "zone "+z+" served with SOA and NS", func() (bool, string) {
			soa, rc := ask(t, r.pdns.DNSAddr, z+".", dns.TypeSOA)
			ns, _ := ask(t, r.pdns.DNSAddr, z+".", dns.TypeNS)
			return len(soa) == 1 && len(ns) == 2, strings.Join(append(soa, ns...), ",") + " " + dns.RcodeToString[rc]
		})
	}
	eventually(t, 20*time.Second, "both zones synced", func() (bool, string) {
		zs, err := r.adm().ReverseZones(r.ctx)
		if err != nil || len(zs) != 2 {
			return false, errString(err)
		}
		return zs[0].Status == api.PTRSynced && zs[1].Status == api.PTRSynced, zs[0].Status + "," + zs[1].Status
	})

	srvA, srvB, srvOut := r.server(""), r.server(""), r.server(ipOut+"/24")
	ipA, ip6A := r.addrs(srvA)
	ipB, _ := r.addrs(srvB)

	// PTRs in hosted zones (IPv4 and the IPv6 nibble zone): served over
	// DNS, synced on every coordinator.
	v, err := r.api(1).SetServerPTR(r.ctx, srvA, ipA, api.PTRRequest{Hostname: "vm-a.example.test."})
	if err != nil || !v.ZoneHosted || v.PTR == nil || *v.PTR != "vm-a.example.test" {
		t.Fatalf("set PTR of %s: %+v %v", ipA, v, err)
	}
	if v, err := r.api(2).SetServerPTR(r.ctx, srvA, ip6A, api.PTRRequest{Hostname: "v6.vm-a.example.test"}); err != nil || !v.ZoneHosted {
		t.Fatalf("set PTR of %s: %+v %v", ip6A, v, err)
	}
	r.waitPTR(ipA, "vm-a.example.test.")
	r.waitPTR(ip6A, "v6.vm-a.example.test.")
	for i := range r.c.Nodes {
		r.waitSync(i, srvA, ipA, api.PTRSynced)
		r.waitSync(i, srvA, ip6A, api.PTRSynced)
	}

	// Outside every mapped zone: recorded, not hosted, nothing in PowerDNS.
	v, err = r.api(0).SetServerPTR(r.ctx, srvOut, ipOut, api.PTRRequest{Hostname: "out.example.test"})
	if err != nil || v.ZoneHosted || v.PTRSync != api.PTRNotHosted || v.PTR == nil {
		t.Fatalf("set PTR outside the zones: %+v %v", v, err)
	}
	if got, rc := ask(t, r.pdns.DNSAddr, ptrName(t, ipOut), dns.TypePTR); len(got) != 0 || rc != dns.RcodeRefused {
		t.Errorf("PTR outside the zones served: %v %s", got, dns.RcodeToString[rc])
	}

	// PowerDNS down: the PTR is recorded and pending; nothing is lost.
	r.pdns.Stop()
	v, err = r.api(2).SetServerPTR(r.ctx, srvB, ipB, api.PTRRequest{Hostname: "vm-b.example.test"})
	if err != nil || !v.ZoneHosted || v.PTRSync != api.PTRPending {
		t.Fatalf("set PTR with PowerDNS down: %+v %v", v, err)
	}
	eventually(t, 20*time.Second, "the zone shows PowerDNS's error", func() (bool, string) {
		zs, err := r.adm().ReverseZones(r.ctx)
		for _, z := range zs {
			if z.Zone == zone4 {
				return z.Status == api.PTRPending && z.LastError != "", z.Status + " " + z.LastError
			}
		}
		return false, "zone missing " + errString(err)
	})
	time.Sleep(1500 * time.Millisecond) // a retry or two while it is down
	if v := r.ipView(1, srvB, ipB); v.PTRSync != api.PTRPending {
		t.Fatalf("PTR with PowerDNS down: %+v", v)
	}
	if v := r.ipView(0, srvA, ipA); v.PTRSync != api.PTRSynced {
		t.Errorf("an unchanged PTR shows %s while PowerDNS is down, want synced", v.PTRSync)
	}
	r.pdns.Start()
	r.waitPTR(ipB, "vm-b.example.test.")
	r.waitSync(2, srvB, ipB, api.PTRSynced)
	r.waitPTR(ipA, "vm-a.example.test.")

	// Terminating a server removes its PTR from PowerDNS.
	acc, err := r.api(0).TerminateServer(r.ctx, srvA, "rdns-terminate-a")
	if err != nil {
		t.Fatal(err)
	}
	r.waitAction(acc.Action.ID)
	r.waitPTR(ipA, "")
	r.waitPTR(ip6A, "")
	r.waitPTR(ipB, "vm-b.example.test.")

	// Deleting a PTR removes it.
	if _, err := r.api(0).DeleteServerPTR(r.ctx, srvB, ipB); err != nil {
		t.Fatal(err)
	}
	r.waitPTR(ipB, "")
	r.waitSync(0, srvB, ipB, api.PTRSynced)

	// Unmapping a zone deletes it from PowerDNS, then the entry goes.
	if z, err := r.adm().RemoveReverseZone(r.ctx, zone6); err != nil || z.Status != api.ZoneRemoving {
		t.Fatalf("remove zone: %+v %v", z, err)
	}
	eventually(t, 20*time.Second, "zone "+zone6+" gone from PowerDNS and the list", func() (bool, string) {
		_, rc := ask(t, r.pdns.DNSAddr, zone6+".", dns.TypeSOA)
		zs, err := r.adm().ReverseZones(r.ctx)
		return rc == dns.RcodeRefused && err == nil && len(zs) == 1, dns.RcodeToString[rc]
	})
	if _, err := r.adm().RemoveReverseZone(r.ctx, zone6); err == nil {
		t.Error("removing an unknown zone succeeded")
	}
	// A leader change while PowerDNS is down loses nothing either: the new
	// leader takes the pending PTR over.
	r.pdns.Stop()
	if v, err := r.api(0).SetServerPTR(r.ctx, srvB, ipB, api.PTRRequest{Hostname: "vm-b2.example.test"}); err != nil || v.PTRSync != api.PTRPending {
		t.Fatalf("set PTR with PowerDNS down: %+v %v", v, err)
	}
	old := r.c.WaitLeader(20 * time.Second)
	r.c.Kill(old)
	if _, err := r.c.LeaderIndex(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.pdns.Start()
	r.waitPTR(ipB, "vm-b2.example.test.")
	r.c.Restart(old)
	r.waitSync(old, srvB, ipB, api.PTRSynced)

	// The leader's /metrics counts the passes (failed ones while PowerDNS
	// was down) and the changes made.
	leader := r.c.Nodes[r.c.WaitLeader(20*time.Second)]
	met := framework.Metrics(t, leader.MetricsURL())
	for _, name := range []string{`hostplane_rdns_passes_total{result="ok"}`, `hostplane_rdns_passes_total{result="error"}`,
		`hostplane_rdns_changes_total{change="replace"}`} {
		if met[name] < 1 {
			t.Errorf("leader %s /metrics: %s = %v, want at least 1", leader.ID, name, met[name])
		}
	}
	if v, ok := met["hostplane_rdns_zones_pending"]; !ok || v != 0 {
		t.Errorf("hostplane_rdns_zones_pending = %v (present %v), want 0", v, ok)
	}

	// The leader never logs the API key.
	for _, p := range r.c.Nodes {
		if b, _ := os.ReadFile(p.LogPath()); strings.Contains(string(b), r.pdns.APIKey) {
			t.Errorf("coordinator %s logged the PowerDNS API key", p.ID)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReverseDNSAfterRestore: a `cluster restore` of a backup taken before
// a PTR changed puts the backup's PTR back in PowerDNS promptly (the
// leader syncs every zone when it sees the restore), not at the next
// --pdns-resync-interval (5 minutes): the zone is synced in the backup, so
// a pass over changed zones alone leaves PowerDNS serving the replaced
// state's name. It then shows synced on every coordinator.
func TestReverseDNSAfterRestore(t *testing.T) {
	r := newRig(t)
	const zone4 = "100.51.198.in-addr.arpa"
	for _, p := range []api.IPPoolCreateRequest{
		{Name: "pub4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"},
		{Name: "pub6", CIDR: "2001:db8:1::/48", Gateway: "fe80::1", PrefixLen: 64}, // r.server takes an address of each
	} {
		if _, err := r.adm().CreateIPPool(r.ctx, p); err != nil {
			t.Fatalf("create pool %s: %v", p.Name, err)
		}
	}
	if _, err := r.adm().AddReverseZone(r.ctx, api.ReverseZoneRequest{Zone: zone4, Pool: "pub4"}); err != nil {
		t.Fatal(err)
	}
	srv := r.server("")
	ip, _ := r.addrs(srv)
	if _, err := r.api(0).SetServerPTR(r.ctx, srv, ip, api.PTRRequest{Hostname: "before.example.test"}); err != nil {
		t.Fatal(err)
	}
	r.waitPTR(ip, "before.example.test.")
	r.waitSync(0, srv, ip, api.PTRSynced)
	var backup bytes.Buffer
	if err := r.adm().Backup(r.ctx, &backup); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if _, err := r.api(1).SetServerPTR(r.ctx, srv, ip, api.PTRRequest{Hostname: "after.example.test"}); err != nil {
		t.Fatal(err)
	}
	r.waitPTR(ip, "after.example.test.")
	if _, err := r.adm().Restore(r.ctx, &backup); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r.waitPTR(ip, "before.example.test.")
	for i := range r.c.Nodes {
		r.waitSync(i, srv, ip, api.PTRSynced)
	}
}

// pdnsZone asks PowerDNS's API for a zone: its account and whether it exists.
func (r *rig) pdnsZone(name string) (account string, exists bool) {
	r.t.Helper()
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.pdns.APIURL+"/api/v1/servers/localhost/zones/"+name, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("X-API-Key", r.pdns.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("powerdns get zone %s: %v", name, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var z struct {
			Account string `json:"account"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&z); err != nil {
			r.t.Fatalf("powerdns zone %s: %v", name, err)
		}
		return z.Account, true
	case http.StatusNotFound, http.StatusUnprocessableEntity:
		return "", false
	}
	r.t.Fatalf("powerdns get zone %s: %s", name, resp.Status)
	return "", false
}

// TestRestoreDropsZonesOnlyTheReplacedStateMapped: a reverse zone mapped
// after the backup was taken exists in PowerDNS; a `cluster restore` of the
// backup (which does not map it) removes it from PowerDNS at the
// restore's full pass, while the backup's zone stays, and so do a zone an
// operator made by hand in the same PowerDNS and one of another account
// (each in a reverse domain too). Before, the replaced state's zone stayed
// in PowerDNS for good: nothing in the restored state named it.
func TestRestoreDropsZonesOnlyTheReplacedStateMapped(t *testing.T) {
	r := newRig(t)
	const kept, dropped = "100.51.198.in-addr.arpa", "113.0.203.in-addr.arpa"
	const byHand, otherAccount = "2.0.192.in-addr.arpa", "3.0.192.in-addr.arpa"
	for _, p := range []api.IPPoolCreateRequest{
		{Name: "pub4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"},
		{Name: "pub5", CIDR: "203.0.113.0/24", Gateway: "203.0.113.1"},
	} {
		if _, err := r.adm().CreateIPPool(r.ctx, p); err != nil {
			t.Fatalf("create pool %s: %v", p.Name, err)
		}
	}
	for zone, account := range map[string]string{byHand: "", otherAccount: "dns-team"} {
		body := `{"name":"` + zone + `.","kind":"Native","nameservers":["ns1.example.test."],"account":"` + account + `"}`
		req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, r.pdns.APIURL+"/api/v1/servers/localhost/zones", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-API-Key", r.pdns.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create zone %s by hand: %s", zone, resp.Status)
		}
	}
	if _, err := r.adm().AddReverseZone(r.ctx, api.ReverseZoneRequest{Zone: kept, Pool: "pub4"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "zone "+kept+" in PowerDNS", func() (bool, string) {
		_, ok := r.pdnsZone(kept + ".")
		return ok, "not there"
	})
	var backup bytes.Buffer
	if err := r.adm().Backup(r.ctx, &backup); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if _, err := r.adm().AddReverseZone(r.ctx, api.ReverseZoneRequest{Zone: dropped, Pool: "pub5"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "zone "+dropped+" in PowerDNS", func() (bool, string) {
		_, ok := r.pdnsZone(dropped + ".")
		return ok, "not there"
	})
	if _, err := r.adm().Restore(r.ctx, &backup); err != nil {
		t.Fatalf("restore: %v", err)
	}
	eventually(t, 20*time.Second, "zone "+dropped+" gone from PowerDNS after the restore", func() (bool, string) {
		_, ok := r.pdnsZone(dropped + ".")
		return !ok, "still there"
	})
	_, rc := ask(t, r.pdns.DNSAddr, dropped+".", dns.TypeSOA)
	if rc != dns.RcodeRefused {
		t.Errorf("PowerDNS answers SOA %s with %s after the restore, want REFUSED (no such zone)", dropped, dns.RcodeToString[rc])
	}
	for _, z := range []string{kept, byHand, otherAccount} {
		if _, ok := r.pdnsZone(z + "."); !ok {
			t.Errorf("zone %s is gone from PowerDNS after the restore", z)
		}
		if soa, rc := ask(t, r.pdns.DNSAddr, z+".", dns.TypeSOA); len(soa) == 0 {
			t.Errorf("PowerDNS answers SOA %s with %s after the restore, want its SOA", z, dns.RcodeToString[rc])
		}
	}
	// What tells hostplane's zones from the others.
	if acc, _ := r.pdnsZone(kept + "."); acc != "hostplane" {
		t.Errorf("zone %s is of account %q in PowerDNS, want hostplane", kept, acc)
	}
	if zs, err := r.adm().ReverseZones(r.ctx); err != nil || len(zs) != 1 || zs[0].Zone != kept {
		t.Errorf("mapped zones after the restore: %+v %v, want only %s", zs, err, kept)
	}
}
