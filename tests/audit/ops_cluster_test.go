package audit

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestOpsClusterRemoveKeepsQuorum: with one of three coordinators down,
// `hostplanectl cluster remove` of a live follower would leave two voters of
// which only the leader answers: the cluster could commit nothing more (the
// removal itself included) until the dead one came back. It is refused (exit
// 1, a 409 naming the quorum, the unreachable member and --force), the
// membership stays, and the cluster still takes writes. Once the dead one is
// back the same removal goes through; removing it a second time, on the
// leader or on the removed coordinator itself, exits non-zero naming it,
// within the command's bounds, and the cluster still takes writes.
func TestOpsClusterRemoveKeepsQuorum(t *testing.T) {
	c, ld := plainCluster(t)
	f1, down := (ld+1)%3, (ld+2)%3
	leader := c.Nodes[ld]
	want := voterIDs(clusterStatus(t, leader))
	c.Kill(down)
	// The leader notices the dead member at its next heartbeat.
	time.Sleep(2 * time.Second)

	start := time.Now()
	r := ctl(t, leader, "cluster", "remove", c.Nodes[f1].ID)
	t.Logf("remove of %s with %s down took %s: %s", c.Nodes[f1].ID, c.Nodes[down].ID, time.Since(start).Round(time.Millisecond), r)
	if r.code != 1 || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "quorum") ||
		!strings.Contains(r.stderr, c.Nodes[down].ID) || !strings.Contains(r.stderr, "--force") || r.stdout != "" {
		t.Errorf("remove of a live follower with the third coordinator down: want exit 1, a 409 naming the quorum, %s and --force: %s", c.Nodes[down].ID, r)
	}
	for _, i := range []int{ld, f1} {
		if got := voterIDs(clusterStatus(t, c.Nodes[i])); !slices.Equal(got, want) {
			t.Fatalf("after the refused removal coordinator %s has voters %v, want %v", c.Nodes[i].ID, got, want)
		}
	}
	if r := ctl(t, c.Nodes[f1], "account", "create", "--email", "after-refused-remove@example.com"); r.code != 0 {
		t.Fatalf("a write after the refused removal: %s", r)
	}

	c.Restart(down)
	time.Sleep(2 * time.Second) // the leader hears from it again
	if r := ctl(t, leader, "--json", "cluster", "remove", c.Nodes[f1].ID); r.code != 0 {
		t.Fatalf("remove of %s with every coordinator up: %s", c.Nodes[f1].ID, r)
	}
	for _, p := range []*framework.CoordinatorProcess{leader, c.Nodes[f1]} {
		start := time.Now()
		r := ctl(t, p, "cluster", "remove", c.Nodes[f1].ID)
		t.Logf("second remove on %s took %s: %s", p.ID, time.Since(start).Round(time.Millisecond), r)
		if r.code == 0 || !strings.Contains(r.stderr, c.Nodes[f1].ID) || r.stdout != "" {
			t.Errorf("second remove of %s on %s: want a failure naming it: %s", c.Nodes[f1].ID, p.ID, r)
		}
	}
	if got := voterIDs(clusterStatus(t, leader)); slices.Contains(got, c.Nodes[f1].ID) || len(got) != 2 {
		t.Fatalf("voters after the removal: %v", got)
	}
	// The restarted coordinator learns the two-voter cluster's leader at its
	// next heartbeat; a write sent before that is a 503 to retry.
	for end := time.Now().Add(15 * time.Second); clusterStatus(t, c.Nodes[down]).LeaderID == "" && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
	}
	if r := ctl(t, c.Nodes[down], "account", "create", "--email", "after-remove@example.com"); r.code != 0 {
		t.Fatalf("a write after the removal: %s", r)
	}
}

// TestOpsClusterBackupNotStale: `hostplanectl cluster backup` on a follower
// is the cluster's state, not the follower's own: right after a write
// acknowledged by the leader, its applied index is at least the leader's
// commit index of that write. A follower cut off from the others (it was
// down while a write committed, then came back alone) refuses by
// default, naming --stale, and writes no file;
// with --stale it writes its own state and says so, with the applied index.
func TestOpsClusterBackupNotStale(t *testing.T) {
	c, ld := plainCluster(t)
	f1, f2 := c.Nodes[(ld+1)%3], c.Nodes[(ld+2)%3]
	dir := t.TempDir()

	c.Kill((ld + 1) % 3)
	if r := ctl(t, c.Nodes[ld], "account", "create", "--email", "while-down@example.com"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	commit := clusterStatus(t, c.Nodes[ld]).CommitIndex
	// From the other follower, right after the write: the copy holds it.
	r := ctl(t, f2, "--json", "cluster", "backup", dir+"/f2.snap")
	var out struct {
		File         string `json:"file"`
		Bytes        int64  `json:"bytes"`
		AppliedIndex uint64 `json:"applied_index"`
		Node         string `json:"node"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.AppliedIndex < commit {
		t.Fatalf("backup on follower %s after a write at commit index %d: want its applied index at least that: %s", f2.ID, commit, r)
	}

	// f1 comes back alone: the other two are gone, it never got the write.
	c.Kill(ld)
	c.Kill((ld + 2) % 3)
	if err := f1.Start(); err != nil {
		t.Fatal(err)
	}
	var stale uint64
	framework.WaitFor(t, f1.ID+" to answer on its admin socket", 20*time.Second, 100*time.Millisecond, func() bool {
		r := ctl(t, f1, "--json", "cluster", "status")
		var st struct {
			AppliedIndex uint64 `json:"applied_index"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			return false
		}
		stale = st.AppliedIndex
		return true
	})
	if stale >= commit {
		t.Fatalf("%s applied %d, the write was at %d: the follower is not behind", f1.ID, stale, commit)
	}
	file := dir + "/f1.snap"
	r = ctl(t, f1, "cluster", "backup", file)
	if r.code == 0 || !strings.Contains(r.stderr, "--stale") || r.stdout != "" {
		t.Errorf("backup on a follower cut off from the leader, %d entries behind: want a failure naming --stale: %s", commit-stale, r)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("the refused backup left %s", file)
	}
	r = ctl(t, f1, "--json", "cluster", "backup", "--stale", file)
	out.AppliedIndex = 0
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.AppliedIndex >= commit || out.Node != f1.ID {
		t.Fatalf("backup --stale on %s: want its own state, named, at an applied index before the write's %d: %s", f1.ID, commit, r)
	}
	r = ctl(t, f1, "cluster", "backup", "--stale", file)
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, f1.ID) || !strings.Contains(r.stdout+r.stderr, "may miss") {
		t.Fatalf("backup --stale on %s: want it to say whose state it is and that it may miss writes: %s", f1.ID, r)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
}
