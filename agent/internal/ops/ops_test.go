package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/pkg/api"
)

// fakeHV is an in-memory Hypervisor for the manager's own logic (journal, undo,
// replay, timing). The libvirt implementation is tested against real libvirtd.
type fakeHV struct {
	mu       sync.Mutex
	pool     string
	vols     map[string]hypervisor.Volume
	doms     map[string]*fakeDom
	fail     map[string]error // method → error to return once
	calls    []string
	acpiPoll int // polls after which an ACPI shutdown completes; <0: ignores ACPI
}

type fakeDom struct {
	spec    hypervisor.DomainSpec
	state   hypervisor.State
	snaps   []string
	pending int // polls until ACPI shutdown completes
}

func newFake(t *testing.T) *fakeHV {
	return &fakeHV{pool: t.TempDir(), vols: map[string]hypervisor.Volume{}, doms: map[string]*fakeDom{}, fail: map[string]error{}, acpiPoll: 2}
}

func (f *fakeHV) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	if err, ok := f.fail[name]; ok {
		delete(f.fail, name)
		return err
	}
	return nil
}

func (f *fakeHV) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == name {
			n++
		}
	}
	return n
}

func (f *fakeHV) EnsurePool(context.Context) error { return nil }
func (f *fakeHV) PoolPath() string                 { return f.pool }
func (f *fakeHV) PoolAvailable(context.Context) (uint64, error) {
	return 100 << 30, f.call("PoolAvailable")
}
func (f *fakeHV) RefreshPool(context.Context) error { return nil }
func (f *fakeHV) CreateOverlay(_ context.Context, name, backing string, capacity uint64) (hypervisor.Volume, error) {
	if err := f.call("CreateOverlay"); err != nil {
		return hypervisor.Volume{}, err
	}
	return f.addVol(name, capacity)
}
func (f *fakeHV) addVol(name string, capacity uint64) (hypervisor.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.vols[name]; ok {
		return hypervisor.Volume{}, &hypervisor.Error{Op: "create volume", Resource: name, Kind: hypervisor.ErrExists}
	}
	v := hypervisor.Volume{Name: name, Path: filepath.Join(f.pool, name), Capacity: capacity}
	f.vols[name] = v
	return v, nil
}
func (f *fakeHV) CreateVolumeFromBytes(_ context.Context, name string, data []byte) (hypervisor.Volume, error) {
	if err := f.call("CreateVolumeFromBytes"); err != nil {
		return hypervisor.Volume{}, err
	}
	return f.addVol(name, uint64(len(data)))
}
func (f *fakeHV) Volume(_ context.Context, name string) (hypervisor.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vols[name]
	if !ok {
		return v, &hypervisor.Error{Op: "volume", Resource: name, Kind: hypervisor.ErrNotFound}
	}
	return v, nil
}
func (f *fakeHV) DeleteVolume(_ context.Context, name string) error {
	if err := f.call("DeleteVolume"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vols, name)
	return nil
}
func (f *fakeHV) ListVolumes(context.Context) ([]hypervisor.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hypervisor.Volume
	for _, v := range f.vols {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
func (f *fakeHV) DefineDomain(_ context.Context, s hypervisor.DomainSpec) (string, error) {
	if err := f.call("DefineDomain"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.doms[s.Name]
	if !ok {
		d = &fakeDom{state: hypervisor.StateShutoff}
		f.doms[s.Name] = d
	}
	if s.UUID == "" {
		s.UUID = "00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(f.doms))
	}
	d.spec = s
	return s.UUID, nil
}
func (f *fakeHV) dom(name string) (*fakeDom, error) {
	d, ok := f.doms[name]
	if !ok {
		return nil, &hypervisor.Error{Op: "lookup", Resource: name, Kind: hypervisor.ErrNotFound}
	}
	return d, nil
}
func (f *fakeHV) DomainState(_ context.Context, name string) (hypervisor.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return hypervisor.StateMissing, nil
	}
	if d.pending > 0 {
		d.pending--
		if d.pending == 0 {
			d.state = hypervisor.StateShutoff
		}
	}
	return d.state, nil
}
func (f *fakeHV) DomainDisk(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return "", err
	}
	return d.spec.DiskPath, nil
}
func (f *fakeHV) DomainUUID(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return "", err
	}
	return d.spec.UUID, nil
}
func (f *fakeHV) StartDomain(_ context.Context, name string) error {
	if err := f.call("StartDomain"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	d.state, d.pending = hypervisor.StateRunning, 0
	return nil
}
func (f *fakeHV) ShutdownDomain(_ context.Context, name string) error {
	if err := f.call("ShutdownDomain"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	if f.acpiPoll >= 0 {
		d.pending = f.acpiPoll + 1
	}
	return nil
}
func (f *fakeHV) DestroyDomain(_ context.Context, name string) error {
	if err := f.call("DestroyDomain"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.doms[name]; ok {
		d.state, d.pending = hypervisor.StateShutoff, 0
	}
	return nil
}
func (f *fakeHV) UndefineDomain(_ context.Context, name string) error {
	if err := f.call("UndefineDomain"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.doms, name)
	return nil
}
func (f *fakeHV) ListDomains(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.doms {
		out = append(out, n)
	}
	return out, nil
}
func (f *fakeHV) CreateSnapshot(_ context.Context, dom, name, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(dom)
	if err != nil {
		return err
	}
	d.snaps = append(d.snaps, name)
	return nil
}
func (f *fakeHV) ListSnapshots(_ context.Context, dom string) ([]hypervisor.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(dom)
	if err != nil {
		return nil, err
	}
	var out []hypervisor.Snapshot
	for _, s := range d.snaps {
		out = append(out, hypervisor.Snapshot{Name: s, State: "running"})
	}
	return out, nil
}
func (f *fakeHV) DeleteSnapshot(_ context.Context, dom, name string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(dom)
	if err != nil {
		return err
	}
	for i, s := range d.snaps {
		if s == name {
			d.snaps = append(d.snaps[:i], d.snaps[i+1:]...)
			return nil
		}
	}
	return &hypervisor.Error{Op: "snapshot delete", Resource: name, Kind: hypervisor.ErrNotFound}
}
func (f *fakeHV) RevertSnapshot(context.Context, string, string) error { return nil }
func (f *fakeHV) SetUserPassword(context.Context, string, string, string) error {
	return f.call("SetUserPassword")
}
func (f *fakeHV) AllDomainStats(context.Context) ([]hypervisor.DomainStats, error) { return nil, nil }

// fastClock runs timers 1000× faster so grace periods take milliseconds.
type fastClock struct{}

func (fastClock) Now() time.Time                         { return time.Now() }
func (fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / 1000) }

func newManager(t *testing.T, hv *fakeHV) (*Manager, *journal.DB, string) {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "j.db")
	j, err := journal.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	base := filepath.Join(hv.pool, "tpl-base.qcow2")
	if err := j.PutTemplate(journal.Template{NodeTemplate: api.NodeTemplate{Name: "base", OSFamily: "linux", SizeBytes: 32 << 20, Volume: "tpl-base.qcow2"}, BasePath: base}); err != nil {
		t.Fatal(err)
	}
	hv.vols["tpl-base.qcow2"] = hypervisor.Volume{Name: "tpl-base.qcow2", Path: base}
	m := New(context.Background(), Config{DataDir: dir, DomainType: "qemu", Machine: "pc", Emulator: "/bin/true",
		StopGrace: 60 * time.Second, Network: "user", MinFreeBytes: 1 << 20, PollInterval: 100 * time.Millisecond},
		hv, j, slog.New(slog.DiscardHandler), fastClock{})
	return m, j, dbPath
}

const secret = "plaintext-Secret-42"

func provReq(id, name string) api.NodeProvisionRequest {
	return api.NodeProvisionRequest{OpID: id, Name: name, Template: "base", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 128, DiskGiB: 1}, RootPassword: secret}
}

func TestReplayConflictAndNoPlaintext(t *testing.T) {
	hv := newFake(t)
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
	if n := hv.count("StartDomain"); n != 1 {
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
			hv := newFake(t)
			m, j, _ := newManager(t, hv)
			hv.fail[step] = &hypervisor.Error{Op: step, Resource: "vm1", Kind: hypervisor.ErrNoSpace}
			// A failed operation is an answer (journaled), not a call error.
			op, err := m.Provision(context.Background(), provReq("op-"+step, "vm1"))
			if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrNoSpace {
				t.Fatalf("%+v %v", op, err)
			}
			if len(hv.doms) != 0 || len(hv.vols) != 1 {
				t.Fatalf("left behind: domains %v volumes %v", hv.doms, hv.vols)
			}
			if vms, _ := j.VMs(); len(vms) != 0 {
				t.Fatalf("registry: %+v", vms)
			}
		})
	}
}

func TestConcurrentSameIDRunsOnce(t *testing.T) {
	hv := newFake(t)
	m, _, _ := newManager(t, hv)
	var wg sync.WaitGroup
	ops := make([]*api.NodeOperation, 8)
	for i := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ops[i], _ = m.Provision(context.Background(), provReq("same", "vm1"))
		}()
	}
	wg.Wait()
	if n := hv.count("DefineDomain"); n != 1 {
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
	hv := newFake(t)
	m, _, _ := newManager(t, hv)
	ctx := context.Background()
	if _, err := m.Provision(ctx, provReq("p", "vm1")); err != nil {
		t.Fatal(err)
	}
	op, err := m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s1"})
	if err != nil || op.Result.PowerMethod != api.NodePowerGraceful || hv.count("DestroyDomain") != 0 {
		t.Fatalf("graceful: %+v %v", op, err)
	}
	op, err = m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s2"})
	if err != nil || op.Result.PowerMethod != api.NodePowerAlready {
		t.Fatalf("already: %+v %v", op, err)
	}
	if _, err := m.Start(ctx, "vm1", api.NodeOpRequest{OpID: "st"}); err != nil {
		t.Fatal(err)
	}
	hv.acpiPoll = -1 // the guest ignores ACPI
	start := time.Now()
	op, err = m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s3", GraceSeconds: 60})
	if err != nil || op.Result.PowerMethod != api.NodePowerForced || hv.count("DestroyDomain") != 1 {
		t.Fatalf("forced: %+v %v", op, err)
	}
	if el := time.Since(start); el < 60*time.Millisecond { // 60 s at the fake clock's 1000×
		t.Fatalf("forced after %s, before the grace", el)
	}
}

func TestReinstallUndoBeforeSwap(t *testing.T) {
	hv := newFake(t)
	m, j, _ := newManager(t, hv)
	ctx := context.Background()
	if _, err := m.Provision(ctx, provReq("p", "vm1")); err != nil {
		t.Fatal(err)
	}
	before, _ := j.GetVM("vm1")
	hv.fail["DefineDomain"] = errors.New("boom")
	op, err := m.Reinstall(ctx, "vm1", api.NodeReinstallRequest{OpID: "r1", Template: "base"})
	if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrInternal {
		t.Fatalf("%+v %v", op, err)
	}
	after, _ := j.GetVM("vm1")
	if after.DiskVolume != before.DiskVolume || len(hv.vols) != 3 {
		t.Fatalf("not undone: %s → %s, volumes %v", before.DiskVolume, after.DiskVolume, hv.vols)
	}
	if st, _ := hv.DomainState(ctx, "vm1"); st != hypervisor.StateRunning {
		t.Fatalf("vm not restarted by the undo: %s", st)
	}
	// A fresh reinstall works and removes the old volumes.
	op, err = m.Reinstall(ctx, "vm1", api.NodeReinstallRequest{OpID: "r2", Template: "base"})
	if err != nil || op.Result.VM.DiskVolume == before.DiskVolume {
		t.Fatalf("%+v %v", op, err)
	}
	if _, ok := hv.vols[before.DiskVolume]; ok || len(hv.vols) != 3 {
		t.Fatalf("volumes after reinstall: %v", hv.vols)
	}
}

func TestRecoverMarksInterrupted(t *testing.T) {
	hv := newFake(t)
	m, j, _ := newManager(t, hv)
	ctx := context.Background()
	if _, err := m.Provision(ctx, provReq("p", "vm1")); err != nil {
		t.Fatal(err)
	}
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
	if hv.count("ShutdownDomain")+hv.count("DestroyDomain") != 0 {
		t.Fatal("recovery re-ran the stop")
	}
}
