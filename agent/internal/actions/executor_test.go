package actions

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

const rootPW = "plaintext-Root-Secret-42"

type env struct {
	hv      *hvfake.HV
	m       *ops.Manager
	ex      *Executor
	changes atomic.Int32
	stats   *fakeStats
}

type fakeStats struct {
	mu  sync.Mutex
	vms map[string][]api.NodeVMStats
}

func (s *fakeStats) Current(_ context.Context, vm string) api.NodeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.NodeStats{VMs: map[string][]api.NodeVMStats{}}
	if r, ok := s.vms[vm]; ok {
		out.VMs[vm] = append([]api.NodeVMStats(nil), r...)
	}
	return out
}

// Live answers the ring's last sample: the collector's live sampling is
// stats' to test (TestLive…); here the executor's framing of what it answers.
func (s *fakeStats) Live(_ context.Context, vm string, _ *stats.Mark) (api.NodeVMStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vms[vm]
	if len(r) == 0 {
		return api.NodeVMStats{}, false
	}
	return r[len(r)-1], true
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{hv: hvfake.New(t.TempDir()), stats: &fakeStats{vms: map[string][]api.NodeVMStats{}}}
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	for _, name := range []string{"base", "ga"} {
		base := filepath.Join(e.hv.Pool, "tpl-"+name+".qcow2")
		if err := j.PutTemplate(journal.Template{NodeTemplate: api.NodeTemplate{Name: name, OSFamily: "linux", SizeBytes: 32 << 20,
			Volume: "tpl-" + name + ".qcow2", GuestAgent: name == "ga"}, BasePath: base}); err != nil {
			t.Fatal(err)
		}
	}
	e.m = ops.New(context.Background(), ops.Config{DataDir: dir, DomainType: "qemu", Machine: "pc", Emulator: "/bin/true",
		StopGrace: time.Second, Network: "user", Bridges: []string{"br-public"}, MinFreeBytes: 1 << 20, PollInterval: 5 * time.Millisecond},
		e.hv, j, slog.New(slog.DiscardHandler), nil)
	e.ex = New(Config{Manager: e.m, Stats: e.stats, PollInterval: 5 * time.Millisecond, OnChange: func() { e.changes.Add(1) }})
	return e
}

// call runs Handle and returns every frame it sent.
func (e *env) call(t *testing.T, ctx context.Context, req *pb.Envelope) []*pb.Envelope {
	t.Helper()
	return e.callWatching(t, ctx, req, nil)
}

// callWatching is call that also hands each frame to watch (if not nil) as
// it is sent.
func (e *env) callWatching(t *testing.T, ctx context.Context, req *pb.Envelope, watch func(*pb.Envelope)) []*pb.Envelope {
	t.Helper()
	var mu sync.Mutex
	var out []*pb.Envelope
	e.ex.Handle(ctx, req, func(f *pb.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, f)
		if watch != nil {
			watch(f)
		}
		return nil
	})
	return out
}

func assign(id, command, target, params, secret string, resend bool) *pb.Envelope {
	a := &pb.ActionAssign{ActionId: id, Command: command, Target: target, Params: []byte(params), Resend: resend}
	if secret != "" {
		a.SecretParams = []byte(secret)
	}
	return &pb.Envelope{Seq: 7, Body: &pb.Envelope_ActionAssign{ActionAssign: a}}
}

const provParams = `{"template":"base","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1}}`

var rootSecret = `{"root_password":"` + rootPW + `"}`

// result checks the frames: progress frames, then exactly one result, last.
func result(t *testing.T, frames []*pb.Envelope) (*pb.ActionResult, []string) {
	t.Helper()
	var steps []string
	var res *pb.ActionResult
	for i, f := range frames {
		if f.ReplyTo != 7 {
			t.Errorf("frame %d replies to %d", i, f.ReplyTo)
		}
		switch b := f.Body.(type) {
		case *pb.Envelope_ActionProgress:
			if res != nil {
				t.Errorf("progress after the result")
			}
			steps = append(steps, b.ActionProgress.Step)
		case *pb.Envelope_ActionResult:
			if res != nil {
				t.Fatalf("two results: %v", frames)
			}
			res = b.ActionResult
		default:
			t.Fatalf("unexpected frame %T", f.Body)
		}
	}
	if res == nil {
		t.Fatalf("no result in %v", frames)
	}
	return res, steps
}

func TestProvisionProgressResultAndReplay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.hv.StartGate = make(chan struct{})
	var frames []*pb.Envelope
	done := make(chan struct{})
	// The start is held until the poller has reported the step journaled
	// before it: the poller follows the journal while an operation runs. (A
	// fixed 50 ms hold was not always enough for its 5 ms ticker under load.)
	defined := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		frames = e.callWatching(t, ctx, assign("act-1", api.ActionServerProvision, "vm1", provParams, rootSecret, false), func(f *pb.Envelope) {
			if p, ok := f.Body.(*pb.Envelope_ActionProgress); ok && p.ActionProgress.Step == "defined" {
				once.Do(func() { close(defined) })
			}
		})
	}()
	select {
	case <-defined:
	case <-done:
		t.Fatal("the provision finished with its start held")
	case <-time.After(10 * time.Second):
		t.Fatalf("no progress frame with step \"defined\" within 10 s while the start was held (StartDomain calls: %d)", e.hv.Count("StartDomain"))
	}
	close(e.hv.StartGate)
	<-done
	res, steps := result(t, frames)
	if !res.Success || res.ActionId != "act-1" || res.ErrorCode != "" {
		t.Fatalf("result %+v", res)
	}
	// The start was held after "defined": the poller must have seen it.
	if len(steps) < 2 || steps[0] != "accepted" || !slices.Contains(steps, "defined") {
		t.Fatalf("steps %v, want accepted … defined", steps)
	}
	for i, s := range steps {
		if !slices.Contains([]string{"accepted", "disk-created", "seed-created", "defined", "started"}, s) || slices.Index(steps, s) != i {
			t.Fatalf("steps %v: unknown or repeated step %q", steps, s)
		}
	}
	var out api.NodeOpResult
	if err := json.Unmarshal(res.Result, &out); err != nil || out.VM == nil || out.VM.Name != "vm1" || out.VM.State != "running" {
		t.Fatalf("result json %s: %v", res.Result, err)
	}
	if e.changes.Load() != 1 {
		t.Fatalf("OnChange called %d times", e.changes.Load())
	}

	// A re-send after a leader change carries no secret: answered from the
	// journal, not run again.
	again, _ := result(t, e.call(t, ctx, assign("act-1", api.ActionServerProvision, "vm1", provParams, "", true)))
	if !again.Success || string(again.Result) != string(res.Result) {
		t.Fatalf("replayed %+v, want %s", again, res.Result)
	}
	if n := e.hv.Count("StartDomain"); n != 1 {
		t.Fatalf("StartDomain ran %d times", n)
	}
	if n := e.hv.Count("DefineDomain"); n != 1 {
		t.Fatalf("DefineDomain ran %d times", n)
	}
	// The same id for another command is a conflict, not a run.
	conflict, _ := result(t, e.call(t, ctx, assign("act-1", api.ActionServerStop, "vm1", `{}`, "", true)))
	if conflict.Success || conflict.ErrorCode != api.NodeErrConflict {
		t.Fatalf("conflict %+v", conflict)
	}

	inv, err := e.ex.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Vms) != 1 || inv.Vms[0].Name != "vm1" || inv.Vms[0].State != "running" || inv.Vms[0].Vcpus != 1 ||
		inv.Vms[0].MemoryBytes != 128<<20 || inv.Vms[0].DiskBytes != 1<<30 || strings.Join(inv.Templates, ",") != "base,ga" {
		t.Fatalf("inventory %v", inv)
	}
}

func TestResendWhileRunningWaitsForTheFirst(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.hv.StartGate = make(chan struct{})
	first := make(chan []*pb.Envelope, 1)
	go func() {
		first <- e.call(t, ctx, assign("act-2", api.ActionServerProvision, "vm2", provParams, rootSecret, false))
	}()
	for e.hv.Count("StartDomain") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The coordinator reconnected and re-sent, without the secret: it waits.
	second := make(chan []*pb.Envelope, 1)
	go func() {
		second <- e.call(t, ctx, assign("act-2", api.ActionServerProvision, "vm2", provParams, "", true))
	}()
	select {
	case <-second:
		t.Fatal("the re-send answered while the first run was still going")
	case <-time.After(100 * time.Millisecond):
	}
	close(e.hv.StartGate)
	r1, _ := result(t, <-first)
	r2, _ := result(t, <-second)
	if !r1.Success || !r2.Success || string(r1.Result) != string(r2.Result) {
		t.Fatalf("first %+v second %+v", r1, r2)
	}
	if n := e.hv.Count("StartDomain"); n != 1 {
		t.Fatalf("StartDomain ran %d times", n)
	}
}

func TestSecretLostRunsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, command, params string }{
		{"provision", api.ActionServerProvision, provParams},
		{"reinstall", api.ActionServerReinstall, `{"template":"base"}`},
		{"password", api.ActionServerPasswordReset, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "lost-" + tc.name
			res, _ := result(t, e.call(t, ctx, assign(id, tc.command, "vm1", tc.params, "", true)))
			if res.Success || res.ErrorCode != CodeSecretLost || !strings.Contains(res.ErrorMessage, "nothing was changed") {
				t.Fatalf("result %+v", res)
			}
			if _, err := e.m.Operation(id); err == nil {
				t.Fatal("a secret_lost action was journaled")
			}
		})
	}
	if n := e.hv.Count("CreateOverlay") + e.hv.Count("DefineDomain"); n != 0 {
		t.Fatalf("%d hypervisor calls", n)
	}
	// A first delivery with SSH keys and no password is a real request.
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb7yU+yFqJ2Jb5c1d2l5dwYv0R2t3V5c1m8ofR0Pmxq test@x"
	p := `{"template":"base","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1},"ssh_keys":["` + key + `"]}`
	res, _ := result(t, e.call(t, ctx, assign("keys-only", api.ActionServerProvision, "vmk", p, "", false)))
	if !res.Success {
		t.Fatalf("keys-only provision: %+v", res)
	}
}

func TestSecretMergedAndNeverEchoed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := `{"template":"ga","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1}}`
	if res, _ := result(t, e.call(t, ctx, assign("p-ga", api.ActionServerProvision, "vmga", p, rootSecret, false))); !res.Success {
		t.Fatalf("provision %+v", res)
	}
	pw := "Another-Secret-99"
	res, _ := result(t, e.call(t, ctx, assign("pw-1", api.ActionServerPasswordReset, "vmga", `{"user":"admin"}`, `{"password":"`+pw+`"}`, false)))
	if !res.Success {
		t.Fatalf("password reset %+v", res)
	}
	e.hv.Mu.Lock()
	got := strings.Join(e.hv.Passwords, ",")
	e.hv.Mu.Unlock()
	if got != "admin:"+pw {
		t.Fatalf("guest agent got %q", got)
	}
	if strings.Contains(string(res.Result), pw) || strings.Contains(res.ErrorMessage, pw) {
		t.Fatal("the password is echoed in the result")
	}
}

func TestBadParamsGiveErrorResults(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secretVal := "S3cret-value-never-shown"
	for _, tc := range []struct {
		name, command, params, secret, code string
	}{
		{"malformed", api.ActionServerStop, `{"force":`, "", api.NodeErrInvalid},
		{"not object", api.ActionServerStop, `[1]`, "", api.NodeErrInvalid},
		{"trailing", api.ActionServerStop, `{} {}`, "", api.NodeErrInvalid},
		{"unknown field", api.ActionServerStop, `{"grace":1}`, "", api.NodeErrInvalid},
		{"wrong type", api.ActionServerStop, `{"force":"yes"}`, "", api.NodeErrInvalid},
		{"duplicate key", api.ActionServerStop, `{"force":true,"force":false}`, "", api.NodeErrInvalid},
		{"secret on start", api.ActionServerStart, `{}`, `{"root_password":"` + secretVal + `"}`, api.NodeErrInvalid},
		{"extra secret key", api.ActionServerProvision, provParams, `{"root_password":"` + secretVal + `","template":"x"}`, api.NodeErrInvalid},
		{"secret not string", api.ActionServerProvision, provParams, `{"root_password":["` + secretVal + `"]}`, api.NodeErrInvalid},
		{"secret malformed", api.ActionServerProvision, provParams, `{"root_password":"` + secretVal, api.NodeErrInvalid},
		{"weak password", api.ActionServerProvision, provParams, `{"root_password":"short"}`, api.NodeErrInvalid},
		{"bad plan", api.ActionServerProvision, `{"template":"base","plan":{"vcpus":0,"memory_mib":1,"disk_gib":1}}`, rootSecret, api.NodeErrInvalid},
		{"name mismatch", api.ActionServerProvision, `{"name":"other","template":"base","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1}}`, rootSecret, api.NodeErrInvalid},
		{"unknown command", "server.explode", `{}`, "", api.NodeErrUnsupported},
		{"bad target", api.ActionServerStart, `{}`, "", api.NodeErrInvalid},
		{"unknown vm", api.ActionServerStart, `{}`, "", api.NodeErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "vm1"
			if tc.name == "bad target" {
				target = "../etc"
			}
			res, _ := result(t, e.call(t, ctx, assign("bad-"+strings.ReplaceAll(tc.name, " ", "-"), tc.command, target, tc.params, tc.secret, false)))
			if res.Success || res.ErrorCode != tc.code || res.ErrorMessage == "" {
				t.Fatalf("result %+v, want code %s", res, tc.code)
			}
			if strings.Contains(res.ErrorMessage, secretVal) || strings.Contains(res.ErrorMessage, rootPW) {
				t.Fatalf("secret in message %q", res.ErrorMessage)
			}
		})
	}
	if n := e.hv.Count("CreateOverlay"); n != 0 {
		t.Fatalf("bad input reached the hypervisor %d times", n)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.stats.vms["vm1"] = []api.NodeVMStats{{Time: now.Add(-time.Second), CPUPercent: 1}, {Time: now, State: "running", CPUPercent: 42, CPUTimeNs: 7, NetRxBps: 3}}
	req := func(target string, stream bool, ms uint32) *pb.Envelope {
		return &pb.Envelope{Seq: 3, Body: &pb.Envelope_StatsRequest{StatsRequest: &pb.StatsRequest{Target: target, Stream: stream, IntervalMs: ms}}}
	}
	frames := e.call(t, context.Background(), req("vm1", false, 0))
	if len(frames) != 1 {
		t.Fatalf("%d frames", len(frames))
	}
	s := frames[0].GetStatsSample()
	if s == nil || !s.Last || s.CpuPercent != 42 || s.State != "running" || s.CpuTimeNs != 7 || s.NetRxBps != 3 || s.AtUnixMs != now.UnixMilli() || frames[0].ReplyTo != 3 {
		t.Fatalf("sample %v", frames[0])
	}
	frames = e.call(t, context.Background(), req("nosuch", true, 0))
	if len(frames) != 1 || frames[0].GetStatsSample().GetErrorCode() != api.NodeErrNotFound || !frames[0].GetStatsSample().Last {
		t.Fatalf("not found: %v", frames)
	}
	// A stream sends one sample per interval (at least 500 ms) until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 1300*time.Millisecond)
	defer cancel()
	start := time.Now()
	frames = e.call(t, ctx, req("vm1", true, 100))
	if took := time.Since(start); took < time.Second || took > 3*time.Second {
		t.Fatalf("stream ended after %s", took)
	}
	if len(frames) != 3 {
		t.Fatalf("%d samples in 1.3 s at the 500 ms minimum", len(frames))
	}
	for _, f := range frames {
		if f.GetStatsSample().GetLast() || f.GetStatsSample().GetCpuPercent() != 42 {
			t.Fatalf("stream sample %v", f)
		}
	}
}

func TestUnsupportedRequest(t *testing.T) {
	e := newEnv(t)
	frames := e.call(t, context.Background(), &pb.Envelope{Seq: 1, Body: &pb.Envelope_Ping{Ping: &pb.Ping{}}})
	if len(frames) != 1 || frames[0].GetError().GetCode() != api.NodeErrUnsupported {
		t.Fatalf("%v", frames)
	}
}

// TestProvisionOnBridgeAction: the protocol 1.3 provision keys (bridge, ipv6,
// gateway6, resolvers) reach the VM: its interface is on the bridge with the
// traffic filter and its addresses; a bridge the node does not carry is
// refused as invalid input, nothing defined.
func TestProvisionOnBridgeAction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := `{"template":"base","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1},"mac":"52:54:00:00:00:07","bridge":"br-public",` +
		`"ipv4":"198.51.100.10/24","gateway4":"198.51.100.1","ipv6":"2001:db8:0:5::1/64","gateway6":"fe80::1","resolvers":["2001:db8::53"]}`
	if res, _ := result(t, e.call(t, ctx, assign("p-br", api.ActionServerProvision, "vmb", p, rootSecret, false))); !res.Success {
		t.Fatalf("provision on a bridge: %+v", res)
	}
	e.hv.Mu.Lock()
	spec := e.hv.Doms["vmb"].Spec
	e.hv.Mu.Unlock()
	want := []hypervisor.FilterParam{{Name: "IP", Value: "198.51.100.10"}, {Name: "IPV6", Value: "2001:db8:0:5::1"}, {Name: "IPV6", Value: "fe80::5054:ff:fe00:7"}}
	if spec.Network != "bridge:br-public" || spec.Filter == nil || spec.Filter.Name != hypervisor.DualStackFilter || !slices.Equal(spec.Filter.Params, want) {
		t.Fatalf("domain spec network %q filter %+v", spec.Network, spec.Filter)
	}
	bad := strings.Replace(p, `"bridge":"br-public"`, `"bridge":"br-elsewhere"`, 1)
	res, _ := result(t, e.call(t, ctx, assign("p-br2", api.ActionServerProvision, "vmc", bad, rootSecret, false)))
	if res.Success || res.ErrorCode != api.NodeErrInvalid || !strings.Contains(res.ErrorMessage, "br-elsewhere") {
		t.Fatalf("unknown bridge: %+v", res)
	}
	e.hv.Mu.Lock()
	_, defined := e.hv.Doms["vmc"]
	e.hv.Mu.Unlock()
	if defined {
		t.Fatal("a refused provision defined a domain")
	}
}
