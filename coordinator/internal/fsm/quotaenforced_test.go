package fsm

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

var updateQuotaLevel5Golden = flag.Bool("update-quota-level5-golden", false,
	"rewrite testdata/quota_level5.golden (with the code of the release before level 6)")

// finishQuota opens a hosting action of cmd on hst_1 (user u1) and
// finishes it with ok and a result whose quota_enforced is enforced. The
// payloads are raw JSON, as the release before level 6 reads them too.
func finishQuota(t *testing.T, h *whHarness, id, cmd string, ok, enforced bool) {
	t.Helper()
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: id, Command: cmd, ResourceID: "hst_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "u1", Deadline: h.at.Add(3600e9)}})
	res := json.RawMessage(fmt.Sprintf(`{"hosting":{"username":"u1","php_version":"8.2","disk_bytes":4096,"quota_enforced":%t}}`, enforced))
	f := ActionFinish{ID: id, Success: ok, Result: res}
	if !ok {
		f.ErrorCode, f.ErrorMessage, f.Result = "internal", "failed", nil
	}
	h.must(CmdActionFinish, f)
}

// usageQuota applies a usage report of hst_1 (bytes) whose entry says
// quota_enforced (null: the field left out), as raw JSON.
func usageQuota(t *testing.T, h *whHarness, bytes int, enforced string) {
	t.Helper()
	e := fmt.Sprintf(`{"id":"hst_1","disk_used_bytes":%d`, bytes)
	if enforced != "null" {
		e += `,"quota_enforced":` + enforced
	}
	h.must(CmdHostingUsage, json.RawMessage(fmt.Sprintf(`{"node":"hv-1","measured_at":%q,"accounts":[%s}]}`,
		h.at.Add(1e9).Format("2006-01-02T15:04:05Z07:00"), e)))
}

func enforcedOf(q api.HostingQuota) string {
	if q.Enforced == nil {
		return "unknown"
	}
	return strconv.FormatBool(*q.Enforced)
}

// TestHostingQuotaEnforcedFromResult: from LevelQuotaEnforced a finished
// hosting action's result sets the account's quota.enforced to what the
// node reported (true, then false again), a failed action changes nothing,
// another account keeps its own, and the customer's JSON has the field.
func TestHostingQuotaEnforcedFromResult(t *testing.T) {
	h, get := hostingUsageHarness(t, LevelQuotaEnforced)
	if g := enforcedOf(get("hst_1").Quota); g != "false" {
		t.Fatalf("created at level 6 with a result without quota_enforced: %s, want false", g)
	}
	finishQuota(t, h, "act_s1", api.ActionHostingSuspend, true, true)
	if g := get("hst_1"); enforcedOf(g.Quota) != "true" || g.Status != api.HostingSuspended {
		t.Fatalf("after a result with quota_enforced: %s %s", enforcedOf(g.Quota), g.Status)
	}
	if g := enforcedOf(get("hst_2").Quota); g != "false" {
		t.Fatalf("another account: %s", g)
	}
	b, _ := json.Marshal(get("hst_1").HostingAccount)
	if !strings.Contains(string(b), `"quota":{"disk_mib":0,"disk_used_bytes":4096,"enforced":true}`) {
		t.Fatalf("customer JSON: %s", b)
	}
	finishQuota(t, h, "act_u1", api.ActionHostingUnsuspend, false, false)
	if g := enforcedOf(get("hst_1").Quota); g != "true" {
		t.Fatalf("a failed action changed quota.enforced: %s", g)
	}
	finishQuota(t, h, "act_u2", api.ActionHostingUnsuspend, true, false)
	if g := get("hst_1"); enforcedOf(g.Quota) != "false" || g.Status != api.HostingActive {
		t.Fatalf("after a result without quota_enforced: %s %s", enforcedOf(g.Quota), g.Status)
	}
	h.replicasSame(hostingDump)
}

// TestHostingQuotaEnforcedFromUsageReport: an account made below level 6
// shows no quota.enforced (not known: no key in the customer's JSON) until
// the node reports it; from level 6 a usage report's quota_enforced sets
// it with no action of the account's, a report without it leaves it as it
// is; below level 6 a report's is not recorded.
func TestHostingQuotaEnforcedFromUsageReport(t *testing.T) {
	h, get := hostingUsageHarness(t, LevelQuotaEnforced-1)
	usageQuota(t, h, 8192, "true")
	if g := enforcedOf(get("hst_1").Quota); g != "unknown" {
		t.Fatalf("below level 6 a report's quota_enforced was recorded: %s", g)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelQuotaEnforced})
	b, _ := json.Marshal(get("hst_1").HostingAccount)
	if strings.Contains(string(b), `enforced`) {
		t.Fatalf("customer JSON of an account whose enforcement is not known: %s", b)
	}
	usageQuota(t, h, 8192, "null")
	if g := enforcedOf(get("hst_1").Quota); g != "unknown" {
		t.Fatalf("after a report without quota_enforced: %s, want unknown", g)
	}
	usageQuota(t, h, 8192, "true")
	if g := get("hst_1"); enforcedOf(g.Quota) != "true" || g.Quota.DiskUsedBytes != 8192 {
		t.Fatalf("after a report with quota_enforced true: %s %d", enforcedOf(g.Quota), g.Quota.DiskUsedBytes)
	}
	if g := enforcedOf(get("hst_2").Quota); g != "unknown" {
		t.Fatalf("another account: %s", g)
	}
	usageQuota(t, h, 8192, "null")
	if g := enforcedOf(get("hst_1").Quota); g != "true" {
		t.Fatalf("a report without quota_enforced changed it: %s", g)
	}
	usageQuota(t, h, 8192, "false")
	if g := enforcedOf(get("hst_1").Quota); g != "false" {
		t.Fatalf("after a report with quota_enforced false: %s", g)
	}
	h.replicasSame(hostingDump)
}

// TestHostingRecordsBelowLevel6Unchanged: below level 6 the hosting
// records an account's actions and usage reports rewrite (results and
// entries carrying quota_enforced) are byte for byte what the release
// before level 6 writes (testdata/quota_level5.golden, written by that
// release's code): no "enforced" key, so replicas of both releases hold the
// same bytes during a rolling upgrade.
func TestHostingRecordsBelowLevel6Unchanged(t *testing.T) {
	h, _ := hostingUsageHarness(t, 5)
	finishQuota(t, h, "act_s1", api.ActionHostingSuspend, true, true)
	usageQuota(t, h, 8192, "true")
	finishQuota(t, h, "act_u1", api.ActionHostingUnsuspend, true, false)
	usageQuota(t, h, 12288, "false")
	var out bytes.Buffer
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketHosting).ForEach(func(k, v []byte) error {
			fmt.Fprintf(&out, "%s %s\n", strconv.Quote(string(k)), strconv.Quote(string(v)))
			return nil
		})
	})
	_, want := readGolden(t, "quota_level5.golden", *updateQuotaLevel5Golden, out.Bytes())
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("below level 6 the hosting records differ from the release before's:\n%s\nwant:\n%s", out.Bytes(), want)
	}
	h.replicasSame(hostingDump)
}
