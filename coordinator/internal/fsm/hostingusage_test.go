package fsm

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// hostingUsageHarness is two replicas at level with hosting accounts hst_1
// and hst_2 of acc_1 on node hv-1, created (each create's result reported
// 4096 bytes).
func hostingUsageHarness(t *testing.T, level uint16) (*whHarness, func(id string) store.HostingAccount) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: level})
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 106})
	for _, id := range []string{"hst_1", "hst_2"} {
		user := "u" + id[4:]
		h.must(CmdHostingCreate, HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user,
			Domain: user + ".example", Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: "acc_1", NodeID: "hv-1"},
			Action: store.Action{Action: api.Action{ID: "act_" + id, Command: api.ActionHostingCreate, ResourceID: id},
				NodeID: "hv-1", Target: user, Deadline: h.at.Add(time.Hour), NeedsSecret: true}})
		res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: user, PHPVersion: "8.2", DiskBytes: 4096}})
		h.must(CmdActionFinish, ActionFinish{ID: "act_" + id, Success: true, Result: res})
	}
	get := func(id string) store.HostingAccount {
		t.Helper()
		return readOne(t, h.fsms[1], func(r store.ReadTx) (store.HostingAccount, error) { return r.OwnedHostingAccount("acc_1", id) })
	}
	return h, get
}

// TestHostingUsageReport: a node's report writes the figures of its
// accounts, and only quota.disk_used_bytes (no event, no updated_at); an
// account of another node is refused, a deleted one is not brought back,
// and a figure measured after the report (an action's result since) stays.
func TestHostingUsageReport(t *testing.T) {
	h, get := hostingUsageHarness(t, LevelHostingUsage)
	before, events := get("hst_1"), len(outboxEvents(t, h.fsms[0]))
	if before.DiskUsedAt == nil || before.Quota.DiskUsedBytes != 4096 {
		t.Fatalf("after the create's result at level %d: %d bytes measured at %v", LevelHostingUsage, before.Quota.DiskUsedBytes, before.DiskUsedAt)
	}
	asked := h.at.Add(500 * time.Millisecond) // the leader asks the node, then proposes
	out := h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: asked, Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 2 << 30}}}).(HostingUsageApplied)
	if out.Written != 1 || len(out.Refused) != 0 {
		t.Fatalf("report: %+v", out)
	}
	g := get("hst_1")
	if g.Quota.DiskUsedBytes != 2<<30 || g.DiskUsedAt == nil || !g.DiskUsedAt.Equal(asked) || !g.UpdatedAt.Equal(before.UpdatedAt) || g.Status != api.HostingActive {
		t.Fatalf("after the report: %d bytes at %v, updated %v (was %v), %s", g.Quota.DiskUsedBytes, g.DiskUsedAt, g.UpdatedAt, before.UpdatedAt, g.Status)
	}
	if n := len(outboxEvents(t, h.fsms[0])); n != events {
		t.Fatalf("a usage report queued %d events", n-events)
	}
	if o := get("hst_2"); o.Quota.DiskUsedBytes != 4096 {
		t.Fatalf("an account not in the report changed: %d", o.Quota.DiskUsedBytes)
	}

	// Another node's report naming hv-1's account: refused.
	out = h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-2", MeasuredAt: h.at, Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 1}}}).(HostingUsageApplied)
	if out.Written != 0 || len(out.Refused) != 1 || get("hst_1").Quota.DiskUsedBytes != 2<<30 {
		t.Fatalf("another node's report: %+v, %d bytes", out, get("hst_1").Quota.DiskUsedBytes)
	}
	// A report taken before the figure it would replace: the figure stays.
	out = h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: asked.Add(-time.Millisecond), Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 7}}}).(HostingUsageApplied)
	if out.Written != 0 || get("hst_1").Quota.DiskUsedBytes != 2<<30 {
		t.Fatalf("an older report: %+v, %d bytes", out, get("hst_1").Quota.DiskUsedBytes)
	}
	// An action's result (the account's figure at its end) is newer than a
	// report the leader asked for before the result was applied.
	php := store.Action{Action: api.Action{ID: "act_p1", Command: api.ActionHostingSetPHP, ResourceID: "hst_1"}, AccountID: "acc_1",
		NodeID: "hv-1", Target: "u1", Deadline: h.at.Add(time.Hour)}
	h.must(CmdHostingAction, HostingAction{Action: php, PHPVersion: "8.3"})
	askedBeforeResult := h.at
	res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: "u1", PHPVersion: "8.3", DiskBytes: 5 << 20}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_p1", Success: true, Result: res})
	out = h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: askedBeforeResult, Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 2 << 30}}}).(HostingUsageApplied)
	if out.Written != 0 || get("hst_1").Quota.DiskUsedBytes != 5<<20 {
		t.Fatalf("a report asked for before an action's result: %+v, %d bytes, want the result's %d", out, get("hst_1").Quota.DiskUsedBytes, 5<<20)
	}
	del := store.Action{Action: api.Action{ID: "act_d2", Command: api.ActionHostingDelete, ResourceID: "hst_2"}, AccountID: "acc_1",
		NodeID: "hv-1", Target: "u2", Deadline: h.at.Add(time.Hour)}
	h.must(CmdHostingAction, HostingAction{Action: del})
	h.must(CmdActionFinish, ActionFinish{ID: "act_d2", Success: true})
	// Deleted since the node was asked: not brought back, not written.
	out = h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Hour), Accounts: []HostingUsageEntry{
		{ID: "hst_2", DiskUsedBytes: 9 << 20}, {ID: "hst_1", DiskUsedBytes: 3 << 30}, {ID: "hst_nope", DiskUsedBytes: 1}}}).(HostingUsageApplied)
	if out.Written != 1 || len(out.Refused) != 2 || out.Refused[0] != "hst_2" || out.Refused[1] != "hst_nope" {
		t.Fatalf("report with a deleted and an unknown account: %+v", out)
	}
	if d := get("hst_2"); d.Status != api.HostingDeleted || d.Quota.DiskUsedBytes == 9<<20 {
		t.Fatalf("deleted account after a report: %s, %d bytes", d.Status, d.Quota.DiskUsedBytes)
	}
	if n := readOne(t, h.fsms[0], func(r store.ReadTx) (int, error) { return r.NodeHostingCount("hv-1"), nil }); n != 1 {
		t.Fatalf("node hv-1 holds %d accounts after a report on a deleted one, want 1", n)
	}
	if get("hst_1").Quota.DiskUsedBytes != 3<<30 {
		t.Fatalf("hst_1: %d bytes", get("hst_1").Quota.DiskUsedBytes)
	}
	// Bad reports change nothing.
	for name, p := range map[string]HostingUsageReport{
		"no node":     {MeasuredAt: h.at, Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 1}}},
		"no time":     {Node: "hv-1", Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 1}}},
		"no accounts": {Node: "hv-1", MeasuredAt: h.at.Add(2 * time.Hour)},
		"twice":       {Node: "hv-1", MeasuredAt: h.at.Add(2 * time.Hour), Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 1}, {ID: "hst_1", DiskUsedBytes: 2}}},
		"no id":       {Node: "hv-1", MeasuredAt: h.at.Add(2 * time.Hour), Accounts: []HostingUsageEntry{{DiskUsedBytes: 1}}},
	} {
		if _, err := h.apply(CmdHostingUsage, p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: %v, want invalid", name, err)
		}
	}
	if get("hst_1").Quota.DiskUsedBytes != 3<<30 {
		t.Fatalf("a refused report changed the figure: %d", get("hst_1").Quota.DiskUsedBytes)
	}
	h.replicasSame(hostingDump)
}

// TestHostingUsageLevelGated: below LevelHostingUsage a report is refused,
// changing nothing, by a replica of this release, and skipped as unknown by
// one of the release before (no handler): the same state; an action's
// result records no measurement time. From the level the report is written.
func TestHostingUsageLevelGated(t *testing.T) {
	cur, getCur := hostingUsageHarness(t, LevelHostingUsage-1)
	old, getOld := hostingUsageHarness(t, LevelHostingUsage-1)
	old.fsms[0].LimitLevel(LevelHostingUsage - 1)
	old.fsms[1].LimitLevel(LevelHostingUsage - 1)
	if g := getCur("hst_1"); g.DiskUsedAt != nil || g.Quota.DiskUsedBytes != 4096 {
		t.Fatalf("below the level an action's result recorded its measurement time: %+v", g.DiskUsedAt)
	}
	rep := HostingUsageReport{Node: "hv-1", MeasuredAt: cur.at.Add(time.Minute), Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 2 << 30}}}
	_, err := cur.apply(CmdHostingUsage, rep)
	var le *LevelError
	if !errors.As(err, &le) || le.Need != LevelHostingUsage {
		t.Fatalf("below the level, this release: %v, want a LevelError", err)
	}
	h := handlers[CmdHostingUsage]
	delete(handlers, CmdHostingUsage) // the release before
	_, err = old.apply(CmdHostingUsage, rep)
	handlers[CmdHostingUsage] = h
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("the release before: %v, want an unknown command", err)
	}
	if a, b := string(hostingDump(cur.fsms[0])), string(hostingDump(old.fsms[0])); a != b || getCur("hst_1").Quota.DiskUsedBytes != 4096 || getOld("hst_1").Quota.DiskUsedBytes != 4096 {
		t.Fatalf("below the level the replicas differ or changed:\n%s\n%s", a, b)
	}
	rs := cur.fsms[0].ApplyBatch([]*raft.Log{logAt(t, 100, CmdClusterLevel, cur.at, ClusterLevel{Level: LevelHostingUsage}), logAt(t, 101, CmdHostingUsage, cur.at, rep)})
	if r := rs[1].(*Result); r.Err != nil || r.Value.(HostingUsageApplied).Written != 1 {
		t.Fatalf("at the level: %+v", r)
	}
	if g := readOne(t, cur.fsms[0], func(r store.ReadTx) (store.HostingAccount, error) { return r.OwnedHostingAccount("acc_1", "hst_1") }); g.Quota.DiskUsedBytes != 2<<30 {
		t.Fatalf("at the level: %d bytes", g.Quota.DiskUsedBytes)
	}
}
