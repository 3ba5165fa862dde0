package fsm

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// LevelQuotaAlerts is the semantics level (level.go) from which a hosting
// account's usage figure, wherever it is written (a node's usage report,
// an action's result), is held against its plan's disk allowance, and each
// upward crossing of 90 % and 100 % queues one event for its owner
// (hosting.disk_quota_warning, hosting.disk_quota_exceeded) in the
// command's transaction: so exactly once whatever the leader, and the same
// on every replica and on replay. Below it nothing is recorded or sent, as
// the release before.
const LevelQuotaAlerts = 7

// Quota alert thresholds (store.HostingAccount.QuotaAlert).
const (
	quotaAlertNone     = ""
	quotaAlertWarning  = "warning"
	quotaAlertExceeded = "exceeded"
)

// quotaAlertOf is the threshold usage used is at against an allowance of
// diskMiB (none for an allowance of 0: not limited).
func quotaAlertOf(used uint64, diskMiB int) string {
	if diskMiB <= 0 {
		return quotaAlertNone
	}
	allowance := uint64(diskMiB) << 20
	switch {
	case used >= allowance:
		return quotaAlertExceeded
	case used >= allowance/10*9+allowance%10*9/10: // 90 %, without overflow
		return quotaAlertWarning
	}
	return quotaAlertNone
}

func quotaAlertRank(a string) int {
	switch a {
	case quotaAlertWarning:
		return 1
	case quotaAlertExceeded:
		return 2
	}
	return 0
}

// noteQuotaAlert holds h's usage figure, just written, against its
// allowance (from LevelQuotaAlerts): a rise to a higher threshold than the
// one last notified queues that threshold's event (the exceeded one only,
// for a figure that jumps past both), a fall records the lower threshold
// quietly so the next rise is notified again, and no change does nothing
// (a figure reported again sends nothing). The caller stores h.
func noteQuotaAlert(c *applyCtx, h *store.HostingAccount) error {
	if c.level() < LevelQuotaAlerts || h.Status == api.HostingDeleted {
		return nil
	}
	now := quotaAlertOf(h.Quota.DiskUsedBytes, h.Limits.DiskMiB)
	was := h.QuotaAlert
	if now == was {
		return nil
	}
	h.QuotaAlert = now
	if quotaAlertRank(now) < quotaAlertRank(was) {
		return nil
	}
	data := map[string]any{"hostingId": h.ID, "domain": h.Domain, "diskUsedBytes": h.Quota.DiskUsedBytes, "diskMib": h.Limits.DiskMiB}
	if now == quotaAlertExceeded {
		return c.emit(api.EventHostingDiskExceeded, h.AccountID, data)
	}
	return c.emit(api.EventHostingDiskWarning, h.AccountID, data)
}
