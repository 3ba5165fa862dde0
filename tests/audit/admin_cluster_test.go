package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// ctlRun is one run of the hostplanectl binary: what it printed and its exit
// code.
type ctlRun struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r ctlRun) String() string {
	return fmt.Sprintf("hostplanectl %s: exit %d, stdout %q, stderr %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// ctl runs the hostplanectl binary of this tree on the admin socket of
// coordinator p, as an operator on that host would.
func ctl(t *testing.T, p *framework.CoordinatorProcess, args ...string) ctlRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, framework.Ctl(t), append([]string{"--socket", p.AdminSocket()}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlRun{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("hostplanectl %v: %v", args, err)
	}
	return r
}

// clusterStatus is `hostplanectl cluster status --json` on p.
func clusterStatus(t *testing.T, p *framework.CoordinatorProcess) api.ClusterStatus {
	t.Helper()
	r := ctl(t, p, "--json", "cluster", "status")
	var st api.ClusterStatus
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("%s", r)
	}
	return st
}

func voterIDs(st api.ClusterStatus) []string {
	var ids []string
	for _, s := range st.Servers {
		if s.Suffrage == "Voter" {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// plainCluster is three coordinator processes (framework.RaftTimeout) and
// no more, and the index of their leader.
func plainCluster(t *testing.T) (*framework.ProcessCluster, int) {
	t.Helper()
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, ld
}

// TestAdminClusterMembershipRefusals: `hostplanectl cluster join` with a Raft
// address no coordinator can listen on, and `cluster remove` of an id that
// is no member, run on a follower, exit non-zero naming the field or id on
// stderr and leave the membership as it was (before, a malformed address was
// added as a voter that can never answer: on a one-node cluster that alone
// loses the quorum; a removal of a mistyped id printed "removed").
// transfer-leadership on a follower is forwarded and moves the leadership.
func TestAdminClusterMembershipRefusals(t *testing.T) {
	c, ld := plainCluster(t)
	f := c.Nodes[(ld+1)%c.Len()]
	before := clusterStatus(t, f)
	want := voterIDs(before)
	if len(want) != 3 {
		t.Fatalf("voters %v", want)
	}
	for _, addr := range []string{"bad addr", "127.0.0.1", ":8421", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:port", "bad_host!:8421"} {
		r := ctl(t, f, "cluster", "join", "c9", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "raft_addr") || r.stdout != "" {
			t.Errorf("join at %q: want exit 2 naming raft_addr on stderr, nothing on stdout: %s", addr, r)
		}
	}
	// A member joined again at another address, or a new id at a member's
	// address: Raft would re-address the member (cut off by a typo).
	for _, m := range before.Servers {
		if m.ID == f.ID {
			continue
		}
		if r := ctl(t, f, "cluster", "join", m.ID, "127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, m.ID) {
			t.Errorf("join of member %s at another address: want exit 1, a 409 naming it: %s", m.ID, r)
		}
		if r := ctl(t, f, "cluster", "join", "c9", m.RaftAddr); r.code != 1 || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, m.ID) {
			t.Errorf("join of c9 at %s's address: want exit 1, a 409 naming %s: %s", m.ID, m.ID, r)
		}
		// The same member at its own address is no change, and no error.
		if r := ctl(t, f, "cluster", "join", m.ID, m.RaftAddr); r.code != 0 {
			t.Errorf("join of member %s at its own address: %s", m.ID, r)
		}
	}
	if r := ctl(t, f, "cluster", "remove", "c-typo"); r.code == 0 || !strings.Contains(r.stderr, "c-typo") || r.stdout != "" {
		t.Errorf("remove of a non-member: want a failure naming it on stderr: %s", r)
	}
	if r := ctl(t, f, "cluster", "transfer-leadership", "--to", "nope"); r.code != 2 || !strings.Contains(r.stderr, `"to"`) {
		t.Errorf("transfer to a non-member: want exit 2 naming \"to\": %s", r)
	}
	for _, p := range c.Nodes {
		st := clusterStatus(t, p)
		if got := voterIDs(st); !slices.Equal(got, want) {
			t.Fatalf("after the refusals coordinator %s has voters %v, want %v", p.ID, got, want)
		}
		for _, m := range st.Servers {
			if i := slices.IndexFunc(before.Servers, func(b api.ClusterServer) bool { return b.ID == m.ID }); i < 0 || before.Servers[i].RaftAddr != m.RaftAddr {
				t.Fatalf("after the refusals coordinator %s lists %s at %s, before %+v", p.ID, m.ID, m.RaftAddr, before.Servers)
			}
		}
	}
	// The cluster still takes writes through the follower.
	if r := ctl(t, f, "account", "create", "--email", "after-refusals@example.com"); r.code != 0 {
		t.Fatalf("%s", r)
	}

	old := c.Nodes[ld].ID
	r := ctl(t, f, "--json", "cluster", "transfer-leadership")
	var st api.ClusterStatus
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.LeaderID == old || st.LeaderID == "" {
		t.Fatalf("transfer-leadership on follower %s (leader was %s): %s", f.ID, old, r)
	}
	framework.WaitFor(t, "every coordinator to see the new leader", 10*time.Second, 50*time.Millisecond, func() bool {
		for _, p := range c.Nodes {
			if s := clusterStatus(t, p); s.LeaderID != st.LeaderID {
				return false
			}
		}
		return true
	})
	// The old leader, now a follower, forwards an admin write.
	if r := ctl(t, c.Nodes[ld], "account", "create", "--email", "after-transfer@example.com"); r.code != 0 {
		t.Fatalf("write on the old leader: %s", r)
	}
}

// TestAdminDuringLeaderChange: with the leader and another coordinator
// SIGKILLed (no quorum), hostplanectl on the last one never hangs or
// answers an internal error: a write exits 1 with a 503 saying to retry,
// within the request's bounds, and `cluster status` still answers from that
// coordinator. Once a second coordinator is back, a retry goes through
// (forwarded to whichever leads) and the account exists once.
func TestAdminDuringLeaderChange(t *testing.T) {
	c, ld := plainCluster(t)
	other, f := (ld+1)%c.Len(), c.Nodes[(ld+2)%c.Len()]
	c.Kill(ld)
	c.Kill(other)
	for i := range 3 {
		start := time.Now()
		r := ctl(t, f, "--json", "account", "create", "--email", "during-change@example.com")
		took := time.Since(start)
		t.Logf("attempt %d without a quorum, %s: %s", i, took.Round(time.Millisecond), r.stderr)
		if took > 20*time.Second {
			t.Fatalf("a write without a quorum took %s: %s", took, r)
		}
		if r.code != 1 || !strings.Contains(r.stderr, "503") || !strings.Contains(r.stderr, "retry") || r.stdout != "" {
			t.Fatalf("a write without a quorum (attempt %d): want exit 1 with a 503 saying to retry: %s", i, r)
		}
		if st := clusterStatus(t, f); st.NodeID != f.ID || st.LeaderID == f.ID {
			t.Fatalf("cluster status on %s without a quorum: %+v", f.ID, st)
		}
	}
	c.Restart(other)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ctl(t, f, "--json", "account", "create", "--email", "during-change@example.com")
		if r.code == 0 {
			break
		}
		if r.code != 1 || !strings.Contains(r.stderr, "503") || !strings.Contains(r.stderr, "retry") {
			t.Fatalf("a write while the quorum comes back: %s", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within 30 s of the quorum's return; last: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range []*framework.CoordinatorProcess{f, c.Nodes[other]} {
		if r := ctl(t, p, "--json", "account", "show", "during-change@example.com"); r.code != 0 {
			t.Fatalf("coordinator %s: %s", p.ID, r)
		}
	}
}
