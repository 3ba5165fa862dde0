package actions

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

// hostingUsage answers a HostingUsageRequest with the disk usage of the
// named accounts (hosting.Node.Usage). It runs in the stream's own
// goroutine, as every request does: however long the walks take, the
// session's control stream (pings) and other streams go on.
func (e *Executor) hostingUsage(ctx context.Context, seq uint64, req *pb.HostingUsageRequest, send func(*pb.Envelope) error) {
	h := e.m.Hosting()
	if h == nil {
		_ = send(&pb.Envelope{ReplyTo: seq, Body: &pb.Envelope_Error{Error: &pb.Error{Code: api.NodeErrUnsupported, Message: "this node does not have the hosting role"}}})
		return
	}
	got, err := h.Usage(ctx, req.Usernames, time.Duration(req.BudgetMs)*time.Millisecond)
	if err != nil {
		_ = send(&pb.Envelope{ReplyTo: seq, Body: &pb.Envelope_Error{Error: &pb.Error{Code: api.NodeErrUnavailable, Message: err.Error()}}})
		return
	}
	// Whether each allowance is enforced, for the accounts measured (so
	// that the coordinator knows it without an action of theirs).
	users := make([]string, 0, len(got))
	for u := range got {
		users = append(users, u)
	}
	rep := usageReport(e.cfg.Clock.Now(), got, h.QuotasEnforced(ctx, users))
	rep.Connection = HostingConnection(h.Connection(ctx))
	_ = send(&pb.Envelope{Seq: 1, ReplyTo: seq, Body: &pb.Envelope_HostingUsageReport{HostingUsageReport: rep}})
}

// usageReport is the report of the accounts measured (used: each one's
// disk bytes), by username. An account carries quota_enforced where
// enforced says it (hosting.Node.QuotasEnforced) and none where enforced
// leaves it out (the node could not tell): unset reads as not known, and
// the coordinator keeps what it knew rather than a false.
func usageReport(takenAt time.Time, used map[string]uint64, enforced map[string]bool) *pb.HostingUsageReport {
	rep := &pb.HostingUsageReport{TakenAtUnixMs: takenAt.UnixMilli()}
	for u, b := range used {
		hu := &pb.HostingUsage{Username: u, DiskBytes: b}
		if v, ok := enforced[u]; ok {
			hu.QuotaEnforced = &v
		}
		rep.Accounts = append(rep.Accounts, hu)
	}
	slices.SortFunc(rep.Accounts, func(x, y *pb.HostingUsage) int { return strings.Compare(x.Username, y.Username) })
	return rep
}

// HostingConnection is the node's connection details (hosting.Node.Connection)
// on the wire.
func HostingConnection(c api.NodeHostingConnection) *pb.HostingConnection {
	return &pb.HostingConnection{SftpHost: c.SFTPHost, SftpPort: uint32(c.SFTPPort), DbPort: uint32(c.DBPort), DbKnown: c.DBKnown}
}
