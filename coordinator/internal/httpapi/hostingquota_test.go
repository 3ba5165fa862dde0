package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/hostingusage"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

// TestHostingQuotaEnforcedOverV1: GET /v1/hosting/{id} shows no
// quota.enforced while the coordinator does not know it (below semantics
// level 6, and at level 6 for an account made before, with no action
// since: never a false for an allowance that may be enforced), and shows
// what the node says in its periodic usage report (quota_enforced, an
// agent of this release) once the leader's usage job has asked it, with no
// action of the account's; a report that does not say it (the node could
// not tell) keeps what was known.
func TestHostingQuotaEnforcedOverV1(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelQuotaEnforced - 1})
	acc, key := s.account(api.ScopeHostingRead)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	quota := func(when string) map[string]any {
		t.Helper()
		r := s.call(key, "GET", "/v1/hosting/"+hst, "")
		q, ok := r.m["quota"].(map[string]any)
		if r.status != 200 || !ok {
			t.Fatalf("%s: GET: %d %s", when, r.status, r.body)
		}
		return q
	}
	if q := quota("below level 6"); q["enforced"] != nil {
		t.Fatalf("below level 6: quota %v, want no enforced", q)
	}
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelQuotaEnforced})
	if q := quota("at level 6, not reported yet"); q["enforced"] != nil {
		t.Fatalf("at level 6 before the node reported it: quota %v, want no enforced", q)
	}

	// The leader's usage job asks the node, which says it is enforced.
	enforced, said, used := true, true, uint64(8192)
	j := hostingusage.New(hostingusage.Deps{State: s.node.FSM, Interval: time.Minute,
		Propose: func(ctx context.Context, typ fsm.CommandType, p any) (*fsm.Result, error) {
			env, err := fsm.NewEnvelope(typ, time.Now(), p)
			if err != nil {
				return nil, err
			}
			return s.a.Apply(ctx, env)
		},
		Nodes: func() map[string]uint32 { return map[string]uint32{"hv-web": pb.ProtocolHostingUsage} },
		Call: func(_ context.Context, _ string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
			var accts []*pb.HostingUsage
			for _, u := range req.GetHostingUsageRequest().GetUsernames() {
				hu := &pb.HostingUsage{Username: u, DiskBytes: used}
				if said {
					hu.QuotaEnforced = &enforced
				}
				accts = append(accts, hu)
			}
			_, err := recv(&pb.Envelope{Body: &pb.Envelope_HostingUsageReport{HostingUsageReport: &pb.HostingUsageReport{Accounts: accts}}})
			return err
		}})
	if out, err := j.Report(context.Background(), "hv-web"); err != nil || out == nil || out.Written != 1 {
		t.Fatalf("usage report: %+v %v", out, err)
	}
	if q := quota("after the node's usage report"); q["enforced"] != true || q["disk_used_bytes"] != float64(8192) {
		t.Fatalf("after the node's usage report: quota %v, want enforced true", q)
	}
	// A report that leaves it out (the node could not tell: its btrfs
	// command failed) changes the figure and keeps what was known.
	said, used = false, 12288
	if _, err := j.Report(context.Background(), "hv-web"); err != nil {
		t.Fatal(err)
	}
	if q := quota("after a report without it"); q["enforced"] != true || q["disk_used_bytes"] != float64(12288) {
		t.Fatalf("after a report that did not say it: quota %v, want enforced still true, 12288 bytes", q)
	}
	said, enforced = true, false
	if _, err := j.Report(context.Background(), "hv-web"); err != nil {
		t.Fatal(err)
	}
	if q := quota("after a report of false"); q["enforced"] != false {
		t.Fatalf("after the node reported it not enforced: quota %v, want enforced false", q)
	}
}
