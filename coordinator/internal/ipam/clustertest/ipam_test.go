// Package clustertest checks IP pools through a real 3-coordinator cluster
// (Raft over loopback, bbolt, the admin socket and /v1) with simulated agent
// nodes (hostplane-agent-sim: the real agent session code, no libvirt):
// addresses allocated by the placing command are never shared, across a
// leader change, and a terminated server's address waits out its quarantine.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// cluster starts 3 coordinators that take agent sessions, and simulated nodes
// reporting bridge br0 (with extra sim arguments).
func cluster(t testing.TB, nodes int, opt testcluster.Option, simArgs ...string) *testcluster.Cluster {
	t.Helper()
	c := coordinators(t, opt)
	startSims(t, c, nodes, "hv", append([]string{"-bridges", "br0"}, simArgs...)...)
	waitNodes(t, c, nodes, 60*time.Second)
	return c
}

// coordinators starts 3 coordinators that take agent sessions.
func coordinators(t testing.TB, opt testcluster.Option) *testcluster.Cluster {
	t.Helper()
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		cfg.Nodes.ListenAddr = framework.FreeAddr(t, "udp")
		cfg.Nodes.PingInterval = time.Second
		cfg.Nodes.Grace = 5 * time.Second
		cfg.Nodes.CertTTL = time.Hour
		cfg.Nodes.CPUOvercommit = 64 // memory bounds a node: 64 nano servers
		// The three coordinators share this test process (and its GC) on a
		// shared 2-core machine: longer timeouts than the package's 500 ms
		// keep the surviving pair from trading leadership under the load.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 2*time.Second, 2*time.Second
		if opt != nil {
			opt(i, cfg)
		}
	})
	c.WaitConverged(20 * time.Second)
	return c
}

// startSims enrols n simulated nodes named prefix-00001… with one process.
func startSims(t testing.TB, c *testcluster.Cluster, nodes int, prefix string, simArgs ...string) {
	t.Helper()
	ctx := context.Background()
	var addrs, tokens []string
	for i := range c.Nodes {
		if c.Running(i) {
			addrs = append(addrs, c.Nodes[i].Server.AgentSessionAddr())
		}
	}
	for i := 0; i < nodes; i++ {
		var tok api.JoinTokenCreated
		c.Retry503(func() (err error) {
			tok, err = c.Admin(c.WaitLeader(10*time.Second)).CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600})
			return err
		})
		tokens = append(tokens, tok.Token)
	}
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tf, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-coordinators", strings.Join(addrs, ","), "-tokens-file", tf, "-node-id", prefix, "-dir", filepath.Join(dir, "nodes"),
		"-n", strconv.Itoa(nodes), "-quiet", "-backoff-min", "50ms", "-backoff-max", "300ms"}, simArgs...)
	sim := framework.StartSim(t, framework.AgentSim(t), args...)
	t.Cleanup(sim.Stop)
}

// waitNodes waits until n nodes are ready and connected to the leader, each
// on the one bridge br0.
func waitNodes(t testing.TB, c *testcluster.Cluster, n int, timeout time.Duration) {
	t.Helper()
	waitConnected(t, c, n, timeout, "with br0", func(nd api.AgentNode) bool { return len(nd.Bridges) == 1 && nd.Bridges[0] == "br0" })
}

// waitConnected waits until n nodes are ready and connected to the leader
// and each passes also ("what" says how in the failure).
func waitConnected(t testing.TB, c *testcluster.Cluster, n int, timeout time.Duration, what string, also func(api.AgentNode) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ns, err := c.Admin(c.WaitLeader(10 * time.Second)).AgentNodes(context.Background())
		ok := 0
		for _, nd := range ns {
			if nd.State == api.AgentNodeReady && nd.Connected && also(nd) {
				ok++
			}
		}
		if err == nil && ok >= n {
			return
		}
		last = fmt.Sprintf("%d of %d nodes ready and connected %s (%v)", ok, n, what, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nodes after %s: %s", timeout, last)
}

// admins are one admin client per coordinator of a cluster, kept so that
// their connections are reused.
var admins sync.Map // *testcluster.Cluster → []*client.Admin

// waitReady waits until n nodes (bridged or not) are ready and connected.
func waitReady(t testing.TB, c *testcluster.Cluster, n int, timeout time.Duration) {
	t.Helper()
	waitConnected(t, c, n, timeout, "on any bridge", func(api.AgentNode) bool { return true })
}

// anyAdmin is the admin client of a running coordinator (followers forward).
func anyAdmin(c *testcluster.Cluster) *client.Admin {
	v, ok := admins.Load(c)
	if !ok {
		var as []*client.Admin
		for i := 0; i < c.Len(); i++ {
			as = append(as, c.Admin(i))
		}
		v, _ = admins.LoadOrStore(c, as)
	}
	as := v.([]*client.Admin)
	for {
		i := rand.IntN(c.Len())
		if c.Running(i) {
			return as[i]
		}
	}
}

func retryable(err error) bool {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return true // the coordinator went away mid-call
	}
	// 503: no leader yet; 409 no_capacity: the nodes have not reconnected
	// to the new leader yet.
	return ae.StatusCode == http.StatusServiceUnavailable || (ae.StatusCode == http.StatusConflict && ae.Code == "no_capacity")
}

func mustPools(t testing.TB, c *testcluster.Cluster, pools ...api.IPPoolCreateRequest) {
	t.Helper()
	for _, p := range pools {
		c.Retry503(func() error { _, err := anyAdmin(c).CreateIPPool(context.Background(), p); return err })
	}
}

// ipUnits is the ip_units and ip_allocs buckets of coordinator i: every
// unit that is not free.
func ipUnits(t *testing.T, c *testcluster.Cluster, i int) []byte {
	t.Helper()
	var out bytes.Buffer
	err := c.Nodes[i].Server.Node.FSM.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{store.BucketIPUnits, store.BucketIPAllocs} {
			out.Write(b)
			err := tx.Bucket(b).ForEach(func(k, v []byte) error {
				out.Write(k)
				out.Write(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestConcurrentPlacementsNeverShareAnAddress places 1,000 servers from 12
// concurrent clients spread over the three coordinators, stops the leader
// after the first 300, and checks that every server holds its own IPv4
// address and IPv6 prefix inside the pools, that the pools count exactly the
// servers, and that every replica holds the same allocations.
func TestConcurrentPlacementsNeverShareAnAddress(t *testing.T) {
	const total, workers, nodes = 1000, 12, 20
	// The nodes answer every action at once: provisioning finishes, and the
	// dispatcher's open-action list stays short across the leader change.
	c := cluster(t, nodes, nil, "-answer-actions")
	mustPools(t, c,
		api.IPPoolCreateRequest{Name: "pub4", CIDR: "198.18.0.0/21", Gateway: "198.18.0.1", Bridge: "br0"},
		api.IPPoolCreateRequest{Name: "pub6", CIDR: "2001:db8::/48", Gateway: "fe80::1", Bridge: "br0"},
	)
	acc, _ := c.NewAccount("ipam-load@example.com")

	var placed, failed atomic.Int64
	var next atomic.Int64
	killed := make(chan int, 1)
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for next.Add(1) <= total {
				deadline := time.Now().Add(60 * time.Second)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					_, err := anyAdmin(c).CreateServer(ctx, api.AdminServerCreateRequest{AccountID: acc.ID, Plan: "nano", Template: "debian-12", NoPassword: true})
					cancel()
					if err == nil {
						break
					}
					if !retryable(err) || time.Now().After(deadline) {
						failed.Add(1)
						t.Errorf("placement: %v", err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				if placed.Add(1) == 300 {
					once.Do(func() {
						ld := c.Leader()
						t.Logf("%s: stopping leader %d", time.Since(start).Round(time.Millisecond), ld)
						c.Kill(ld)
						t.Logf("%s: stopped; leader now %d", time.Since(start).Round(time.Millisecond), c.Leader())
						killed <- ld
					})
				}
			}
		})
	}
	progress := time.NewTicker(5 * time.Second)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-progress.C:
				t.Logf("%s: %d placed, leader %d", time.Since(start).Round(time.Second), placed.Load(), c.Leader())
			}
		}
	}()
	wg.Wait()
	close(done)
	progress.Stop()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		t.FailNow()
	}
	var old int
	select {
	case old = <-killed:
	default:
		t.Fatal("the leader was never stopped")
	}
	c.Restart(old)
	c.WaitConverged(30 * time.Second)
	t.Logf("%d placements (12 clients, leader %s stopped after 300) in %s", placed.Load(), c.Nodes[old].ID, elapsed.Round(time.Millisecond))

	var ss []api.AdminServer
	c.Retry503(func() (err error) { ss, err = anyAdmin(c).Servers(context.Background(), acc.ID, ""); return err })
	// A create whose answer was lost in the leader change may have been
	// committed and retried: there can be more servers than acknowledged
	// placements, never fewer, and none may share an address.
	if len(ss) < total {
		t.Fatalf("%d servers recorded, %d placements acknowledged", len(ss), total)
	}
	p4, p6 := netip.MustParsePrefix("198.18.0.0/21"), netip.MustParsePrefix("2001:db8::/48")
	seen4, seen6 := map[string]string{}, map[string]string{}
	for _, s := range ss {
		a4, err4 := netip.ParsePrefix(s.IPv4)
		a6, err6 := netip.ParsePrefix(s.IPv6)
		if err4 != nil || err6 != nil || !p4.Contains(a4.Addr()) || a4.Bits() != 21 || !p6.Contains(a6.Addr()) || a6.Bits() != 64 {
			t.Fatalf("server %s has ipv4 %q ipv6 %q", s.ID, s.IPv4, s.IPv6)
		}
		if o, dup := seen4[s.IPv4]; dup {
			t.Fatalf("servers %s and %s share %s", o, s.ID, s.IPv4)
		}
		if o, dup := seen6[a6.Masked().String()]; dup {
			t.Fatalf("servers %s and %s share prefix %s", o, s.ID, a6.Masked())
		}
		seen4[s.IPv4], seen6[a6.Masked().String()] = s.ID, s.ID
	}
	pools, err := anyAdmin(c).IPPools(context.Background())
	if err != nil || len(pools) != 2 {
		t.Fatalf("pools: %+v %v", pools, err)
	}
	for _, p := range pools {
		if p.Usage.Used != uint64(len(ss)) {
			t.Fatalf("pool %s counts %d used, %d servers hold one", p.Name, p.Usage.Used, len(ss))
		}
	}
	ref := ipUnits(t, c, 0)
	for i := 1; i < c.Len(); i++ {
		if !bytes.Equal(ref, ipUnits(t, c, i)) {
			t.Fatalf("coordinator %s holds other allocations than %s", c.Nodes[i].ID, c.Nodes[0].ID)
		}
	}
}

// TestTerminatedAddressWaitsOutItsQuarantine: the API's clock (the time of
// the commands it proposes) is moved forward; a terminated server's address
// and prefix are not handed out 23 h after the terminate, and are again
// after 24 h. Refused pool definitions name the field and change nothing.
func TestTerminatedAddressWaitsOutItsQuarantine(t *testing.T) {
	var offset atomic.Int64
	c := cluster(t, 1, func(_ int, cfg *server.Config) {
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	}, "-answer-actions")
	ctx := context.Background()
	mustPools(t, c,
		api.IPPoolCreateRequest{Name: "q4", CIDR: "198.18.0.0/29", Gateway: "198.18.0.1", Bridge: "br0", Resolvers: []string{"198.18.0.1"}},
		api.IPPoolCreateRequest{Name: "q6", CIDR: "2001:db8:1::/48", Gateway: "fe80::1", Bridge: "br0"},
	)
	// Refusals, sent to a follower (forwarded to the leader).
	follower := (c.WaitLeader(10*time.Second) + 1) % c.Len()
	for _, tc := range []struct {
		req   api.IPPoolCreateRequest
		field string
	}{
		{api.IPPoolCreateRequest{Name: "x", CIDR: "198.18.0.0/33", Gateway: "198.18.0.1"}, `"cidr"`},
		{api.IPPoolCreateRequest{Name: "x", CIDR: "198.18.0.0/28", Gateway: "198.18.0.1"}, `"cidr"`},
		{api.IPPoolCreateRequest{Name: "x", CIDR: "198.18.1.0/24", Gateway: "198.18.0.1"}, `"gateway"`},
	} {
		_, err := c.Admin(follower).CreateIPPool(ctx, tc.req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, tc.field) {
			t.Fatalf("%+v: want 400 naming %s, got %v", tc.req, tc.field, err)
		}
	}
	if pools, err := c.Admin(follower).IPPools(ctx); err != nil || len(pools) != 2 {
		t.Fatalf("pools after refusals: %d %v", len(pools), err)
	}

	acc, key := c.NewAccount("ipam-q@example.com", api.ScopeServersRead, api.ScopeServersDestroy)
	place := func() api.AdminServer {
		t.Helper()
		var out api.AdminServerCreated
		c.Retry503(func() (err error) {
			out, err = anyAdmin(c).CreateServer(ctx, api.AdminServerCreateRequest{AccountID: acc.ID, Plan: "nano", Template: "debian-12", NoPassword: true})
			return err
		})
		waitStatus(t, c, out.Server.ID, api.ServerRunning)
		return out.Server
	}
	s1 := place()
	if s1.IPv4 != "198.18.0.2/29" || s1.IPv6 != "2001:db8:1::1/64" {
		t.Fatalf("first server: %q %q", s1.IPv4, s1.IPv6)
	}
	cl := c.Client(c.WaitLeader(10*time.Second), key)
	if _, err := cl.TerminateServer(ctx, s1.ID, "term-1"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, s1.ID, api.ServerTerminated)

	offset.Store(int64(23 * time.Hour))
	s2 := place()
	if s2.IPv4 != "198.18.0.3/29" || s2.IPv6 != "2001:db8:1:1::1/64" {
		t.Fatalf("23 h after the terminate: %q %q (the released ones are in quarantine)", s2.IPv4, s2.IPv6)
	}
	d, err := anyAdmin(c).IPPool(ctx, "q4")
	if err != nil || d.Usage.Quarantined != 1 || d.Usage.Used != 1 {
		t.Fatalf("q4 at +23 h: %+v %v", d.Usage, err)
	}
	if _, err := anyAdmin(c).ReserveIP(ctx, "q4", api.IPReserveRequest{IP: "198.18.0.2"}); api.StatusOf(err) != 409 {
		t.Fatalf("reserving a quarantined address: want 409, got %v", err)
	}

	offset.Store(int64(24*time.Hour + time.Minute))
	s3 := place()
	if s3.IPv4 != "198.18.0.2/29" || s3.IPv6 != "2001:db8:1::1/64" {
		t.Fatalf("after the quarantine: %q %q", s3.IPv4, s3.IPv6)
	}

	// The customer's view of it.
	ips, err := cl.ServerIPs(ctx, s3.ID)
	if err != nil || len(ips.Data) != 2 {
		t.Fatalf("ips: %+v %v", ips, err)
	}
	v4, v6 := ips.Data[0], ips.Data[1]
	if v4.IP != "198.18.0.2" || !v4.Primary || v4.Gateway == nil || *v4.Gateway != "198.18.0.1" || v4.Netmask == nil || *v4.Netmask != "255.255.255.248" || v4.Prefix != 29 || v4.ZoneHosted {
		t.Fatalf("ipv4 view %+v", v4)
	}
	if v6.IP != "2001:db8:1::1" || !v6.Primary || v6.Version != 6 || v6.Prefix != 64 || *v6.Gateway != "fe80::1" {
		t.Fatalf("ipv6 view %+v", v6)
	}
	all, err := cl.AccountIPs(ctx)
	if err != nil || len(all.Data) != 2 || all.Data[0].ServerID != s3.ID || all.Data[1].ServerID != s2.ID || len(all.Data[1].IPs) != 2 {
		t.Fatalf("account ips (terminated server left out, newest first): %+v %v", all, err)
	}
}

func waitStatus(t *testing.T, c *testcluster.Cluster, id, status string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var s api.AdminServer
	var err error
	for time.Now().Before(deadline) {
		if s, err = anyAdmin(c).Server(context.Background(), id); err == nil && s.Status == status {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server %s: want %s, have %q (%v)", id, status, s.Status, err)
}

// TestPlacementFallsBackToANodeWithFreeAddresses: two nodes on two bridges
// (hva on br0, hvb on br1) with one IPv4 pool each. With br0's pool full (its
// one address reserved by hand) a server goes to hvb, which placement would
// otherwise not pick (equal room, hva sorts first), with hvb's address; with
// both pools full the create is a 409 naming both exhausted pools and
// changes nothing.
func TestPlacementFallsBackToANodeWithFreeAddresses(t *testing.T) {
	c := coordinators(t, nil)
	startSims(t, c, 1, "hva", "-bridges", "br0", "-answer-actions")
	startSims(t, c, 1, "hvb", "-bridges", "br1", "-answer-actions")
	waitReady(t, c, 2, 60*time.Second)
	ctx := context.Background()
	mustPools(t, c,
		api.IPPoolCreateRequest{Name: "fa", CIDR: "198.18.0.0/30", Gateway: "198.18.0.1", Bridge: "br0"}, // one address: .2
		api.IPPoolCreateRequest{Name: "fb", CIDR: "198.18.0.4/30", Gateway: "198.18.0.5", Bridge: "br1"}, // one address: .6
	)
	c.Retry503(func() error {
		_, err := anyAdmin(c).ReserveIP(ctx, "fa", api.IPReserveRequest{IP: "198.18.0.2", Note: "full"})
		return err
	})
	acc, _ := c.NewAccount("ipam-fallback@example.com")
	create := func() (api.AdminServerCreated, error) {
		var out api.AdminServerCreated
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err = anyAdmin(c).CreateServer(ctx, api.AdminServerCreateRequest{AccountID: acc.ID, Plan: "nano", Template: "debian-12", NoPassword: true})
			if st := api.StatusOf(err); err == nil || st != 0 && st != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return out, err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	out, err := create()
	if err != nil {
		t.Fatalf("create with br0's pool full: %v", err)
	}
	if out.Server.NodeID != "hvb" || out.Server.IPv4 != "198.18.0.6/30" {
		t.Fatalf("server on %s with %q; want hvb with 198.18.0.6/30 from pool fb", out.Server.NodeID, out.Server.IPv4)
	}
	waitStatus(t, c, out.Server.ID, api.ServerRunning)

	ld := c.WaitLeader(10 * time.Second)
	units := ipUnits(t, c, ld)
	_, err = create()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict ||
		!strings.Contains(ae.Message, "fa: exhausted") || !strings.Contains(ae.Message, "fb: exhausted") {
		t.Fatalf("create with both pools full: want a 409 naming fa and fb exhausted, got %v", err)
	}
	t.Logf("both full: %d %s: %s", ae.StatusCode, ae.Code, ae.Message)
	if !bytes.Equal(units, ipUnits(t, c, ld)) {
		t.Fatal("the refused create changed the pools' allocations")
	}
	var ss []api.AdminServer
	c.Retry503(func() (err error) { ss, err = anyAdmin(c).Servers(ctx, acc.ID, ""); return err })
	if len(ss) != 1 {
		t.Fatalf("%d servers after the refused create, want 1", len(ss))
	}
}
