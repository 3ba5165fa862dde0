package clustertest

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestNoPublicURLWarningFollowsTheClusterSize: coordinators without
// --public-url. Two form a cluster and each warns "in a cluster of 2
// coordinators"; a third joins and every one of them warns "in a cluster of 3
// coordinators" (what cluster status says). A coordinator used to warn once,
// with the size it first saw: a follower that saw the configuration of two
// before the third was added never said 3 (tests/audit
// TestMCPDiscoveryOutsideIn/no_public_url failed so in CI). Fails on that
// code: the first two never log the warning naming 3.
func TestNoPublicURLWarningFollowsTheClusterSize(t *testing.T) {
	warning := func(n string) string { return "no --public-url, in a cluster of " + n + " coordinators" }
	base := t.TempDir()
	start := func(id string, bootstrap bool) (*server.Server, *framework.SyncBuilder) {
		t.Helper()
		cfg := server.Defaults()
		cfg.NodeID, cfg.DataDir = id, filepath.Join(base, id)
		cfg.AdminSocket = filepath.Join(cfg.DataDir, "admin.sock")
		cfg.APIAddr, cfg.RaftAddr, cfg.MetricsAddr = framework.FreeAddr(t, "tcp"), framework.FreeAddr(t, "tcp"), ""
		cfg.Bootstrap, cfg.BootstrapAccount = bootstrap, false
		cfg.ClusterSecret, cfg.PublicURL = "", ""
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = 500*time.Millisecond, 500*time.Millisecond
		cfg.LogFormat = "text"
		logs := &framework.SyncBuilder{}
		s, err := server.Start(cfg, slog.New(slog.NewTextHandler(logs, nil)), io.Discard)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, logs
	}
	waitLogged := func(name string, log *framework.SyncBuilder, want string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(log.String(), want); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not log %q; log:\n%s", name, want, log.String())
			}
		}
	}
	a, aLog := start("pub1", true)
	for deadline := time.Now().Add(15 * time.Second); !a.Node.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the single coordinator does not lead")
		}
	}
	b, bLog := start("pub2", false)
	if err := a.Node.Join("pub2", b.RaftAddr()); err != nil {
		t.Fatal(err)
	}
	waitLogged("the leader", aLog, warning("2"))
	waitLogged("the follower", bLog, warning("2"))

	c, cLog := start("pub3", false)
	if err := a.Node.Join("pub3", c.RaftAddr()); err != nil {
		t.Fatal(err)
	}
	waitLogged("the leader", aLog, warning("3"))
	waitLogged("the first follower", bLog, warning("3"))
	waitLogged("the follower that joined last", cLog, warning("3"))
	for name, s := range map[string]*server.Server{"the leader": a, "the first follower": b, "the follower that joined last": c} {
		st, err := s.API.ClusterStatus()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, w := range st.Warnings {
			found = found || strings.HasPrefix(w, warning("3"))
		}
		if !found {
			t.Errorf("%s: cluster status warnings %q; want %q", name, st.Warnings, warning("3"))
		}
	}
}
