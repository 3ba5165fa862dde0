package fsm

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// LevelHostingUsage is the semantics level (level.go) from which the leader
// writes hosting nodes' periodic usage reports (CmdHostingUsage) and an
// action's result records when its usage figure was measured
// (store.HostingAccount.DiskUsedAt). Below it nothing is proposed: an
// account's usage changes only with its actions' results, as before.
const LevelHostingUsage = 4

// maxHostingUsageAccounts bounds the accounts of one report.
const maxHostingUsageAccounts = 100000

// HostingUsageReport is a hosting node's usage report as the leader
// proposes it. MeasuredAt is when the leader asked the node (before any
// walk began): a figure measured later (an action's result applied since)
// is not overwritten by it.
type HostingUsageReport struct {
	Node       string              `json:"node"`
	MeasuredAt time.Time           `json:"measured_at"`
	Accounts   []HostingUsageEntry `json:"accounts"`
	// Connection is the node's connection details as of the report, when
	// they are new or changed (the leader sets it only from
	// LevelHostingConnection; a report may then name no account).
	Connection *api.NodeHostingConnection `json:"connection,omitempty"`
}

// HostingUsageEntry is one account's figure in a report. QuotaEnforced is
// whether the node enforces the account's disk allowance, when the node
// said (an agent of this release) and the cluster is at LevelQuotaEnforced
// (the leader leaves it out below: a replica of the release before would
// not read it); a replica below that level ignores it.
type HostingUsageEntry struct {
	ID            string `json:"id"`
	DiskUsedBytes uint64 `json:"disk_used_bytes"`
	QuotaEnforced *bool  `json:"quota_enforced,omitempty"`
}

// HostingUsageApplied is what CmdHostingUsage answers: the accounts whose
// figure it wrote, and those it refused (an account deleted or not on the
// report's node, or holding a figure measured later).
type HostingUsageApplied struct {
	Written int      `json:"written"`
	Refused []string `json:"refused,omitempty"`
}

// applyHostingUsage writes each account's figure when the account still
// lives on the report's node: one deleted since the node was asked is not
// brought back, one on another node (a report naming an account not its
// node's, or one moved since) is refused, and a figure measured after the
// report's (an action's result) stays. Only quota.disk_used_bytes, its
// time and (from LevelQuotaEnforced) quota.enforced change, with (from
// LevelHostingConnection) the node's connection details: no updated_at, and
// no event but (from LevelQuotaAlerts) an allowance crossing's
// (noteQuotaAlert).
func applyHostingUsage(c *applyCtx, p HostingUsageReport) (any, error) {
	minAccounts := 1
	if p.Connection != nil && c.level() >= LevelHostingConnection {
		minAccounts = 0 // the node's connection details alone
	}
	if p.Node == "" || p.MeasuredAt.IsZero() || len(p.Accounts) < minAccounts || len(p.Accounts) > maxHostingUsageAccounts {
		return nil, fmt.Errorf("%w: a hosting usage report needs its node, its time and 1 to %d accounts", ErrInvalid, maxHostingUsageAccounts)
	}
	seen := make(map[string]bool, len(p.Accounts))
	for _, e := range p.Accounts {
		if e.ID == "" || seen[e.ID] {
			return nil, fmt.Errorf("%w: a hosting usage report names each account once, by id", ErrInvalid)
		}
		seen[e.ID] = true
	}
	if err := recordUsageConnection(c, p.Node, p.Connection); err != nil {
		return nil, err
	}
	var out HostingUsageApplied
	for _, e := range p.Accounts {
		h, err := c.r.HostingAccountByID(e.ID)
		onNode := err == nil && h.NodeID == p.Node && h.Status != api.HostingDeleted &&
			c.tx.Bucket(store.BucketNodeHosting).Get(store.NodeHostingKey(p.Node, h.ID)) != nil
		if !onNode || (h.DiskUsedAt != nil && !p.MeasuredAt.After(*h.DiskUsedAt)) {
			out.Refused = append(out.Refused, e.ID)
			continue
		}
		at := p.MeasuredAt
		h.Quota.DiskUsedBytes, h.DiskUsedAt = e.DiskUsedBytes, &at
		if e.QuotaEnforced != nil && c.level() >= LevelQuotaEnforced {
			enforced := *e.QuotaEnforced
			h.Quota.Enforced = &enforced
		}
		if err := noteQuotaAlert(c, &h); err != nil {
			return nil, err
		}
		if err := putHosting(c.tx, h); err != nil {
			return nil, err
		}
		out.Written++
	}
	return out, nil
}
