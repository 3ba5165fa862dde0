package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

func ipDump(f *FSM) []byte {
	return bucketDump(f, append(append([][]byte{}, store.IPPoolBuckets...), store.ServerBuckets...)...)
}

// wantField checks a refused command: ErrInvalid naming field.
func wantField(t *testing.T, err error, field, msg string) {
	t.Helper()
	var fe *ipam.FieldError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Message, msg) {
		t.Fatalf("want ErrInvalid on field %q (%q), got %v", field, msg, err)
	}
}

func pool4(name, cidr, gw string) store.IPPool {
	return store.IPPool{Pool: ipam.Pool{Name: name, CIDR: cidr, Gateway: gw, Bridge: "br0", Resolvers: []string{"198.51.100.53"}}}
}

// ipHarness: accounts, node hv-1 (protocol 1.3, bridge br0) and pools pub4
// (198.51.100.0/24) and pub6 (2001:db8::/48, /64 each).
func ipHarness(t *testing.T) *whHarness {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103, Bridges: []string{"br0"}})
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("pub4", "198.51.100.0/24", "198.51.100.1")})
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "pub6", CIDR: "2001:db8::/48", Gateway: "fe80::1", Bridge: "br0"}}})
	return h
}

var bothFamilies = &AddrRequest{IPv4Pools: []string{"pub4"}, IPv4: 1, IPv6Pools: []string{"pub6"}, IPv6: 1}

func placeServer(h *whHarness, id string, req *AddrRequest) (store.Server, error) {
	params, _ := action.Encode(&action.Provision{Template: "debian-12", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}})
	srv := store.Server{Server: api.Server{ID: id, Label: id}, AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + id}
	act := store.Action{Action: api.Action{ID: "act_" + id, Command: api.ActionServerProvision, ResourceID: id},
		NodeID: "hv-1", Target: "hp-" + id, Deadline: h.at.Add(time.Hour), Params: params}
	_, err := h.apply(CmdServerCreate, ServerCreate{Server: srv, Action: act, Addresses: req})
	if err != nil {
		return store.Server{}, err
	}
	var s store.Server
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { s, err = r.Server(id); return })
	return s, nil
}

func terminate(h *whHarness, id string) {
	h.t.Helper()
	h.must(CmdActionFinish, ActionFinish{ID: "act_" + id, Success: true})
	h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_t_" + id, Command: api.ActionServerTerminate, ResourceID: id},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-" + id, Deadline: h.at.Add(time.Hour), Mutating: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_t_" + id, Success: true})
}

func provisionParams(t *testing.T, h *whHarness, id string) action.Provision {
	t.Helper()
	var a store.Action
	_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { a, err = r.Action("act_" + id); return })
	var p action.Provision
	if err := json.Unmarshal(a.Params, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIPPoolRefusalsNameTheFieldAndChangeNothing(t *testing.T) {
	h := ipHarness(t)
	before := ipDump(h.fsms[0])
	cases := []struct {
		pool       store.IPPool
		field, msg string
	}{
		{pool4("bad", "198.51.100.0/33", "198.51.100.1"), "cidr", "not a CIDR"},
		{pool4("bad", "203.0.113.7/24", "203.0.113.1"), "cidr", "host bits"},
		{pool4("bad", "203.0.113.0/24", "198.51.100.1"), "gateway", "outside"},
		{pool4("bad", "198.51.100.128/25", "198.51.100.129"), "cidr", `overlaps pool "pub4"`},
		{store.IPPool{Pool: ipam.Pool{Name: "bad", CIDR: "2001:db8:1::/32", Gateway: "fe80::1"}}, "cidr", "host bits"},
		{store.IPPool{Pool: ipam.Pool{Name: "bad", CIDR: "2001:db8::/32", Gateway: "fe80::1"}}, "cidr", `overlaps pool "pub6"`},
		{store.IPPool{Pool: ipam.Pool{Name: "bad", CIDR: "2001:db9::/48", Gateway: "fe80::1", PrefixLen: 40}}, "prefixLen", ""},
		{pool4("Bad Name", "203.0.113.0/24", "203.0.113.1"), "name", ""},
		{store.IPPool{Pool: ipam.Pool{Name: "bad", CIDR: "203.0.113.0/24", Gateway: "203.0.113.1", Bridge: "br with space"}}, "bridge", ""},
		{store.IPPool{Pool: ipam.Pool{Name: "bad", CIDR: "203.0.113.0/24", Gateway: "203.0.113.1", Resolvers: []string{"x"}}}, "resolvers[0]", ""},
	}
	for _, c := range cases {
		_, err := h.apply(CmdIPPoolCreate, IPPoolCreate{Pool: c.pool})
		wantField(t, err, c.field, c.msg)
	}
	if _, err := h.apply(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("pub4", "203.0.113.0/24", "203.0.113.1")}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second pool named pub4: %v", err)
	}
	_, err := h.apply(CmdIPReserve, IPReserve{Pool: "pub4", IP: "203.0.113.9"})
	wantField(t, err, "ip", "not in pool")
	_, err = h.apply(CmdIPReserve, IPReserve{Pool: "pub4", IP: "198.51.100.1"})
	wantField(t, err, "ip", "not allocatable")
	_, err = h.apply(CmdIPReserve, IPReserve{Pool: "pub4", IP: "nope"})
	wantField(t, err, "ip", "not an IP")
	if _, err := h.apply(CmdIPReserve, IPReserve{Pool: "nope", IP: "198.51.100.9"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reserve in a missing pool: %v", err)
	}
	if !bytes.Equal(before, ipDump(h.fsms[0])) {
		t.Fatal("a refused command changed the pools")
	}
}

func TestServerAddressesAllocatedReleasedAndQuarantined(t *testing.T) {
	h := ipHarness(t)
	s1, err := placeServer(h, "srv_1", bothFamilies)
	if err != nil {
		t.Fatal(err)
	}
	if s1.IPv4 != "198.51.100.2/24" || s1.IPv6 != "2001:db8::1/64" || len(s1.Addrs) != 2 {
		t.Fatalf("first server's addresses: %q %q %+v", s1.IPv4, s1.IPv6, s1.Addrs)
	}
	p := provisionParams(t, h, "srv_1")
	if p.IPv4 != "198.51.100.2/24" || p.Gateway4 != "198.51.100.1" || p.Bridge != "br0" || p.IPv6 != "2001:db8::1/64" ||
		p.Gateway6 != "fe80::1" || len(p.Resolvers) != 1 || p.Template != "debian-12" {
		t.Fatalf("provision params: %+v", p)
	}
	s2, err := placeServer(h, "srv_2", bothFamilies)
	if err != nil || s2.IPv4 != "198.51.100.3/24" || s2.IPv6 != "2001:db8:0:1::1/64" {
		t.Fatalf("second server: %q %q %v", s2.IPv4, s2.IPv6, err)
	}
	// The customer view: primary, gateway, netmask/prefix.
	v := ServerIPView(s2, s2.Addrs[0].Addr.Addr())
	if !v.Primary || v.Gateway == nil || *v.Gateway != "198.51.100.1" || v.Netmask == nil || *v.Netmask != "255.255.255.0" || v.Prefix != 24 {
		t.Fatalf("ipv4 view %+v", v)
	}
	v = ServerIPView(s2, s2.Addrs[1].Addr.Addr())
	if !v.Primary || v.Version != 6 || v.Prefix != 64 || v.Netmask != nil || *v.Gateway != "fe80::1" {
		t.Fatalf("ipv6 view %+v", v)
	}

	// Terminate srv_1: its units go into a 24 h quarantine from the
	// command's time.
	terminate(h, "srv_1")
	termAt := h.at
	if s3, err := placeServer(h, "srv_3", bothFamilies); err != nil || s3.IPv4 != "198.51.100.4/24" || s3.IPv6 != "2001:db8:0:2::1/64" {
		t.Fatalf("inside the quarantine the released units are not reused: %q %q %v", s3.IPv4, s3.IPv6, err)
	}
	if _, err := h.apply(CmdIPReserve, IPReserve{Pool: "pub4", IP: "198.51.100.2"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("reserving a quarantined address: %v", err)
	}
	h.at = termAt.Add(24*time.Hour - 2*time.Second) // the next command is 1 s before the end
	if s4, err := placeServer(h, "srv_4", bothFamilies); err != nil || s4.IPv4 != "198.51.100.5/24" {
		t.Fatalf("1 s before the quarantine ends: %q %v", s4.IPv4, err)
	}
	reopen(h, 1) // one replica loads the quarantine from its records, the other kept it
	h.at = termAt.Add(24 * time.Hour)
	if s5, err := placeServer(h, "srv_5", bothFamilies); err != nil || s5.IPv4 != "198.51.100.2/24" || s5.IPv6 != "2001:db8::1/64" {
		t.Fatalf("after the quarantine the lowest units come back: %q %q %v", s5.IPv4, s5.IPv6, err)
	}
	// Every replica computed the same thing.
	if !bytes.Equal(ipDump(h.fsms[0]), ipDump(h.fsms[1])) {
		t.Fatal("replicas differ")
	}
	// Taken again, the units lost their quarantine records, and the state
	// loads again.
	if n := h.count(store.BucketIPUnits, "pub4/198.51.100.2/32") + h.count(store.BucketIPUnits, "pub6/2001:db8::/64"); n != 0 {
		t.Fatalf("%d quarantine records left for units allocated again", n)
	}
	reopen(h, 0)
	if s6, err := placeServer(h, "srv_6", bothFamilies); err != nil || s6.IPv4 != "198.51.100.6/24" {
		t.Fatalf("after reopening: %q %v", s6.IPv4, err)
	}
	// The server.created payload carries ipv4.
	h.must(CmdActionFinish, ActionFinish{ID: "act_srv_2", Success: true})
	evs := outboxEvents(t, h.fsms[0])
	last := evs[len(evs)-1]
	if last.Type != string(api.EventServerCreated) || !strings.Contains(string(last.Data), `"ipv4":"198.51.100.3"`) {
		t.Fatalf("server.created: %s %s", last.Type, last.Data)
	}
}

func TestIPReserveReleaseAndPoolRemove(t *testing.T) {
	h := ipHarness(t)
	h.must(CmdIPReserve, IPReserve{Pool: "pub4", IP: "198.51.100.2", Note: "router"})
	h.must(CmdIPReserve, IPReserve{Pool: "pub6", IP: "2001:db8::42"}) // the whole first /64
	s, err := placeServer(h, "srv_1", bothFamilies)
	if err != nil || s.IPv4 != "198.51.100.3/24" || s.IPv6 != "2001:db8:0:1::1/64" {
		t.Fatalf("allocation skips reservations: %q %q %v", s.IPv4, s.IPv6, err)
	}
	if _, err := h.apply(CmdIPRelease, IPRelease{Pool: "pub4", IP: "198.51.100.3"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "srv_1") {
		t.Fatalf("releasing a server's address by hand: %v", err)
	}
	if _, err := h.apply(CmdIPPoolRemove, IPPoolRemove{Name: "pub4"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("removing a pool in use: %v", err)
	}
	h.must(CmdIPRelease, IPRelease{Pool: "pub4", IP: "198.51.100.2"})
	if _, err := h.apply(CmdIPRelease, IPRelease{Pool: "pub4", IP: "198.51.100.2"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second release: %v", err)
	}
	if s, _ := placeServer(h, "srv_2", bothFamilies); s.IPv4 != "198.51.100.2/24" {
		t.Fatalf("a released reservation is free at once: %q", s.IPv4)
	}
	// Releasing a quarantined unit frees it at once (an operator's override).
	terminate(h, "srv_2")
	h.must(CmdIPRelease, IPRelease{Pool: "pub4", IP: "198.51.100.2"})
	if s, _ := placeServer(h, "srv_3", bothFamilies); s.IPv4 != "198.51.100.2/24" {
		t.Fatalf("after releasing its quarantine: %q", s.IPv4)
	}
	terminate(h, "srv_1")
	terminate(h, "srv_3")
	h.must(CmdIPRelease, IPRelease{Pool: "pub6", IP: "2001:db8::"})
	// Only quarantined units left: the pool can go, and its units with it.
	h.must(CmdIPPoolRemove, IPPoolRemove{Name: "pub4"})
	if n := h.count(store.BucketIPUnits, "pub4/") + h.count(store.BucketIPAllocs, "pub4/"); n != 0 {
		t.Fatalf("%d units of a removed pool left", n)
	}
	if !bytes.Equal(ipDump(h.fsms[0]), ipDump(h.fsms[1])) {
		t.Fatal("replicas differ")
	}
}

func TestAddressPlacementRules(t *testing.T) {
	h := ipHarness(t)
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("tiny", "203.0.113.0/30", "203.0.113.1")}) // one free address: .2
	tiny := &AddrRequest{IPv4Pools: []string{"tiny"}, IPv4: 1}
	if s, err := placeServer(h, "srv_1", tiny); err != nil || s.IPv4 != "203.0.113.2/30" {
		t.Fatalf("tiny pool: %q %v", s.IPv4, err)
	}
	before := ipDump(h.fsms[0])
	_, err := placeServer(h, "srv_2", tiny)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("exhausted pool: %v", err)
	}
	if !bytes.Equal(before, ipDump(h.fsms[0])) {
		t.Fatal("a refused placement changed state")
	}
	// The next pool of the list is used when the first is full.
	if s, err := placeServer(h, "srv_2", &AddrRequest{IPv4Pools: []string{"tiny", "pub4"}, IPv4: 1}); err != nil || s.IPv4 != "198.51.100.2/24" {
		t.Fatalf("fallback pool: %q %v", s.IPv4, err)
	}
	// A pool limited to other nodes, or whose bridge the node lacks, is not used.
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "other", CIDR: "203.0.113.64/26", Gateway: "203.0.113.65", Nodes: []string{"hv-9"}}}})
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "br1", CIDR: "203.0.113.128/26", Gateway: "203.0.113.129", Bridge: "br1"}}})
	for _, name := range []string{"other", "br1"} {
		if _, err := placeServer(h, "srv_x", &AddrRequest{IPv4Pools: []string{name}, IPv4: 1}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "does not serve") {
			t.Fatalf("pool %s on hv-1: %v", name, err)
		}
	}
	// An agent older than 1.3 gets the bridge as its 1.2 network and no 1.3 keys.
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 102, Bridges: []string{"br0"}})
	s, err := placeServer(h, "srv_3", bothFamilies)
	if err != nil {
		t.Fatal(err)
	}
	p := provisionParams(t, h, "srv_3")
	if p.Network != "bridge:br0" || p.Bridge != "" || p.IPv6 != "" || p.Gateway6 != "" || p.Resolvers != nil || p.IPv4 != s.IPv4 {
		t.Fatalf("1.2 params: %+v", p)
	}
	// No addresses asked: today's behaviour.
	if s, err := placeServer(h, "srv_4", nil); err != nil || s.IPv4 != "" || s.Addrs != nil {
		t.Fatalf("no addresses: %+v %v", s, err)
	}
}

// reopen closes replica i and opens its database again (a restart).
func reopen(h *whHarness, i int) *FSM {
	h.t.Helper()
	path := h.fsms[i].path
	if err := h.fsms[i].Close(); err != nil {
		h.t.Fatal(err)
	}
	g, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { g.Close() })
	h.fsms[i] = g
	return g
}

// TestAllocatorsRebuiltOnReopen: a replica that restarts rebuilds its
// allocators from the buckets and keeps agreeing with one that did not.
func TestAllocatorsRebuiltOnReopen(t *testing.T) {
	h := ipHarness(t)
	for _, id := range []string{"srv_1", "srv_2", "srv_3"} {
		if _, err := placeServer(h, id, bothFamilies); err != nil {
			t.Fatal(err)
		}
	}
	terminate(h, "srv_2")
	g := reopen(h, 1)
	s, err := placeServer(h, "srv_4", bothFamilies)
	if err != nil || s.IPv4 != "198.51.100.5/24" {
		t.Fatalf("after reopen: %q %v", s.IPv4, err)
	}
	var s4 store.Server
	_ = g.View(func(tx *bolt.Tx) (err error) { s4, err = store.Read(tx).Server("srv_4"); return })
	if s4.IPv4 != s.IPv4 || s4.IPv6 != s.IPv6 || !bytes.Equal(ipDump(h.fsms[0]), ipDump(g)) {
		t.Fatalf("reopened replica allocated %q %q, the other %q %q", s4.IPv4, s4.IPv6, s.IPv4, s.IPv6)
	}
}

// TestStaticAddressInAPoolIsClaimed: an IPv4 address given by hand that lies
// in a pool is recorded as the server's, so the pool never hands it out too,
// and a second server cannot be given it.
func TestStaticAddressInAPoolIsClaimed(t *testing.T) {
	h := ipHarness(t)
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("tiny", "203.0.113.0/30", "203.0.113.1")}) // one free address: .2
	static := func(id, cidr string) (store.Server, error) {
		params, _ := action.Encode(&action.Provision{Template: "debian-12", IPv4: cidr, Gateway4: "203.0.113.1"})
		srv := store.Server{Server: api.Server{ID: id, Label: id, IPv4: cidr}, AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + id}
		act := store.Action{Action: api.Action{ID: "act_" + id, Command: api.ActionServerProvision, ResourceID: id},
			NodeID: "hv-1", Target: "hp-" + id, Deadline: h.at.Add(time.Hour), Params: params}
		if _, err := h.apply(CmdServerCreate, ServerCreate{Server: srv, Action: act}); err != nil {
			return store.Server{}, err
		}
		var s store.Server
		_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { s, err = r.Server(id); return })
		return s, nil
	}
	s, err := static("srv_1", "203.0.113.2/30")
	if err != nil || len(s.Addrs) != 1 || s.Addrs[0].Pool != "tiny" || provisionParams(t, h, "srv_1").Gateway4 != "203.0.113.1" {
		t.Fatalf("static address in a pool: %+v %v", s, err)
	}
	if _, err := static("srv_2", "203.0.113.2/30"); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same static address twice: %v", err)
	}
	if _, err := static("srv_3", "203.0.113.1/30"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the pool's gateway as a static address: %v", err)
	}
	if _, err := placeServer(h, "srv_4", &AddrRequest{IPv4Pools: []string{"tiny"}, IPv4: 1}); !errors.Is(err, ErrConflict) {
		t.Fatalf("the pool handed out a claimed address: %v", err)
	}
	if s, err := static("srv_5", "192.0.2.10/24"); err != nil || s.Addrs != nil {
		t.Fatalf("a static address outside every pool: %+v %v", s, err)
	}
	// Terminated, it goes into the pool's quarantine like any other.
	terminate(h, "srv_1")
	if _, err := static("srv_6", "203.0.113.2/30"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "quarantine") {
		t.Fatalf("a quarantined static address: %v", err)
	}
	if !bytes.Equal(ipDump(h.fsms[0]), ipDump(h.fsms[1])) {
		t.Fatal("replicas differ")
	}
}

// TestAllocatorsRebuiltOnRestore: a replica restored from another's snapshot
// drops the allocators it had and allocates from the restored state.
func TestAllocatorsRebuiltOnRestore(t *testing.T) {
	h := ipHarness(t)
	if _, err := placeServer(h, "srv_1", bothFamilies); err != nil {
		t.Fatal(err)
	}
	snap := backup(t, h.fsms[0])
	// Both replicas allocate more (and build allocators holding it)...
	for _, id := range []string{"srv_2", "srv_3"} {
		if _, err := placeServer(h, id, bothFamilies); err != nil {
			t.Fatal(err)
		}
	}
	// ...then the second is restored to the snapshot taken before them.
	restore(t, h.fsms[1], snap)
	h.fsms = h.fsms[1:]
	s, err := placeServer(h, "srv_4", bothFamilies)
	if err != nil || s.IPv4 != "198.51.100.3/24" || s.IPv6 != "2001:db8:0:1::1/64" {
		t.Fatalf("after restore the next addresses follow the snapshot's state: %q %q %v", s.IPv4, s.IPv6, err)
	}
}

// TestAddrsFitAgreesWithTheCommand: the proposer's check (free counts read
// with PoolsFree) says what CmdServerCreate then does, with the same error:
// a node whose pool is full does not fit, one whose pool on another bridge
// has room does; an ended quarantine counts as free; the command stays
// authoritative and a refused create changes nothing.
func TestAddrsFitAgreesWithTheCommand(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103, Bridges: []string{"br0"}})
	a := pool4("fa", "203.0.113.0/30", "203.0.113.1") // one address: .2, on br0
	a.QuarantineSeconds = 60
	b := pool4("fb", "203.0.113.4/30", "203.0.113.5") // one address: .6, on br1
	b.Bridge = "br1"
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: a})
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: b})
	pools := map[string]store.IPPool{"fa": a, "fb": b}
	hv1 := api.AgentNode{ID: "hv-1", Bridges: []string{"br0"}}
	hv2 := api.AgentNode{ID: "hv-2", Bridges: []string{"br1"}}
	req := func(n api.AgentNode) *AddrRequest {
		if n.ID == "hv-1" {
			return &AddrRequest{IPv4Pools: []string{"fa"}, IPv4: 1}
		}
		return &AddrRequest{IPv4Pools: []string{"fb"}, IPv4: 1}
	}
	free := func(at time.Time) map[string]uint64 {
		t.Helper()
		out, err := h.fsms[0].PoolsFree([]string{"fa", "fb"}, at)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if f := free(h.at); f["fa"] != 1 || f["fb"] != 1 {
		t.Fatalf("free before: %v", f)
	}
	if err := AddrsFit(req(hv1), hv1, pools, free(h.at)); err != nil {
		t.Fatalf("hv-1 with fa empty: %v", err)
	}
	// Two addresses from a pool of one do not fit.
	if err := AddrsFit(&AddrRequest{IPv4Pools: []string{"fa"}, IPv4: 2}, hv1, pools, free(h.at)); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "fa: exhausted") {
		t.Fatalf("two from a pool of one: %v", err)
	}
	if _, err := placeServer(h, "srv_1", req(hv1)); err != nil {
		t.Fatal(err)
	}
	f := free(h.at)
	if f["fa"] != 0 || f["fb"] != 1 {
		t.Fatalf("free after one placement: %v", f)
	}
	fitErr := AddrsFit(req(hv1), hv1, pools, f)
	if !errors.Is(fitErr, ErrConflict) || !strings.Contains(fitErr.Error(), "fa: exhausted") {
		t.Fatalf("hv-1 with fa full: %v", fitErr)
	}
	if err := AddrsFit(req(hv2), hv2, pools, f); err != nil {
		t.Fatalf("hv-2 with fb free: %v", err)
	}
	// The command refuses what the check refused, with the same words, and
	// changes nothing.
	before := ipDump(h.fsms[0])
	if _, err := placeServer(h, "srv_2", req(hv1)); err == nil || err.Error() != fitErr.Error() {
		t.Fatalf("command: %v; check: %v", err, fitErr)
	}
	if !bytes.Equal(before, ipDump(h.fsms[0])) {
		t.Fatal("a refused placement changed state")
	}
	// Terminated: in quarantine for 60 s, then free again.
	terminate(h, "srv_1")
	if f := free(h.at); f["fa"] != 0 {
		t.Fatalf("fa in quarantine counts %d free", f["fa"])
	}
	if f := free(h.at.Add(61 * time.Second)); f["fa"] != 1 {
		t.Fatalf("fa after its quarantine counts %d free", f["fa"])
	}
}

// toSchemaV1 rewrites f's IP pool state in place as a coordinator before
// schema version 2 stored it: one ip_units record per allocated unit
// (IPUnit with the server and account, no ip_allocs), schema_version 1.
func toSchemaV1(t *testing.T, f *FSM) {
	t.Helper()
	err := f.db.Update(func(tx *bolt.Tx) error {
		allocs := tx.Bucket(store.BucketIPAllocs)
		var keys [][]byte
		err := allocs.ForEach(func(k, v []byte) error {
			var a store.IPAlloc
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			pool, srv, _ := strings.Cut(string(k), "/")
			for _, u := range a.Units {
				rec := store.IPUnit{Prefix: u, ServerID: srv, AccountID: a.AccountID}
				if err := store.PutJSON(tx, store.BucketIPUnits, store.IPUnitKey(pool, u), rec); err != nil {
					return err
				}
			}
			keys = append(keys, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := allocs.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(store.BucketMeta).Put([]byte("schema_version"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOldIPUnitsMigratedOnOpenAndRestore: a database written before
// ip_allocs (every allocated unit its own ip_units record) opens, and a
// snapshot of one restores, into the same state a coordinator that always
// ran this version holds; both then allocate, quarantine and refuse as it
// does.
func TestOldIPUnitsMigratedOnOpenAndRestore(t *testing.T) {
	h := ipHarness(t)
	h.fsms = append(h.fsms, newWHHarness(t, 1).fsms...) // a third replica
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "pub4b", CIDR: "203.0.113.0/24", Gateway: "203.0.113.1", Bridge: "br0"}}})
	h.must(CmdIPReserve, IPReserve{Pool: "pub4", IP: "198.51.100.2", Note: "router"})
	for _, id := range []string{"srv_1", "srv_2", "srv_3"} {
		if _, err := placeServer(h, id, bothFamilies); err != nil {
			t.Fatal(err)
		}
	}
	// Two addresses from one pool and one from another: three units, two
	// records.
	if s, err := placeServer(h, "srv_4", &AddrRequest{IPv4Pools: []string{"pub4"}, IPv4: 2, IPv6Pools: []string{"pub6"}, IPv6: 1}); err != nil || len(s.Addrs) != 3 {
		t.Fatalf("srv_4: %+v %v", s.Addrs, err)
	}
	if _, err := placeServer(h, "srv_5", &AddrRequest{IPv4Pools: []string{"pub4b"}, IPv4: 1}); err != nil {
		t.Fatal(err)
	}
	terminate(h, "srv_2")
	want := ipDump(h.fsms[0])
	if n := h.count(store.BucketIPAllocs, ""); n != 7 {
		t.Fatalf("%d ip_allocs records, want 7 (srv_1, srv_3, srv_4: 2 each, srv_5: 1, terminated srv_2: none)", n)
	}

	// Replica 1 becomes a version-1 database; its snapshot is a version-1
	// snapshot.
	toSchemaV1(t, h.fsms[1])
	old := ipDump(h.fsms[1])
	if bytes.Equal(old, want) || !bytes.Contains(old, []byte(`pub4/198.51.100.3/32{"prefix":"198.51.100.3/32","server_id":"srv_1","account_id":"acc_1"}`)) {
		t.Fatalf("the version-1 state is not the old layout:\n%s", old)
	}
	snap := backup(t, h.fsms[1])

	// Opened: migrated.
	g := reopen(h, 1)
	if got := ipDump(g); !bytes.Equal(got, want) {
		t.Fatalf("migrated on open:\n%s\nwant:\n%s", got, want)
	}
	// Restored from the version-1 snapshot (replica 2 had built its
	// allocators): migrated.
	restore(t, h.fsms[2], snap)
	if got := ipDump(h.fsms[2]); !bytes.Equal(got, want) {
		t.Fatalf("migrated on restore:\n%s\nwant:\n%s", got, want)
	}
	var v uint64
	_ = h.fsms[2].View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(store.BucketMeta).Get([]byte("schema_version")))
		return nil
	})
	if v != store.SchemaVersion {
		t.Fatalf("schema_version after migration: %d", v)
	}

	// All three go on alike: the next addresses skip the reserved, the
	// allocated and the quarantined units.
	s, err := placeServer(h, "srv_6", bothFamilies)
	if err != nil || s.IPv4 != "198.51.100.8/24" || s.IPv6 != "2001:db8:0:4::1/64" {
		t.Fatalf("after migration: %q %q %v", s.IPv4, s.IPv6, err)
	}
	if _, err := h.apply(CmdIPRelease, IPRelease{Pool: "pub4", IP: "198.51.100.3"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "srv_1") {
		t.Fatalf("releasing a migrated server's address by hand: %v", err)
	}
	if _, err := h.apply(CmdIPReserve, IPReserve{Pool: "pub4", IP: "198.51.100.4"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "quarantine") {
		t.Fatalf("reserving srv_2's quarantined address: %v", err)
	}
	terminate(h, "srv_4") // its migrated record goes, its three units into quarantine
	if n := h.count(store.BucketIPAllocs, "pub4/srv_4"); n != 0 {
		t.Fatalf("srv_4 keeps %d pub4 records after terminate", n)
	}
	for i := 1; i < len(h.fsms); i++ {
		if !bytes.Equal(ipDump(h.fsms[0]), ipDump(h.fsms[i])) {
			t.Fatalf("replica %d differs after migration", i)
		}
	}
	free, err := h.fsms[2].PoolsFree([]string{"pub4", "pub4b"}, h.at)
	if err != nil || free["pub4"] != 253-7 || free["pub4b"] != 252 {
		// pub4: .2 reserved, .3-.7 allocated or quarantined, .8 srv_6
		t.Fatalf("free after migration: %v %v", free, err)
	}
}

// TestPoolsFreeDoesNotWaitForABatch: the proposer's free count is read
// from what the last applied batch left, while placements apply
// concurrently (run with -race), and not held up by a batch being applied.
func TestPoolsFreeDoesNotWaitForABatch(t *testing.T) {
	h := ipHarness(t)
	f := h.fsms[0]
	free := func() uint64 {
		t.Helper()
		n, err := f.PoolsFree([]string{"pub4"}, h.at)
		if err != nil {
			t.Fatal(err)
		}
		return n["pub4"]
	}
	if n := free(); n != 253 {
		t.Fatalf("an empty /24 counts %d free", n)
	}
	done := make(chan struct{})
	counts := make(chan uint64, 1)
	go func() {
		defer close(counts)
		last := uint64(253)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, err := f.PoolsFree([]string{"pub4"}, time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC))
			if err != nil || n["pub4"] > last {
				counts <- n["pub4"] // a count that went up, or an error
				return
			}
			last = n["pub4"]
		}
	}()
	for i := 0; i < 40; i++ {
		if _, err := placeServer(h, fmt.Sprintf("srv_%d", i), bothFamilies); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if n, bad := <-counts; bad {
		t.Fatalf("a concurrent reader saw the free count go up to %d", n)
	}
	if n := free(); n != 253-40 {
		t.Fatalf("after 40 placements %d free", n)
	}
	// A batch being applied holds the allocators; the count is still read.
	f.poolMu.Lock()
	got := make(chan uint64, 1)
	go func() { n, _ := f.PoolsFree([]string{"pub4"}, h.at); got <- n["pub4"] }()
	select {
	case n := <-got:
		if n != 253-40 {
			t.Errorf("during a batch %d free", n)
		}
	case <-time.After(5 * time.Second):
		t.Error("PoolsFree waited for the batch being applied")
	}
	f.poolMu.Unlock()
}
