package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func nodeDump(f *FSM) []byte { return bucketDump(f, store.BucketAgentNodes) }

// TestNodeHostingConnection: from LevelHostingConnection a hosting node's
// connection details are recorded from its Hello (replaced by each Hello:
// one without them clears them) and from a usage report (which may then
// name no account; one without them changes nothing); invalid ones are
// refused. Below the level neither command records them (no key in the
// node's record, as the release before writes it), and a report naming no
// account is invalid as before.
func TestNodeHostingConnection(t *testing.T) {
	h, _ := hostingUsageHarness(t, LevelHostingConnection-1)
	node := func() *api.NodeHostingConnection {
		t.Helper()
		return readOne(t, h.fsms[1], func(r store.ReadTx) (store.AgentNode, error) { return r.AgentNode("hv-1") }).HostingConnection
	}
	conn := &api.NodeHostingConnection{SFTPHost: "web1.hosting.example", SFTPPort: 2222, DBPort: 3307}
	hello := func(c *api.NodeHostingConnection) (any, error) {
		return h.apply(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 106, HostingConnection: c})
	}
	report := func(c *api.NodeHostingConnection, ids ...string) (any, error) {
		p := HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second), Connection: c}
		for _, id := range ids {
			p.Accounts = append(p.Accounts, HostingUsageEntry{ID: id, DiskUsedBytes: 8192})
		}
		return h.apply(CmdHostingUsage, p)
	}
	if _, err := hello(conn); err != nil {
		t.Fatal(err)
	}
	if _, err := report(conn, "hst_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := report(conn); !errors.Is(err, ErrInvalid) {
		t.Fatalf("below level 7 a report of no account: %v, want invalid", err)
	}
	if c := node(); c != nil || strings.Contains(string(nodeDump(h.fsms[0])), "hosting_connection") {
		t.Fatalf("below level 7 the node recorded %+v", c)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelHostingConnection})
	if _, err := report(conn); err != nil {
		t.Fatalf("a report of the connection alone: %v", err)
	}
	if c := node(); c == nil || *c != *conn {
		t.Fatalf("after the report: %+v", c)
	}
	if _, err := report(nil, "hst_1"); err != nil || node() == nil {
		t.Fatalf("a report without connection details cleared them: %v %+v", err, node())
	}
	other := &api.NodeHostingConnection{SFTPPort: 22, DBPort: 3306}
	if _, err := hello(other); err != nil {
		t.Fatal(err)
	}
	if c := node(); c == nil || *c != *other {
		t.Fatalf("after a hello: %+v", c)
	}
	if _, err := hello(nil); err != nil || node() != nil {
		t.Fatalf("a hello without them (an older agent): %v %+v, want none", err, node())
	}
	for _, bad := range []api.NodeHostingConnection{{SFTPHost: "Bad_Host"}, {SFTPPort: 70000}, {DBPort: -1}, {SFTPHost: "a b"}} {
		before := string(nodeDump(h.fsms[0]))
		if _, err := hello(&bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("hello with %+v: %v, want invalid", bad, err)
		}
		if _, err := report(&bad, "hst_1"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("report with %+v: %v, want invalid", bad, err)
		}
		if string(nodeDump(h.fsms[0])) != before {
			t.Fatalf("refused %+v changed the node", bad)
		}
	}
	if _, err := hello(&api.NodeHostingConnection{SFTPHost: "192.0.2.7", SFTPPort: 22}); err != nil {
		t.Fatalf("an IP address as the SFTP host: %v", err)
	}
	h.replicasSame(nodeDump)
	h.replicasSame(hostingDump)
}

// TestNodeHostingConnectionZone: an SFTP host that is an IP address with a
// zone (fe80::1%eth0) is refused by the leader's check at any level, and by
// apply from LevelHostingHostNoZone with nothing changed; below it apply
// records it, as the release before does (an older leader may have
// proposed it, and a replayed log must come out the same).
func TestNodeHostingConnectionZone(t *testing.T) {
	zoned := api.NodeHostingConnection{SFTPHost: "fe80::1%eth0", SFTPPort: 22}
	if err := CheckNodeHostingConnection(zoned); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "zone") {
		t.Fatalf("the leader's check of %+v: %v, want invalid naming the zone", zoned, err)
	}
	h, _ := hostingUsageHarness(t, LevelHostingHostNoZone-1)
	node := func() *api.NodeHostingConnection {
		t.Helper()
		return readOne(t, h.fsms[1], func(r store.ReadTx) (store.AgentNode, error) { return r.AgentNode("hv-1") }).HostingConnection
	}
	hello := func(c *api.NodeHostingConnection) (any, error) {
		return h.apply(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 106, HostingConnection: c})
	}
	report := func(c *api.NodeHostingConnection) (any, error) {
		return h.apply(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second), Connection: c})
	}
	if _, err := hello(&zoned); err != nil {
		t.Fatalf("below level %d a hello with %+v: %v, want recorded as before", LevelHostingHostNoZone, zoned, err)
	}
	if c := node(); c == nil || *c != zoned {
		t.Fatalf("below level %d: %+v", LevelHostingHostNoZone, c)
	}
	good := api.NodeHostingConnection{SFTPHost: "2001:db8::7", SFTPPort: 22, DBPort: 3306}
	if _, err := report(&good); err != nil {
		t.Fatal(err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelHostingHostNoZone})
	for _, bad := range []api.NodeHostingConnection{zoned, {SFTPHost: "fe80::1%25eth0"}, {SFTPHost: "192.0.2.7%lo", DBPort: 3306}} {
		before := string(nodeDump(h.fsms[0]))
		if _, err := hello(&bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("hello with %+v: %v, want invalid", bad, err)
		}
		if _, err := report(&bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("report with %+v: %v, want invalid", bad, err)
		}
		if string(nodeDump(h.fsms[0])) != before {
			t.Fatalf("refused %+v changed the node", bad)
		}
	}
	if c := node(); c == nil || *c != good {
		t.Fatalf("after the refusals: %+v, want %+v", c, good)
	}
	h.replicasSame(nodeDump)
}

// TestNodeHostingConnectionDBKnown: from LevelHostingDBKnown a node's
// connection details keep DBKnown (a db port of 0 is then MariaDB's answer:
// no TCP); below it apply records them without it (no db_known key in the
// node's record, as the release before writes it), and the leader's
// HostingConnectionAt drops it likewise, so it compares and proposes what
// apply records.
func TestNodeHostingConnectionDBKnown(t *testing.T) {
	h, _ := hostingUsageHarness(t, LevelHostingDBKnown-1)
	node := func() *api.NodeHostingConnection {
		t.Helper()
		return readOne(t, h.fsms[1], func(r store.ReadTx) (store.AgentNode, error) { return r.AgentNode("hv-1") }).HostingConnection
	}
	hello := func(c *api.NodeHostingConnection) {
		t.Helper()
		h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 106, HostingConnection: c})
	}
	report := func(c *api.NodeHostingConnection) {
		t.Helper()
		h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second), Connection: c})
	}
	noTCP := &api.NodeHostingConnection{SFTPPort: 22, DBKnown: true}
	unknown := api.NodeHostingConnection{SFTPPort: 22}
	hello(noTCP)
	if c := node(); c == nil || *c != unknown || strings.Contains(string(nodeDump(h.fsms[0])), "db_known") {
		t.Fatalf("below level 12 a hello recorded %+v (%s), want %+v", c, nodeDump(h.fsms[0]), unknown)
	}
	report(&api.NodeHostingConnection{SFTPPort: 2222, DBKnown: true})
	if c := node(); c == nil || *c != (api.NodeHostingConnection{SFTPPort: 2222}) {
		t.Fatalf("below level 12 a report recorded %+v", c)
	}
	if got := HostingConnectionAt(noTCP, LevelHostingDBKnown-1); *got != unknown || !noTCP.DBKnown {
		t.Fatalf("the leader's view below level 12: %+v (and the node's %+v), want %+v and the node's unchanged", got, noTCP, unknown)
	}
	if got := HostingConnectionAt(noTCP, LevelHostingDBKnown); got != noTCP {
		t.Fatalf("the leader's view at level 12: %+v, want %+v", got, noTCP)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelHostingDBKnown})
	hello(noTCP)
	if c := node(); c == nil || *c != *noTCP {
		t.Fatalf("at level 12 a hello recorded %+v, want %+v", c, noTCP)
	}
	report(&unknown)
	if c := node(); c == nil || *c != unknown {
		t.Fatalf("at level 12 a report without it (an older agent) left %+v, want %+v", c, unknown)
	}
	report(noTCP)
	if c := node(); c == nil || *c != *noTCP {
		t.Fatalf("at level 12 a report recorded %+v, want %+v", c, noTCP)
	}
	h.replicasSame(nodeDump)
}
