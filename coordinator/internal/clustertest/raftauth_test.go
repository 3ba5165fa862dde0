package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestForeignRaftPeerRefused: three coordinator processes with a cluster
// secret and no Raft TLS, at semantics level 2. A foreign Raft client
// (hashicorp/raft's NetworkTransport without the handshake, as any process
// reaching the port, or a coordinator of a release before it) sends every
// member AppendEntries, RequestVote and TimeoutNow with a far higher term, and
// a coordinator of another cluster (another secret) tries to make one member
// its own: every member refuses it and logs so, no term takes the foreign
// one, the membership and leader stay, and the cluster keeps serving writes.
// Before the handshake, the first AppendEntries made a member step down to the
// foreign term (run with the gate removed: the RPCs are answered).
func TestForeignRaftPeerRefused(t *testing.T) {
	bin := framework.Coordinator(t)
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: bin, NodePrefix: "ra"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The leader raises the level seconds after the start; each member then
	// requires the handshake.
	for i, p := range c.Nodes {
		framework.WaitLogged(t, p.LogPath(), "Raft connections must prove the cluster secret from now on", 60*time.Second)
		if st, err := c.Admin(i).ClusterStatus(ctx); err != nil || st.Level < 2 {
			t.Fatalf("%s: level %d (%v), want 2 or above", p.ID, st.Level, err)
		}
	}
	_, key, err := c.NewAccount(ctx, "raftauth@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ld := c.WaitLeader(20 * time.Second)
	before, err := c.Admin(ld).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	foreignTerm := before.Term + 1000
	lastBefore := map[string]uint64{}
	for i, p := range c.Nodes {
		st, err := c.Admin(i).ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lastBefore[p.ID] = st.LastIndex
	}

	foreign, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(foreign.LocalAddr())}
	for _, p := range c.Nodes {
		to := raft.ServerAddress(p.RaftAddr)
		var ae raft.AppendEntriesResponse
		if err := foreign.AppendEntries("intruder", to, &raft.AppendEntriesRequest{
			RPCHeader: hdr, Term: foreignTerm, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: before.CommitIndex + 1000,
			Entries: []*raft.Log{{Index: 1, Term: foreignTerm, Type: raft.LogCommand, Data: []byte("foreign")}},
		}, &ae); err == nil {
			t.Errorf("%s answered a foreign AppendEntries: %+v", p.ID, ae)
		}
		var rv raft.RequestVoteResponse
		if err := foreign.RequestVote("intruder", to, &raft.RequestVoteRequest{
			RPCHeader: hdr, Term: foreignTerm, LastLogIndex: before.LastIndex + 1000, LastLogTerm: foreignTerm,
		}, &rv); err == nil {
			t.Errorf("%s answered a foreign RequestVote: %+v", p.ID, rv)
		}
		var tn raft.TimeoutNowResponse
		if err := foreign.TimeoutNow("intruder", to, &raft.TimeoutNowRequest{RPCHeader: hdr}, &tn); err == nil {
			t.Errorf("%s answered a foreign TimeoutNow: %+v", p.ID, tn)
		}
		framework.WaitLogged(t, p.LogPath(), "refused a Raft connection", 10*time.Second)
	}

	// A coordinator of another cluster (its own random secret) adds a member
	// of this one as its voter: its leader's Raft traffic is refused.
	other := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: bin, NodePrefix: "rb"})
	victim := c.Nodes[1]
	jctx, jcancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = other.Admin(0).ClusterJoin(jctx, victim.ID, victim.RaftAddr, "")
	jcancel()
	framework.WaitLogged(t, other.Nodes[0].LogPath(), "does not match this cluster's secret", 30*time.Second)

	time.Sleep(2 * time.Second) // what a taken RPC would have done shows by now
	for i, p := range c.Nodes {
		st, err := c.Admin(i).ClusterStatus(ctx)
		if err != nil {
			t.Fatalf("%s status: %v", p.ID, err)
		}
		if st.Term >= foreignTerm {
			t.Errorf("%s took the foreign term: %d (its term was %d)", p.ID, st.Term, before.Term)
		}
		// The foreign AppendEntries carried one entry at index 1: taken, it
		// would have cut the log back to it.
		if st.LastIndex < lastBefore[p.ID] {
			t.Errorf("%s's log went back from index %d to %d", p.ID, lastBefore[p.ID], st.LastIndex)
		}
		if st.LeaderID == "" || !strings.HasPrefix(st.LeaderID, "ra") || len(st.Servers) != 3 {
			t.Errorf("%s: leader %q, members %+v", p.ID, st.LeaderID, st.Servers)
		}
		for _, s := range st.Servers {
			if !strings.HasPrefix(s.ID, "ra") {
				t.Errorf("%s lists a foreign member %+v", p.ID, s)
			}
		}
	}
	// Each with an Idempotency-Key, so the client sends it again after a
	// 503 an election answers (the cluster's 1 s Raft timeout, on a
	// loaded machine), as clients are told to.
	for i := range c.Nodes {
		tk, err := c.Client(i, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprintf("after the intruder %d", i), Message: "m"}, fmt.Sprintf("after-intruder-%d", i))
		if err != nil || tk.ID == "" {
			t.Fatalf("write through %s after the foreign Raft traffic: %v", c.Nodes[i].ID, err)
		}
	}
	for _, p := range c.Nodes {
		if b, _ := os.ReadFile(p.LogPath()); strings.Contains(string(b), c.Secret) {
			t.Errorf("%s logged the cluster secret", p.ID)
		}
		// Each foreign RPC came on a connection of its own.
		if n := refusedCount(t, p.MetricsURL()); n < 3 {
			t.Errorf("%s /metrics: hostplane_raft_connections_refused_total %d, want at least 3", p.ID, n)
		}
	}
}

// refusedCount reads hostplane_raft_connections_refused_total from a
// coordinator's /metrics.
func refusedCount(t *testing.T, base string) int {
	t.Helper()
	return metricsCounter(t, base, "hostplane_raft_connections_refused_total")
}

// TestOpenRaftPortWarned: coordinators with neither a cluster secret nor Raft
// TLS. A single one (make run, the embedded default) says nothing; one
// started to be joined warns at its start that its Raft port is open to
// anyone who reaches it; once the two form a cluster, the first warns too and
// cluster status lists the warning.
func TestOpenRaftPortWarned(t *testing.T) {
	const warning = "the Raft port is open to anyone who reaches it"
	base := t.TempDir()
	start := func(id string, bootstrap bool) (*server.Server, *framework.SyncBuilder) {
		t.Helper()
		return startLogging(t, base, id, bootstrap, "http://api.example.test") // no other warning
	}
	a, aLog := start("open1", true)
	for deadline := time.Now().Add(15 * time.Second); !a.Node.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the single coordinator does not lead")
		}
	}
	time.Sleep(2 * time.Second) // its checks run every second
	st, err := a.API.ClusterStatus()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(aLog.String(), warning) || len(st.Warnings) != 0 {
		t.Fatalf("a single coordinator warns: %q; log:\n%s", st.Warnings, aLog.String())
	}
	if got := a.Node.TransportAuth(); got != "none" {
		t.Fatalf("transport auth of a coordinator without secret or TLS: %q", got)
	}

	b, bLog := start("open2", false)
	if !strings.Contains(bLog.String(), warning) {
		t.Fatalf("a coordinator started to be joined without secret or TLS does not warn at its start; log:\n%s", bLog.String())
	}
	if err := a.Node.Join("open2", b.RaftAddr()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(aLog.String(), warning); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first coordinator does not warn once in a cluster of two; log:\n%s", aLog.String())
		}
	}
	if st, err = a.API.ClusterStatus(); err != nil || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], warning) {
		t.Fatalf("cluster status warnings %q (%v), want the open Raft port", st.Warnings, err)
	}
}

// startLogging starts coordinator id in base/id with neither a cluster secret
// nor Raft TLS, publicURL as its --public-url ("" for none), Raft timeouts of
// framework.RaftTimeout and its log kept in the returned builder (a log sink
// for coordinators in this process); t's cleanup closes it.
func startLogging(t *testing.T, base, id string, bootstrap bool, publicURL string) (*server.Server, *framework.SyncBuilder) {
	t.Helper()
	cfg := server.Defaults()
	cfg.NodeID, cfg.DataDir = id, filepath.Join(base, id)
	cfg.AdminSocket = filepath.Join(cfg.DataDir, "admin.sock")
	cfg.APIAddr, cfg.RaftAddr, cfg.MetricsAddr = framework.FreeAddr(t, "tcp"), framework.FreeAddr(t, "tcp"), ""
	cfg.Bootstrap, cfg.BootstrapAccount = bootstrap, false
	cfg.ClusterSecret, cfg.PublicURL = "", publicURL
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = framework.RaftTimeout, framework.RaftTimeout
	cfg.LogFormat = "text"
	logs := &framework.SyncBuilder{}
	s, err := server.Start(cfg, slog.New(slog.NewTextHandler(logs, nil)), io.Discard)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}
