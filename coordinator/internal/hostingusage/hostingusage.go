// Package hostingusage keeps hosting accounts' disk usage current: a leader
// job asks every connected hosting node, each interval, for the usage of
// the accounts the cluster places on it, and writes the figures that
// changed in one Raft command per node report (fsm.CmdHostingUsage). Each
// node is asked at its own phase of the interval (a hash of its id), so the
// walks and the commands of many nodes spread over the interval rather than
// all coming at once.
//
// Pulled by the leader, not pushed by the agent: the leader is the one that
// writes through Raft and knows which accounts are on each node, the
// session already carries requests the coordinator opens (actions, stats),
// the write rate is set in one place (--hosting-usage-interval) for the
// whole cluster, and a new leader takes over with no agent change.
package hostingusage

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/nodes"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

// DefaultInterval is how often the leader asks each hosting node.
const DefaultInterval = 5 * time.Minute

// Deps is what the job needs from the coordinator.
type Deps struct {
	// State is the replicated state (the FSM): the cluster's level and
	// the accounts of each node.
	State interface {
		store.Reader
		ClusterLevel() uint16
	}
	// Propose commits a command through Raft at the coordinator's clock.
	Propose func(ctx context.Context, t fsm.CommandType, payload any) (*fsm.Result, error)
	// Nodes lists the nodes holding a session here with the protocol
	// version their agent announced.
	Nodes func() map[string]uint32
	// Call is the session's Call (session.Server.Call).
	Call func(ctx context.Context, nodeID string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error
	// Interval between two reports of a node (0: DefaultInterval).
	Interval time.Duration
	// Now is the coordinator's clock (the time of the commands it proposes).
	Now func() time.Time
	// Clock times the asks (Run); nil: the wall clock.
	Clock clock.Clock
	Log   *slog.Logger
}

// ErrUnsupported: the node's agent does not measure hosting usage (a node
// without the hosting role, a simulated agent).
var ErrUnsupported = errors.New("the agent does not report hosting usage")

// Job is the leader job (Run).
type Job struct {
	d    Deps
	mu   sync.Mutex
	busy map[string]bool // nodes asked and not answered yet
}

// New returns the job.
func New(d Deps) *Job {
	if d.Interval <= 0 {
		d.Interval = DefaultInterval
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Job{d: d, busy: map[string]bool{}}
}

// budget is how long a node may walk its sites for one report: the
// interval, within 5 s to 2 minutes. A node still walking at the next tick
// is not asked again.
func (j *Job) budget() time.Duration { return min(max(j.d.Interval, 5*time.Second), 2*time.Minute) }

// Run asks each node once an interval, at the node's phase of it
// (phase), until ctx ends (the leader job). It looks every step for the
// nodes whose time came since it looked last, so a node is asked at most a
// step late; the phases are of the clock's time, not of when Run started,
// so a new leader asks each node when the old one would have.
func (j *Job) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	last := j.d.Clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.d.Clock.After(j.step()):
		}
		now := j.d.Clock.Now()
		from := last
		last = now
		for node, proto := range j.d.Nodes() {
			if proto < pb.ProtocolHostingUsage || !j.due(node, from, now) || !j.claim(node) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer j.release(node)
				_, err := j.Report(ctx, node)
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, ErrUnsupported):
					j.d.Log.Debug("hosting usage report", "node", node, "err", err)
				default:
					j.d.Log.Warn("hosting usage report", "node", node, "err", err)
				}
			}()
		}
	}
}

// step is how often Run looks for the nodes due: a sixtieth of the
// interval, within 10 ms to 5 s.
func (j *Job) step() time.Duration {
	return min(max(j.d.Interval/60, 10*time.Millisecond), 5*time.Second)
}

// phase is node's offset in the interval: the times it is asked at are
// those whose Unix time in ns is phase modulo the interval. A hash of its
// id, so nodes spread evenly over the interval and keep their phase across
// leaders and restarts.
func (j *Job) phase(node string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	return int64(h.Sum64() % uint64(j.d.Interval))
}

// due reports whether one of node's times falls in (from, to].
func (j *Job) due(node string, from, to time.Time) bool {
	p, iv := j.phase(node), int64(j.d.Interval)
	return floorDiv(to.UnixNano()-p, iv) > floorDiv(from.UnixNano()-p, iv)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (j *Job) claim(node string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.busy[node] {
		return false
	}
	j.busy[node] = true
	return true
}

func (j *Job) release(node string) {
	j.mu.Lock()
	delete(j.busy, node)
	j.mu.Unlock()
}

// Report asks node for its accounts' usage and writes the figures that
// changed, and from fsm.LevelQuotaEnforced whether each account's allowance
// is enforced where the node said and it changed or was not known (one
// command; none when nothing changed). It returns the
// command's answer (nil when nothing was proposed). Accounts the node
// reports without being asked for them are refused (one warning per
// report). Below fsm.LevelHostingUsage (a coordinator still runs a release that does not
// apply the reports) the node is not asked and nothing is proposed.
func (j *Job) Report(ctx context.Context, node string) (*fsm.HostingUsageApplied, error) {
	level := j.d.State.ClusterLevel()
	if level < fsm.LevelHostingUsage {
		return nil, nil
	}
	var accts []store.HostingAccount
	if err := j.d.State.Read(func(r store.ReadTx) error { accts = r.NodeHostingAccounts(node); return nil }); err != nil {
		return nil, err
	}
	byUser := map[string]store.HostingAccount{}
	req := &pb.HostingUsageRequest{BudgetMs: uint32(j.budget() / time.Millisecond)}
	for _, h := range accts {
		if h.Status == api.HostingDeleted {
			continue
		}
		byUser[h.Username] = h
		req.Usernames = append(req.Usernames, h.Username)
	}
	if len(req.Usernames) == 0 {
		return nil, nil
	}
	sort.Strings(req.Usernames)
	at := j.d.Now()
	cctx, cancel := context.WithTimeout(ctx, j.budget()+15*time.Second)
	defer cancel()
	var rep *pb.HostingUsageReport
	err := j.d.Call(cctx, node, &pb.Envelope{Seq: 1, Body: &pb.Envelope_HostingUsageRequest{HostingUsageRequest: req}}, func(env *pb.Envelope) (bool, error) {
		if e := env.GetError(); e != nil {
			if e.Code == api.NodeErrUnsupported {
				return true, fmt.Errorf("%w: %s", ErrUnsupported, e.Message)
			}
			return true, fmt.Errorf("the agent answered %s: %s", e.Code, e.Message)
		}
		if r := env.GetHostingUsageReport(); r != nil {
			rep = r
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ask node %s for its hosting usage: %w", node, err)
	}
	p := fsm.HostingUsageReport{Node: node, MeasuredAt: at}
	unasked, first := 0, ""
	for _, u := range rep.GetAccounts() {
		h, ok := byUser[u.Username]
		if !ok {
			if unasked++; unasked == 1 {
				first = u.Username
			}
			continue
		}
		delete(byUser, u.Username) // once
		e := fsm.HostingUsageEntry{ID: h.ID, DiskUsedBytes: u.DiskBytes}
		if level >= fsm.LevelQuotaEnforced && u.QuotaEnforced != nil &&
			(h.Quota.Enforced == nil || *h.Quota.Enforced != *u.QuotaEnforced) {
			e.QuotaEnforced = u.QuotaEnforced // newly known, or changed
		}
		if u.DiskBytes != h.Quota.DiskUsedBytes || e.QuotaEnforced != nil {
			p.Accounts = append(p.Accounts, e)
		}
	}
	if unasked > 0 {
		// One line per report, however many names the agent sent (a
		// frame holds hundreds of thousands), each name cut short.
		if len(first) > 64 {
			first = strings.ToValidUTF8(first[:64], "") + "…"
		}
		j.d.Log.Warn("a hosting node reported the usage of accounts it was not asked for; refused", "node", node, "accounts", unasked, "first", first)
	}
	if level >= fsm.LevelHostingConnection {
		p.Connection = j.newConnection(node, rep.GetConnection(), level)
	}
	if len(p.Accounts) == 0 && p.Connection == nil {
		return nil, nil
	}
	res, err := j.d.Propose(ctx, fsm.CmdHostingUsage, p)
	if err == nil && res != nil {
		err = res.Err
	}
	var le *fsm.LevelError
	if errors.As(err, &le) {
		return nil, nil // the level is not there (yet): nothing written, as below it
	}
	if err != nil {
		return nil, fmt.Errorf("write node %s's hosting usage: %w", node, err)
	}
	out, _ := res.Value.(fsm.HostingUsageApplied)
	j.d.Log.Debug("hosting usage written", "node", node, "written", out.Written, "refused", len(out.Refused))
	return &out, nil
}

// newConnection is the node's connection details of a report when they are
// valid and not what the node has recorded (nil otherwise: nothing to write),
// as the cluster's semantics level records them (fsm.HostingConnectionAt).
func (j *Job) newConnection(node string, c *pb.HostingConnection, level uint16) *api.NodeHostingConnection {
	conn, err := nodes.HostingConnection(c)
	if err != nil {
		j.d.Log.Warn("a hosting node's connection details are refused; its accounts show the ones recorded", "node", node, "err", err)
		return nil
	}
	if conn == nil {
		return nil
	}
	conn = fsm.HostingConnectionAt(conn, level)
	var have *api.NodeHostingConnection
	_ = j.d.State.Read(func(r store.ReadTx) error {
		if n, err := r.AgentNode(node); err == nil {
			have = n.HostingConnection
		}
		return nil
	})
	if fsm.SameHostingConnection(have, conn) {
		return nil
	}
	return conn
}
