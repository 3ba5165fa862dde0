package ops

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/pkg/api"
)

// fastClock runs timers 1000× faster so grace periods take milliseconds.
type fastClock struct{}

func (fastClock) Now() time.Time                         { return time.Now() }
func (fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / 1000) }

func newManager(t *testing.T, hv *hvfake.HV) (*Manager, *journal.DB, string) {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "j.db")
	j, err := journal.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	base := filepath.Join(hv.Pool, "tpl-base.qcow2")
	if err := j.PutTemplate(journal.Template{NodeTemplate: api.NodeTemplate{Name: "base", OSFamily: "linux", SizeBytes: 32 << 20, Volume: "tpl-base.qcow2"}, BasePath: base}); err != nil {
		t.Fatal(err)
	}
	hv.Vols["tpl-base.qcow2"] = hypervisor.Volume{Name: "tpl-base.qcow2", Path: base}
	m := New(context.Background(), Config{DataDir: dir, DomainType: "qemu", Machine: "pc", Emulator: "/bin/true",
		StopGrace: 60 * time.Second, Network: "user", MinFreeBytes: 1 << 20, PollInterval: 100 * time.Millisecond},
		hv, j, slog.New(slog.DiscardHandler), fastClock{})
	return m, j, dbPath
}

// newWithVM1 is newManager over a fresh fake hypervisor with VM vm1 provisioned
// (operation "p").
func newWithVM1(t *testing.T) (*Manager, *journal.DB, *hvfake.HV) {
	t.Helper()
	hv := hvfake.New(t.TempDir())
	m, j, _ := newManager(t, hv)
	if _, err := m.Provision(context.Background(), provReq("p", "vm1")); err != nil {
		t.Fatal(err)
	}
	return m, j, hv
}

const secret = "plaintext-Secret-42"

func provReq(id, name string) api.NodeProvisionRequest {
	return api.NodeProvisionRequest{OpID: id, Name: name, Template: "base", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 128, DiskGiB: 1}, RootPassword: secret}
}

func TestReplayConflictAndNoPlaintext(t *testing.T) {
	hv := hvfake.New(t.TempDir())
	m, j, dbPath := newManager(t, hv)
	ctx := context.Background()
	op, err := m.Provision(ctx, provReq("op1", "vm1"))
	if err != nil || op.State != api.NodeOpSucceeded || op.Result.VM.State != "running" {
		t.Fatalf("%+v %v", op, err)
	}
	again, err := m.Provision(ctx, provReq("op1", "vm1"))
	if err != nil || !again.Replayed || again.Result.VM.MAC != op.Result.VM.MAC {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if n := hv.Count("StartDomain"); n != 1 {
		t.Fatalf("started %d times", n)
	}
	other := provReq("op1", "vm1")
	other.RootPassword = "another-password"
	var ne *api.NodeError
	if _, err := m.Provision(ctx, other); !errors.As(err, &ne) || ne.Code != api.NodeErrConflict {
		t.Fatalf("other password, same id: %v", err)
	}
	vm, _ := j.GetVM("vm1")
	if !strings.HasPrefix(vm.PasswordHash, "$6$") {
		t.Fatalf("registry password hash %q", vm.PasswordHash)
	}
	if _, err := m.ResetPassword(ctx, "vm1", api.NodePasswordResetRequest{OpID: "pw", Password: secret}); !errors.As(err, &ne) || ne.Code != api.NodeErrUnsupported {
		t.Fatalf("password reset without guest agent: %v", err)
	}
	j.Close()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("plaintext password found in the journal file")
	}
}

func TestProvisionUndoesEveryStep(t *testing.T) {
	for _, step := range []string{"CreateOverlay", "CreateVolumeFromBytes", "DefineDomain", "StartDomain"} {
		t.Run(step, func(t *testing.T) {
			hv := hvfake.New(t.TempDir())
			m, j, _ := newManager(t, hv)
			hv.Fail[step] = &hypervisor.Error{Op: step, Resource: "vm1", Kind: hypervisor.ErrNoSpace}
			// A failed operation is an answer (journaled), not a call error.
			op, err := m.Provision(context.Background(), provReq("op-"+step, "vm1"))
			if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrNoSpace {
				t.Fatalf("%+v %v", op, err)
			}
			if len(hv.Doms) != 0 || len(hv.Vols) != 1 {
				t.Fatalf("left behind: domains %v volumes %v", hv.Doms, hv.Vols)
			}
			if vms, _ := j.VMs(); len(vms) != 0 {
				t.Fatalf("registry: %+v", vms)
			}
		})
	}
}

func TestConcurrentSameIDRunsOnce(t *testing.T) {
	hv := hvfake.New(t.TempDir())
	m, _, _ := newManager(t, hv)
	var wg sync.WaitGroup
	ops := make([]*api.NodeOperation, 8)
	for i := range ops {
		wg.Go(func() {
			ops[i], _ = m.Provision(context.Background(), provReq("same", "vm1"))
		})
	}
	wg.Wait()
	if n := hv.Count("DefineDomain"); n != 1 {
		t.Fatalf("defined %d times", n)
	}
	replays := 0
	for _, op := range ops {
		if op == nil || op.State != api.NodeOpSucceeded {
			t.Fatalf("op %+v", op)
		}
		if op.Replayed {
			replays++
		}
	}
	if replays != len(ops)-1 {
		t.Fatalf("%d replays", replays)
	}
}

func TestStopGracefulAndForced(t *testing.T) {
	m, _, hv := newWithVM1(t)
	ctx := context.Background()
	op, err := m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s1"})
	if err != nil || op.Result.PowerMethod != api.NodePowerGraceful || hv.Count("DestroyDomain") != 0 {
		t.Fatalf("graceful: %+v %v", op, err)
	}
	op, err = m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s2"})
	if err != nil || op.Result.PowerMethod != api.NodePowerAlready {
		t.Fatalf("already: %+v %v", op, err)
	}
	if _, err := m.Start(ctx, "vm1", api.NodeOpRequest{OpID: "st"}); err != nil {
		t.Fatal(err)
	}
	hv.ACPIPoll = -1 // the guest ignores ACPI
	start := time.Now()
	op, err = m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s3", GraceSeconds: 60})
	if err != nil || op.Result.PowerMethod != api.NodePowerForced || hv.Count("DestroyDomain") != 1 {
		t.Fatalf("forced: %+v %v", op, err)
	}
	if el := time.Since(start); el < 60*time.Millisecond { // 60 s at the fake clock's 1000×
		t.Fatalf("forced after %s, before the grace", el)
	}
}

func TestReinstallUndoBeforeSwap(t *testing.T) {
	m, j, hv := newWithVM1(t)
	ctx := context.Background()
	before, _ := j.GetVM("vm1")
	hv.Fail["DefineDomain"] = errors.New("boom")
	op, err := m.Reinstall(ctx, "vm1", api.NodeReinstallRequest{OpID: "r1", Template: "base"})
	if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrInternal {
		t.Fatalf("%+v %v", op, err)
	}
	after, _ := j.GetVM("vm1")
	if after.DiskVolume != before.DiskVolume || len(hv.Vols) != 3 {
		t.Fatalf("not undone: %s → %s, volumes %v", before.DiskVolume, after.DiskVolume, hv.Vols)
	}
	if st, _ := hv.DomainState(ctx, "vm1"); st != hypervisor.StateRunning {
		t.Fatalf("vm not restarted by the undo: %s", st)
	}
	// A fresh reinstall works and removes the old volumes.
	op, err = m.Reinstall(ctx, "vm1", api.NodeReinstallRequest{OpID: "r2", Template: "base"})
	if err != nil || op.Result.VM.DiskVolume == before.DiskVolume {
		t.Fatalf("%+v %v", op, err)
	}
	if _, ok := hv.Vols[before.DiskVolume]; ok || len(hv.Vols) != 3 {
		t.Fatalf("volumes after reinstall: %v", hv.Vols)
	}
}

func TestRecoverMarksInterrupted(t *testing.T) {
	m, j, hv := newWithVM1(t)
	ctx := context.Background()
	if _, _, err := j.Begin(journal.Record{ID: "stop-x", Kind: api.NodeOpStop, Target: "vm1", InputHash: "h", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	op, err := m.Operation("stop-x")
	if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrInterrupted || !strings.Contains(op.Error.Message, "running") {
		t.Fatalf("%+v %v", op, err)
	}
	if hv.Count("ShutdownDomain")+hv.Count("DestroyDomain") != 0 {
		t.Fatal("recovery re-ran the stop")
	}
}

// TestRebootKeepsTheProcess: reboot never stops and starts the domain; the
// guest's ACPI reboot is used when it answers within the grace, a reset otherwise.
func TestRebootKeepsTheProcess(t *testing.T) {
	m, _, hv := newWithVM1(t)
	ctx := context.Background()
	starts := hv.Count("StartDomain")
	boots := func() int { hv.Mu.Lock(); defer hv.Mu.Unlock(); return hv.Doms["vm1"].Boots }

	op, err := m.Reboot(ctx, "vm1", api.NodeStopRequest{OpID: "r1"})
	if err != nil || op.Result.RebootMethod != api.NodeRebootGuest || op.Result.PowerMethod != api.NodePowerGraceful || boots() != 1 || hv.Count("ResetDomain") != 0 {
		t.Fatalf("guest reboot: %+v %v (boots %d)", op, err, boots())
	}

	hv.ACPIPoll = -1 // the guest ignores ACPI
	start := time.Now()
	op, err = m.Reboot(ctx, "vm1", api.NodeStopRequest{OpID: "r2", GraceSeconds: 60})
	if err != nil || op.Result.RebootMethod != api.NodeRebootReset || op.Result.PowerMethod != api.NodePowerForced || hv.Count("ResetDomain") != 1 || boots() != 2 {
		t.Fatalf("forced reset: %+v %v", op, err)
	}
	if el := time.Since(start); el < 60*time.Millisecond { // 60 s at the fake clock's 1000×
		t.Fatalf("reset after %s, before the grace", el)
	}

	op, err = m.Reboot(ctx, "vm1", api.NodeStopRequest{OpID: "r3", Force: true})
	if err != nil || op.Result.RebootMethod != api.NodeRebootReset || hv.Count("RebootDomain") != 2 || hv.Count("ResetDomain") != 2 {
		t.Fatalf("force: %+v %v", op, err)
	}
	if hv.Count("DestroyDomain") != 0 || hv.Count("StartDomain") != starts {
		t.Fatalf("reboot stopped or started the domain: destroy %d, start %d (before %d)", hv.Count("DestroyDomain"), hv.Count("StartDomain"), starts)
	}

	if _, err := m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s1", Force: true}); err != nil {
		t.Fatal(err)
	}
	op, err = m.Reboot(ctx, "vm1", api.NodeStopRequest{OpID: "r4"})
	if err != nil || op.Result.PowerMethod != api.NodePowerStarted || op.Result.RebootMethod != api.NodeRebootStarted || !strings.Contains(op.Result.Message, "started") {
		t.Fatalf("reboot of a stopped vm: %+v %v", op, err)
	}
	if st, _ := hv.DomainState(ctx, "vm1"); st != hypervisor.StateRunning {
		t.Fatalf("state %s", st)
	}
}
