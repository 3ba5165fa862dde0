package clustertest

import (
	"errors"
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
		return startLogging(t, base, id, bootstrap, "")
	}
	waitLogged := func(name string, log *framework.SyncBuilder, want string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !strings.Contains(log.String(), want); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not log %q; log:\n%s", name, want, log.String())
			}
		}
	}
	var all []*server.Server
	// join adds s as a voter through whichever coordinator leads, again
	// while that fails: on a loaded machine a leader may lose its
	// leadership while committing the change (the change is then made
	// again, a no-op if it had been committed).
	join := func(id string, s *server.Server) {
		t.Helper()
		err := errors.New("no coordinator leads")
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for _, l := range all {
				if l.Node.IsLeader() {
					if err = l.Node.Join(id, s.RaftAddr()); err == nil {
						all = append(all, s)
						return
					}
				}
			}
		}
		t.Fatalf("%s does not join: %v", id, err)
	}
	a, aLog := start("pub1", true)
	all = append(all, a)
	b, bLog := start("pub2", false)
	join("pub2", b)
	waitLogged("pub1", aLog, warning("2"))
	waitLogged("pub2", bLog, warning("2"))

	c, cLog := start("pub3", false)
	join("pub3", c)
	waitLogged("pub1", aLog, warning("3"))
	waitLogged("pub2", bLog, warning("3"))
	waitLogged("pub3", cLog, warning("3"))
	for name, s := range map[string]*server.Server{"pub1": a, "pub2": b, "pub3": c} {
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
