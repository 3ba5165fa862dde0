package session_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/testpki"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// buildSim builds the agent simulator (the real agent session code, no libvirt)
// once per test binary: coordinator tests cannot import the agent's internal
// packages, so they run it as a process.
func buildSim(t testing.TB) string { return framework.AgentSim(t) }

func freeUDP(t testing.TB) string { return framework.FreeAddr(t, "udp") }

// agentOpts gives every coordinator an agent session listener with fast pings,
// and Raft timeouts of 2 s: the three coordinators share this test process
// (with -race) on a 2-core machine, and the test cluster's 500 ms (a 250 ms
// leader lease) let leadership move under load (a CI run at load ~40 saw the
// agent sent to a leader elected after the test had read it), which the test
// counts as Raft entries and a wrong redirect.
func agentOpts(t testing.TB, ping, grace time.Duration) testcluster.Option {
	return func(_ int, c *server.Config) {
		c.Nodes.ListenAddr = freeUDP(t)
		c.Nodes.PingInterval = ping
		c.Nodes.Grace = grace
		c.Nodes.CertTTL = time.Minute
		c.HeartbeatTimeout, c.ElectionTimeout = 2*time.Second, 2*time.Second
	}
}

type simEvent = framework.Event

func startSim(t testing.TB, args ...string) *framework.Sim {
	t.Helper()
	return framework.StartSim(t, buildSim(t), args...)
}

func sessionAddrs(c *testcluster.Cluster, order ...int) string {
	var out []string
	for _, i := range order {
		out = append(out, c.Nodes[i].Server.AgentSessionAddr())
	}
	return strings.Join(out, ",")
}

func leaderAdmin(c *testcluster.Cluster) int { return c.WaitLeader(10 * time.Second) }

func newToken(t *testing.T, c *testcluster.Cluster, ttl time.Duration) api.JoinTokenCreated {
	t.Helper()
	var tok api.JoinTokenCreated
	c.Retry503(func() (err error) {
		tok, err = c.Admin(leaderAdmin(c)).CreateJoinToken(context.Background(), api.JoinTokenCreateRequest{TTLSeconds: int(ttl / time.Second)})
		return err
	})
	return tok
}

func getNode(t *testing.T, c *testcluster.Cluster, id string) api.AgentNode {
	t.Helper()
	var n api.AgentNode
	c.Retry503(func() (err error) {
		n, err = c.Admin(leaderAdmin(c)).AgentNode(context.Background(), id)
		return err
	})
	return n
}

func waitState(t *testing.T, c *testcluster.Cluster, id, state string, timeout time.Duration) (api.AgentNode, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		n := getNode(t, c, id)
		// Ready also means the leader holds the session (registered just after
		// the hello is recorded).
		if n.State == state && (state != api.AgentNodeReady || n.Connected) {
			return n, time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("node %s is %s, not %s, after %s", id, n.State, state, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func otherIndex(c *testcluster.Cluster, not int) int {
	for i := range c.Nodes {
		if i != not && c.Running(i) {
			return i
		}
	}
	return -1
}

// TestAgentSessionEndToEnd runs real agent session code (the simulator) over
// QUIC on loopback against a real 3-node coordinator cluster: enrolment through
// a follower, the mutual-TLS session, liveness transitions with one Raft write
// each, certificate renewal, refusals (used and expired tokens, another CA, a
// removed node) and reconnection to a new leader after the leader is killed.
func TestAgentSessionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	buildSim(t)
	const ping, grace = 150 * time.Millisecond, 1200 * time.Millisecond
	c := testcluster.New(t, 3, agentOpts(t, ping, grace))
	ld := c.WaitLeader(10 * time.Second)
	fol := otherIndex(c, ld)
	ctx := context.Background()
	base := t.TempDir()
	dirHV1 := filepath.Join(base, "hv-1")
	// The follower first: it must send the agent to the leader.
	addrs := sessionAddrs(c, fol, ld)
	for i := range c.Nodes {
		if i != fol && i != ld {
			addrs += "," + sessionAddrs(c, i)
		}
	}

	tok := newToken(t, c, time.Hour)
	if !strings.HasPrefix(tok.Token, "hpj1.") || tok.CAFingerprint == "" {
		t.Fatalf("token %+v", tok)
	}

	t.Run("enrol, session up, listed ready", func(t *testing.T) {
		start := time.Now()
		p := startSim(t, "-coordinators", addrs, "-token", tok.Token, "-node-id", "hv-1", "-dir", dirHV1)
		p.Wait("enrolled", 10*time.Second)
		e := p.Wait("connected", 10*time.Second)
		if e.Coordinator != c.Nodes[ld].Server.AgentSessionAddr() {
			t.Fatalf("connected to %s, want the leader %s", e.Coordinator, c.Nodes[ld].Server.AgentSessionAddr())
		}
		n, _ := waitState(t, c, "hv-1", api.AgentNodeReady, 5*time.Second)
		if !n.Connected || n.Capacity.VCPUs != 8 || n.Capacity.MemoryBytes != 16<<30 || n.SoftwareVersion != "sim" || n.LastSeenAt == nil ||
			n.ProtocolVersion == 0 || len(n.Roles) != 1 {
			t.Fatalf("node %+v", n)
		}
		ns, err := c.Admin(ld).AgentNodes(ctx)
		if err != nil || len(ns) != 1 || ns[0].ID != "hv-1" {
			t.Fatalf("list: %v %+v", err, ns)
		}
		t.Logf("enrol → session up → ready in %s", time.Since(start).Round(time.Millisecond))

		// Pings alone write nothing through Raft.
		before := c.Nodes[ld].Server.Node.FSM.AppliedIndex()
		time.Sleep(8 * ping)
		if after := c.Nodes[ld].Server.Node.FSM.AppliedIndex(); after != before {
			t.Fatalf("applied index moved %d → %d while the node only pinged", before, after)
		}
		if got := c.Nodes[ld].Server.AgentSessions().Pings(); got == 0 {
			t.Fatal("no pings answered")
		}

		// Liveness: killed agent → unreachable after the grace period, one write.
		tr := getNode(t, c, "hv-1").Transitions
		idx := c.Nodes[ld].Server.Node.FSM.AppliedIndex()
		p.Kill()
		n, took := waitState(t, c, "hv-1", api.AgentNodeUnreachable, 5*grace)
		t.Logf("unreachable %s after the agent was killed (grace %s)", took.Round(time.Millisecond), grace)
		time.Sleep(3 * ping)
		if n2 := getNode(t, c, "hv-1"); n2.Transitions != tr+1 || n2.Connected {
			t.Fatalf("transitions %d → %d (want one), connected %v", tr, n2.Transitions, n2.Connected)
		}
		if d := c.Nodes[ld].Server.Node.FSM.AppliedIndex() - idx; d != 1 {
			t.Fatalf("%d raft entries for the ready → unreachable transition, want 1", d)
		}
		// Back: one more write (the hello), then quiet again.
		idx = c.Nodes[ld].Server.Node.FSM.AppliedIndex()
		p = startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dirHV1)
		p.Wait("connected", 10*time.Second)
		n, _ = waitState(t, c, "hv-1", api.AgentNodeReady, 5*time.Second)
		time.Sleep(4 * ping)
		if n2 := getNode(t, c, "hv-1"); n2.Transitions != tr+2 {
			t.Fatalf("transitions %d after coming back, want %d", n2.Transitions, tr+2)
		}
		if d := c.Nodes[ld].Server.Node.FSM.AppliedIndex() - idx; d != 1 {
			t.Fatalf("%d raft entries for the unreachable → ready transition, want 1", d)
		}
		if !n.Connected {
			t.Fatalf("back but not connected: %+v", n)
		}
		p.Kill()
	})

	t.Run("no plaintext join token in any coordinator file", func(t *testing.T) {
		secret := strings.Split(tok.Token, ".")[2]
		for i := range c.Nodes {
			_ = filepath.Walk(c.Nodes[i].Cfg.DataDir, func(path string, info os.FileInfo, err error) error {
				if err != nil || info.IsDir() {
					return nil
				}
				b, err := os.ReadFile(path)
				if err == nil && (strings.Contains(string(b), secret) || strings.Contains(string(b), tok.Token)) {
					t.Errorf("%s holds the join token's secret", path)
				}
				return nil
			})
		}
	})

	t.Run("token used twice refused", func(t *testing.T) {
		p := startSim(t, "-coordinators", addrs, "-token", tok.Token, "-node-id", "hv-2", "-dir", filepath.Join(base, "hv-2"))
		if code := p.ExitCode(10 * time.Second); code != 3 {
			t.Fatalf("exit %d, want 3 (token refused); stderr %s", code, p.Stderr)
		}
	})

	t.Run("expired token refused", func(t *testing.T) {
		short := newToken(t, c, time.Second)
		time.Sleep(1500 * time.Millisecond)
		p := startSim(t, "-coordinators", addrs, "-token", short.Token, "-node-id", "hv-3", "-dir", filepath.Join(base, "hv-3"))
		if code := p.ExitCode(10 * time.Second); code != 3 {
			t.Fatalf("exit %d, want 3 (token refused)", code)
		}
		if _, err := c.Admin(leaderAdmin(c)).AgentNode(ctx, "hv-3"); err == nil {
			t.Fatal("hv-3 was recorded")
		}
	})

	t.Run("certificate from another CA refused", func(t *testing.T) {
		// The real CA (so the agent trusts the coordinator) but a node
		// certificate for hv-1 signed by a CA the coordinators do not know.
		dir := filepath.Join(base, "foreign")
		foreignCreds(t, dirHV1, dir, "hv-1")
		p := startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dir, "-log-level", "debug")
		select {
		case e := <-p.Events:
			if e.Kind == "connected" {
				t.Fatalf("a certificate of another CA got a session: %+v", e)
			}
		case <-time.After(2 * time.Second):
		}
		p.Kill()
		if log := p.Stderr.String(); !strings.Contains(log, "tls: unknown certificate authority") {
			t.Fatalf("no TLS refusal in the agent's log:\n%s", log)
		}
	})

	t.Run("certificate renewed over the session", func(t *testing.T) {
		old := readCert(t, dirHV1)
		// 50 s ahead of a 1-minute certificate: past two thirds of its life.
		p := startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dirHV1, "-clock-skew", "50s")
		p.Wait("connected", 10*time.Second)
		p.Wait("renewed", 10*time.Second)
		p.Kill()
		renewed := readCert(t, dirHV1)
		ld := c.WaitLeader(10 * time.Second)
		_ = c.Nodes[ld].Server.Node.FSM.View(func(tx *bolt.Tx) error {
			n, err := store.Read(tx).AgentNode("hv-1")
			// The leader checks later renewals against the renewed certificate,
			// so exactly the file's certificate is current or (killed mid-way
			// through a further renewal) previous.
			if err != nil || (n.CertSerial != fmt.Sprintf("%x", renewed.SerialNumber.Bytes()) && n.PrevCertSerial != fmt.Sprintf("%x", renewed.SerialNumber.Bytes())) {
				t.Errorf("fsm %+v, %v; file serial %x", n, err, renewed.SerialNumber.Bytes())
			}
			return nil
		})
		if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 || !renewed.NotAfter.After(old.NotAfter) {
			t.Fatalf("certificate not replaced: %s %s → %s %s", old.SerialNumber, old.NotAfter, renewed.SerialNumber, renewed.NotAfter)
		}
		// The new certificate opens a session (no skew this time).
		p = startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dirHV1)
		p.Wait("connected", 10*time.Second)
		if n := getNode(t, c, "hv-1"); !n.CertNotAfter.Equal(renewed.NotAfter.UTC()) {
			t.Fatalf("fsm cert_not_after %s, file %s", n.CertNotAfter, renewed.NotAfter)
		}
		p.Kill()
	})

	t.Run("reconnects to the new leader after the leader is killed", func(t *testing.T) {
		p := startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dirHV1)
		p.Wait("connected", 10*time.Second)
		old := c.WaitLeader(10 * time.Second)
		start := time.Now()
		c.Kill(old)
		var e simEvent
		for {
			e = p.Wait("connected", 20*time.Second)
			nl := c.WaitLeader(10 * time.Second)
			if e.Coordinator == c.Nodes[nl].Server.AgentSessionAddr() {
				break
			}
		}
		t.Logf("session back on the new leader %s %s after the old leader was killed", e.Coordinator, time.Since(start).Round(time.Millisecond))
		waitState(t, c, "hv-1", api.AgentNodeReady, 5*time.Second)
		if n := getNode(t, c, "hv-1"); !n.Connected {
			t.Fatalf("node not connected to the new leader: %+v", n)
		}
		c.Restart(old)

		// Removal: the live session is closed and the node is refused from then on.
		t.Run("removed node refused", func(t *testing.T) {
			var n api.AgentNode
			c.Retry503(func() (err error) { n, err = c.Admin(leaderAdmin(c)).RemoveAgentNode(ctx, "hv-1"); return err })
			if n.State != api.AgentNodeRemoved {
				t.Fatalf("after remove: %+v", n)
			}
			if code := p.ExitCode(10 * time.Second); code != 4 {
				t.Fatalf("exit %d after removal, want 4 (refused); stderr %s", code, p.Stderr)
			}
			p2 := startSim(t, "-coordinators", addrs, "-node-id", "hv-1", "-dir", dirHV1)
			if code := p2.ExitCode(10 * time.Second); code != 4 {
				t.Fatalf("exit %d on reconnect after removal, want 4", code)
			}
		})
	})
}

func readCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// foreignCreds writes into dst the CA of src and a key + certificate for
// nodeID signed by a freshly made, unrelated CA.
func foreignCreds(t *testing.T, src, dst, nodeID string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(src, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	der, key := testpki.NewCA(t, "evil CA", time.Hour).Leaf(t, nodeID, time.Hour, x509.ExtKeyUsageClientAuth)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	testpki.WritePEM(t, filepath.Join(dst, "node.key"), "PRIVATE KEY", keyDER)
	testpki.WritePEM(t, filepath.Join(dst, "node.crt"), "CERTIFICATE", der)
	if err := os.WriteFile(filepath.Join(dst, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
}
