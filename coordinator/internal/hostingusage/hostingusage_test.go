package hostingusage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/hlc"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock/clocktest"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

type rig struct {
	t     *testing.T
	f     *fsm.FSM
	idx   uint64
	at    time.Time
	props int
	calls int
	// answer is what the node answers a request with.
	answer func(req *pb.HostingUsageRequest) *pb.Envelope
}

func (r *rig) apply(typ fsm.CommandType, p any) (*fsm.Result, error) {
	r.t.Helper()
	r.idx++
	r.at = r.at.Add(time.Second)
	env, err := fsm.NewEnvelope(typ, r.at, p)
	if err != nil {
		return nil, err
	}
	b, err := env.Encode()
	if err != nil {
		return nil, err
	}
	return r.f.Apply(&raft.Log{Index: r.idx, Term: 1, Type: raft.LogCommand, Data: b}).(*fsm.Result), nil
}

func (r *rig) must(typ fsm.CommandType, p any) {
	r.t.Helper()
	if res, err := r.apply(typ, p); err != nil || res.Err != nil {
		r.t.Fatalf("command %d: %v %v", typ, err, res.Err)
	}
}

// newRig is an FSM at level with hosting account hst_1 (ada) of acc_1 on
// hv-1, created at 4096 bytes, and a job whose proposals it applies.
func newRig(t *testing.T, level uint16) (*rig, *Job) {
	f := fsmtest.Open(t).FSM
	r := &rig{t: t, f: f, at: time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)}
	r.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
	r.must(fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "a@example.com"})
	r.must(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	r.must(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: r.at.Add(time.Hour)})
	r.must(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: r.at.Add(24 * time.Hour)})
	r.must(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: pb.ProtocolHostingUsage})
	r.must(fsm.CmdHostingCreate, fsm.HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_1", Username: "ada",
		Domain: "ada.example", Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: "acc_1", NodeID: "hv-1"},
		Action: store.Action{Action: api.Action{ID: "act_1", Command: api.ActionHostingCreate, ResourceID: "hst_1"},
			NodeID: "hv-1", Target: "ada", Deadline: r.at.Add(time.Hour), NeedsSecret: true}})
	res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: "ada", PHPVersion: "8.2", DiskBytes: 4096}})
	r.must(fsm.CmdActionFinish, fsm.ActionFinish{ID: "act_1", Success: true, Result: res})
	j := New(Deps{State: f, Interval: time.Second, Now: func() time.Time { return r.at.Add(500 * time.Millisecond) },
		Propose: func(_ context.Context, typ fsm.CommandType, p any) (*fsm.Result, error) {
			r.props++
			return r.apply(typ, p)
		},
		Nodes: func() map[string]uint32 { return map[string]uint32{"hv-1": pb.ProtocolHostingUsage} },
		Call: func(_ context.Context, node string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
			r.calls++
			_, err := recv(r.answer(req.GetHostingUsageRequest()))
			return err
		}})
	return r, j
}

func (r *rig) usage() uint64 {
	r.t.Helper()
	var h store.HostingAccount
	if err := r.f.Read(func(rt store.ReadTx) (err error) { h, err = rt.HostingAccountByID("hst_1"); return }); err != nil {
		r.t.Fatal(err)
	}
	return h.Quota.DiskUsedBytes
}

func report(accts ...*pb.HostingUsage) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_HostingUsageReport{HostingUsageReport: &pb.HostingUsageReport{Accounts: accts}}}
}

// TestReportWritesChangedFigures: the node is asked for its accounts by
// username; the figures that changed go in one command, an account the node
// was not asked for is refused, an unchanged figure proposes nothing.
func TestReportWritesChangedFigures(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingUsage)
	var asked []string
	r.answer = func(req *pb.HostingUsageRequest) *pb.Envelope {
		asked = req.Usernames
		return report(&pb.HostingUsage{Username: "ada", DiskBytes: 2 << 30}, &pb.HostingUsage{Username: "eve", DiskBytes: 1})
	}
	out, err := j.Report(context.Background(), "hv-1")
	if err != nil || out == nil || out.Written != 1 || len(out.Refused) != 0 {
		t.Fatalf("report: %+v, %v", out, err)
	}
	if len(asked) != 1 || asked[0] != "ada" || r.usage() != 2<<30 || r.props != 1 {
		t.Fatalf("asked %v; usage %d; %d proposals", asked, r.usage(), r.props)
	}
	// Unchanged: nothing proposed.
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		return report(&pb.HostingUsage{Username: "ada", DiskBytes: 2 << 30})
	}
	if out, err := j.Report(context.Background(), "hv-1"); err != nil || out != nil || r.props != 1 {
		t.Fatalf("unchanged figure: %+v, %v, %d proposals", out, err, r.props)
	}
	// The agent refuses (an older one, a busy node): an error, nothing written.
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		return &pb.Envelope{Body: &pb.Envelope_Error{Error: &pb.Error{Code: "unavailable", Message: "busy"}}}
	}
	if _, err := j.Report(context.Background(), "hv-1"); err == nil || r.props != 1 {
		t.Fatalf("agent error: %v, %d proposals", err, r.props)
	}
	// A node without accounts is not asked.
	calls := r.calls
	if out, err := j.Report(context.Background(), "hv-2"); err != nil || out != nil || r.calls != calls {
		t.Fatalf("node without accounts: %+v %v, asked %d times", out, err, r.calls-calls)
	}
}

// TestReportBelowLevel: below fsm.LevelHostingUsage the node is not asked
// and nothing is proposed (the release before's behaviour).
func TestReportBelowLevel(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingUsage-1)
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		return report(&pb.HostingUsage{Username: "ada", DiskBytes: 2 << 30})
	}
	if out, err := j.Report(context.Background(), "hv-1"); err != nil || out != nil || r.calls != 0 || r.props != 0 || r.usage() != 4096 {
		t.Fatalf("below the level: %+v %v, %d calls, %d proposals, usage %d", out, err, r.calls, r.props, r.usage())
	}
	// Run, ticking each second, asks nobody either.
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	j.Run(ctx)
	if r.calls != 0 || r.props != 0 {
		t.Fatalf("Run below the level: %d calls, %d proposals", r.calls, r.props)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal(ctx.Err())
	}
}

// countHandler counts the records logged at Warn or above.
type countHandler struct{ warns *int }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		*h.warns++
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestReportOfUnaskedAccountsLogsOnce: a node (a hostile or broken agent)
// that reports thousands of accounts it was not asked for, in one report
// that fits a frame, has them all refused and gets one warning, not one
// per name: the leader's log is not the agent's to fill.
func TestReportOfUnaskedAccountsLogsOnce(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingUsage)
	warns := 0
	j.d.Log = slog.New(countHandler{&warns})
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		accts := []*pb.HostingUsage{{Username: "ada", DiskBytes: 8192}}
		for i := range 5000 {
			accts = append(accts, &pb.HostingUsage{Username: fmt.Sprintf("u%d", i), DiskBytes: 1})
		}
		return report(accts...)
	}
	out, err := j.Report(context.Background(), "hv-1")
	if err != nil || out == nil || out.Written != 1 || r.usage() != 8192 {
		t.Fatalf("report: %+v, %v, usage %d", out, err, r.usage())
	}
	if warns != 1 {
		t.Fatalf("5000 accounts reported without being asked: %d warnings logged, want 1", warns)
	}
}

// TestReportOnALeaderWithClockBehind: a leader whose clock is three hours
// behind the one that wrote the account's figure measures at the
// coordinator's clock (hlc: held to the latest applied time), so its
// reports are written, one after the other, rather than refused as older
// than the figure they follow until its clock catches up (as they are at
// its bare clock).
func TestReportOnALeaderWithClockBehind(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingUsage)
	behind := func() time.Time { return r.at.Add(-3 * time.Hour) }
	figure := uint64(1 << 30)
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		return report(&pb.HostingUsage{Username: "ada", DiskBytes: figure})
	}
	j.d.Now = behind
	if out, err := j.Report(context.Background(), "hv-1"); err != nil || out == nil || out.Written != 0 || len(out.Refused) != 1 || r.usage() != 4096 {
		t.Fatalf("at the bare clock, 3 h behind: %+v, %v, usage %d; want the report refused", out, err, r.usage())
	}
	j.d.Now = hlc.New(behind, r.f.AppliedAt).Now
	for i := 0; i < 3; i++ {
		figure += 4096
		out, err := j.Report(context.Background(), "hv-1")
		if err != nil || out == nil || out.Written != 1 || len(out.Refused) != 0 || r.usage() != figure {
			t.Fatalf("report %d at the coordinator's clock: %+v, %v, usage %d, want %d written", i, out, err, r.usage(), figure)
		}
	}
}

// gatedClock is a fake clock that tells the test each time Run waits.
type gatedClock struct {
	*clocktest.Fake
	waiting chan struct{}
}

func (c *gatedClock) After(d time.Duration) <-chan time.Time {
	ch := c.Fake.After(d)
	c.waiting <- struct{}{}
	return ch
}

// TestRunAsksEachNodeAtItsPhase: Run asks a node once an interval, at the
// node's phase of it (not all nodes when Run starts or at one tick), at most
// a step (a sixtieth of the interval) late.
func TestRunAsksEachNodeAtItsPhase(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingUsage)
	start := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	fake := clocktest.NewFake(start)
	clk := &gatedClock{Fake: fake, waiting: make(chan struct{})}
	j.d.Clock, j.d.Now, j.d.Interval = clk, fake.Now, time.Minute
	var mu sync.Mutex
	var asked []time.Time
	figure := uint64(4096)
	r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
		mu.Lock()
		asked = append(asked, fake.Now())
		mu.Unlock()
		figure++
		return report(&pb.HostingUsage{Username: "ada", DiskBytes: figure})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	// idle: Run waits, and the reports it started this step are done.
	idle := func() {
		t.Helper()
		select {
		case <-clk.waiting:
		case <-time.After(10 * time.Second):
			t.Fatal("Run does not wait for its next step")
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			j.mu.Lock()
			n := len(j.busy)
			j.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a report does not end")
			}
		}
	}
	for i := 0; i < 180; i++ {
		idle()
		fake.Advance(time.Second)
	}
	idle()
	cancel()
	<-done

	p := time.Duration(j.phase("hv-1"))
	first := start.Add(p.Truncate(time.Second))
	if p%time.Second != 0 {
		first = first.Add(time.Second)
	}
	want := []time.Time{first, first.Add(time.Minute), first.Add(2 * time.Minute)}
	if len(asked) != len(want) {
		t.Fatalf("over 3 minutes (interval 1 minute, phase %s) hv-1 was asked at %v, want %v", p, asked, want)
	}
	for i := range want {
		if !asked[i].Equal(want[i]) {
			t.Errorf("ask %d at %s, want %s (phase %s)", i, asked[i].Format(time.TimeOnly), want[i].Format(time.TimeOnly), p)
		}
	}
}

// TestPhasesSpreadTheNodes: over one interval each of 1000 nodes is due
// exactly once, and no step (a sixtieth) holds more than a small share of
// them: the asks do not come as one burst.
func TestPhasesSpreadTheNodes(t *testing.T) {
	j := New(Deps{Interval: 5 * time.Minute})
	start := time.Date(2026, 12, 4, 16, 0, 7, 0, time.UTC)
	step := j.step()
	if step != 5*time.Second {
		t.Fatalf("step of a 5 minute interval: %s", step)
	}
	times := map[string]int{}
	most := 0
	for from := start; from.Before(start.Add(5 * time.Minute)); from = from.Add(step) {
		n := 0
		for i := 0; i < 1000; i++ {
			node := fmt.Sprintf("hv-%d", i)
			if j.due(node, from, from.Add(step)) {
				times[node]++
				n++
			}
		}
		most = max(most, n)
	}
	for i := 0; i < 1000; i++ {
		if node := fmt.Sprintf("hv-%d", i); times[node] != 1 {
			t.Fatalf("%s due %d times in one interval", node, times[node])
		}
	}
	// 1000/60 ≈ 17 a step on average.
	if most > 40 {
		t.Fatalf("%d of 1000 nodes due in one step of 60", most)
	}
}

// TestReportCarriesQuotaEnforced: from fsm.LevelQuotaEnforced the node's
// quota_enforced reaches the account (quota.enforced) with no action of its
// own: proposed when newly known or changed, even with the same figure;
// nothing proposed when unchanged, or when the agent leaves it out (an
// older agent). Below the level it is not proposed (an account made then
// shows it as not known).
func TestReportCarriesQuotaEnforced(t *testing.T) {
	r, j := newRig(t, fsm.LevelQuotaEnforced-1)
	enforced := func() string {
		t.Helper()
		var h store.HostingAccount
		if err := r.f.Read(func(rt store.ReadTx) (err error) { h, err = rt.HostingAccountByID("hst_1"); return }); err != nil {
			t.Fatal(err)
		}
		if h.Quota.Enforced == nil {
			return "unknown"
		}
		return fmt.Sprint(*h.Quota.Enforced)
	}
	says := func(v *bool) {
		r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
			return report(&pb.HostingUsage{Username: "ada", DiskBytes: 4096, QuotaEnforced: v})
		}
	}
	yes, no := true, false
	step := func(what string, v *bool, props int, want string) {
		t.Helper()
		says(v)
		if _, err := j.Report(context.Background(), "hv-1"); err != nil || r.props != props || enforced() != want {
			t.Fatalf("%s: %v, %d proposals (want %d), quota.enforced %s (want %s)", what, err, r.props, props, enforced(), want)
		}
	}
	step("below the level", &yes, 0, "unknown")
	r.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelQuotaEnforced})
	step("at the level, newly known", &yes, 1, "true")
	step("unchanged", &yes, 1, "true")
	step("left out by an older agent", nil, 1, "true")
	step("changed", &no, 2, "false")
	if r.usage() != 4096 {
		t.Fatalf("usage %d", r.usage())
	}
}

// TestReportCarriesConnection: from fsm.LevelHostingConnection a report
// whose connection details are new or changed is proposed with them, even
// when no figure changed, and the node records them; the same details again
// propose nothing; invalid ones are left out (the figures still written);
// below the level they are never proposed.
func TestReportCarriesConnection(t *testing.T) {
	r, j := newRig(t, fsm.LevelHostingConnection-1)
	conn := func() *api.NodeHostingConnection {
		t.Helper()
		var n store.AgentNode
		if err := r.f.Read(func(rt store.ReadTx) (err error) { n, err = rt.AgentNode("hv-1"); return }); err != nil {
			t.Fatal(err)
		}
		return n.HostingConnection
	}
	step := func(what string, c *pb.HostingConnection, bytes uint64, props int, want *api.NodeHostingConnection) {
		t.Helper()
		r.answer = func(*pb.HostingUsageRequest) *pb.Envelope {
			env := report(&pb.HostingUsage{Username: "ada", DiskBytes: bytes})
			env.GetHostingUsageReport().Connection = c
			return env
		}
		if _, err := j.Report(context.Background(), "hv-1"); err != nil || r.props != props || !fsm.SameHostingConnection(conn(), want) {
			t.Fatalf("%s: %v, %d proposals (want %d), node's connection %+v (want %+v)", what, err, r.props, props, conn(), want)
		}
	}
	c1 := &pb.HostingConnection{SftpHost: "web1.example", SftpPort: 2222, DbPort: 3307}
	w1 := &api.NodeHostingConnection{SFTPHost: "web1.example", SFTPPort: 2222, DBPort: 3307}
	step("below the level", c1, 4096, 0, nil)
	r.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelHostingConnection})
	step("at the level, new", c1, 4096, 1, w1)
	step("unchanged", c1, 4096, 1, w1)
	step("left out by an older agent", nil, 4096, 1, w1)
	step("invalid, with a new figure", &pb.HostingConnection{SftpPort: 70000}, 8192, 2, w1)
	step("changed", &pb.HostingConnection{SftpPort: 22, DbPort: 3306}, 8192, 3, &api.NodeHostingConnection{SFTPPort: 22, DBPort: 3306})
	if r.usage() != 8192 {
		t.Fatalf("usage %d", r.usage())
	}
	step("a zoned SFTP host, with a new figure", &pb.HostingConnection{SftpHost: "fe80::1%eth0", SftpPort: 22}, 12288, 4,
		&api.NodeHostingConnection{SFTPPort: 22, DBPort: 3306})
	if r.usage() != 12288 {
		t.Fatalf("usage %d", r.usage())
	}
}
