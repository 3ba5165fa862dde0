package fsm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// quotaHarness is hostingUsageHarness at level with one more account,
// hst_q (user uq), whose plan allows 10 MiB, created with 4096 bytes used.
func quotaHarness(t *testing.T, level uint16) (*whHarness, func(id string) store.HostingAccount) {
	h, get := hostingUsageHarness(t, level)
	h.must(CmdHostingCreate, HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_q", Username: "uq",
		Domain: "uq.example", Plan: "tiny", PHPVersion: "8.2", Limits: api.HostingPlan{DiskMiB: 10}}, AccountID: "acc_1", NodeID: "hv-1"},
		Action: store.Action{Action: api.Action{ID: "act_hst_q", Command: api.ActionHostingCreate, ResourceID: "hst_q"},
			NodeID: "hv-1", Target: "uq", Deadline: h.at.Add(time.Hour), NeedsSecret: true}})
	res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: "uq", PHPVersion: "8.2", DiskBytes: 4096}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_hst_q", Success: true, Result: res})
	return h, get
}

// quotaEvents is the disk allowance events queued on replica f, as
// "type:bytes" in order.
func quotaEvents(t *testing.T, f *FSM) []string {
	t.Helper()
	var out []string
	for _, e := range outboxEvents(t, f) {
		if e.Type != string(api.EventHostingDiskWarning) && e.Type != string(api.EventHostingDiskExceeded) {
			continue
		}
		var d struct {
			HostingID string `json:"hostingId"`
			Used      uint64 `json:"diskUsedBytes"`
			DiskMiB   int    `json:"diskMib"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil || d.HostingID != "hst_q" || d.DiskMiB != 10 || e.AccountID != "acc_1" {
			t.Fatalf("event %s: %s for %s (%v)", e.Type, e.Data, e.AccountID, err)
		}
		out = append(out, strings.TrimPrefix(e.Type, "hosting.disk_quota_")+":"+itoa(d.Used))
	}
	return out
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

const mib = 1 << 20

// TestQuotaAlertCrossings: from LevelQuotaAlerts each upward crossing of
// 90 % and 100 % of the allowance, by a usage report or an action's
// result, queues one event in the command that wrote the figure; the same
// figure reported again (the next report, or a new leader's job asking
// again) queues nothing; a fall under a threshold is recorded quietly and
// the next rise past it is notified again; a figure that jumps past both
// thresholds queues the exceeded event only; an older report (a deposed
// leader's, applied after the new one's) is refused and queues nothing.
// Every replica holds the same events (ids included): a replay of the log
// sends no event twice and loses none.
func TestQuotaAlertCrossings(t *testing.T) {
	h, get := quotaHarness(t, LevelQuotaAlerts)
	report := func(used uint64, at time.Time) HostingUsageApplied {
		t.Helper()
		return h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: at,
			Accounts: []HostingUsageEntry{{ID: "hst_q", DiskUsedBytes: used}}}).(HostingUsageApplied)
	}
	want := func(step string, evs ...string) {
		t.Helper()
		got := quotaEvents(t, h.fsms[0])
		if strings.Join(got, " ") != strings.Join(evs, " ") {
			t.Fatalf("%s: events %v, want %v", step, got, evs)
		}
		h.replicasSame(hostingDump)
	}
	report(8*mib, h.at.Add(time.Second)) // 80 %
	want("80 %")
	report(9*mib, h.at.Add(time.Second)) // exactly 90 %
	want("90 %", "warning:9437184")
	report(9*mib+512<<10, h.at.Add(time.Second))
	want("95 %: still warned", "warning:9437184")
	// A leader change: the new leader's job measured after the old
	// one's report and proposes its own, the same figure; then the
	// deposed leader's report, asked for before, is applied late.
	newLeader := h.at.Add(2 * time.Second)
	oldLeader := h.at.Add(-5 * time.Second)
	report(9*mib+512<<10, newLeader)
	if out := report(11*mib, oldLeader); out.Written != 0 {
		t.Fatalf("an older report was written: %+v", out)
	}
	want("the same figure under a new leader, an older report", "warning:9437184")
	if g := get("hst_q"); g.QuotaAlert != quotaAlertWarning || g.Quota.DiskUsedBytes != 9*mib+512<<10 {
		t.Fatalf("account after the leader change: %q %d", g.QuotaAlert, g.Quota.DiskUsedBytes)
	}
	report(10*mib, h.at.Add(time.Second))
	want("100 %", "warning:9437184", "exceeded:10485760")
	report(12*mib, h.at.Add(time.Second))
	want("120 %: still exceeded", "warning:9437184", "exceeded:10485760")
	report(9*mib+800<<10, h.at.Add(time.Second)) // back under 100 %, still over 90 %
	want("back to 97 %", "warning:9437184", "exceeded:10485760")
	// An action's result measures it too.
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_s", Command: api.ActionHostingSuspend, ResourceID: "hst_q"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "uq", Deadline: h.at.Add(time.Hour)}})
	res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: "uq", PHPVersion: "8.2", DiskBytes: 10*mib + 4096, Suspended: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_s", Success: true, Result: res})
	want("over 100 % again, by an action's result", "warning:9437184", "exceeded:10485760", "exceeded:10489856")
	report(1*mib, h.at.Add(time.Second))
	want("10 %", "warning:9437184", "exceeded:10485760", "exceeded:10489856")
	if g := get("hst_q"); g.QuotaAlert != "" {
		t.Fatalf("under 90 %%: quota alert %q", g.QuotaAlert)
	}
	report(11*mib, h.at.Add(time.Second))
	want("from 10 % to 110 % at once", "warning:9437184", "exceeded:10485760", "exceeded:10489856", "exceeded:11534336")
	report(5*mib, h.at.Add(time.Second))
	report(9*mib+1, h.at.Add(time.Second))
	want("over 90 % again", "warning:9437184", "exceeded:10485760", "exceeded:10489856", "exceeded:11534336", "warning:9437185")
	// The accounts without an allowance (0) never alert.
	report(0, h.at.Add(time.Second))
	h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second),
		Accounts: []HostingUsageEntry{{ID: "hst_1", DiskUsedBytes: 1 << 40}}})
	want("an account without an allowance", "warning:9437184", "exceeded:10485760", "exceeded:10489856", "exceeded:11534336", "warning:9437185")
	b, _ := json.Marshal(get("hst_q").HostingAccount)
	if strings.Contains(string(b), "quota_alert") {
		t.Fatalf("the customer JSON holds the alert state: %s", b)
	}
}

// TestQuotaAlertsBelowLevel7: below LevelQuotaAlerts no figure queues an
// event and no record holds quota_alert, whatever the reports say, as the
// release before writes them (which does not know the field); once the
// cluster reaches the level, the first figure written over a threshold is
// notified (an account already over it when the level rose included).
func TestQuotaAlertsBelowLevel7(t *testing.T) {
	h, get := quotaHarness(t, LevelQuotaAlerts-1)
	for _, used := range []uint64{9 * mib, 10 * mib, 1 * mib, 11 * mib} {
		h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second),
			Accounts: []HostingUsageEntry{{ID: "hst_q", DiskUsedBytes: used}}})
	}
	if ev := quotaEvents(t, h.fsms[0]); len(ev) != 0 {
		t.Fatalf("below level 7: events %v", ev)
	}
	if strings.Contains(string(hostingDump(h.fsms[0])), "quota_alert") {
		t.Fatal("below level 7 a record holds quota_alert")
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelQuotaAlerts})
	if ev := quotaEvents(t, h.fsms[0]); len(ev) != 0 {
		t.Fatalf("the level's rise queued events %v", ev)
	}
	h.must(CmdHostingUsage, HostingUsageReport{Node: "hv-1", MeasuredAt: h.at.Add(time.Second),
		Accounts: []HostingUsageEntry{{ID: "hst_q", DiskUsedBytes: 11 * mib}}})
	if ev := quotaEvents(t, h.fsms[0]); strings.Join(ev, " ") != "exceeded:11534336" {
		t.Fatalf("at level 7: events %v", ev)
	}
	if g := get("hst_q"); g.QuotaAlert != quotaAlertExceeded {
		t.Fatalf("quota alert %q", g.QuotaAlert)
	}
	h.replicasSame(hostingDump)
}
