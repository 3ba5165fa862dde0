package actions

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
)

// fakeHV is a tiny in-memory hypervisor: enough for the ops manager to run
// every action for real (journal, replay, undo) without libvirt.
type fakeHV struct {
	mu    sync.Mutex
	pool  string
	vols  map[string]hypervisor.Volume
	doms  map[string]*fakeDom
	calls map[string]int
	// startGate, if set, blocks StartDomain until it is closed.
	startGate chan struct{}
	passwords []string // SetUserPassword calls: user:password
}

type fakeDom struct {
	spec  hypervisor.DomainSpec
	state hypervisor.State
	snaps []string
}

func newFakeHV(t *testing.T) *fakeHV {
	return &fakeHV{pool: t.TempDir(), vols: map[string]hypervisor.Volume{}, doms: map[string]*fakeDom{}, calls: map[string]int{}}
}

func (f *fakeHV) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeHV) call(name string) {
	f.mu.Lock()
	f.calls[name]++
	f.mu.Unlock()
}

func notFound(op, name string) error {
	return &hypervisor.Error{Op: op, Resource: name, Kind: hypervisor.ErrNotFound}
}

func (f *fakeHV) EnsurePool(context.Context) error                     { return nil }
func (f *fakeHV) PoolPath() string                                     { return f.pool }
func (f *fakeHV) PoolAvailable(context.Context) (uint64, error)        { return 100 << 30, nil }
func (f *fakeHV) RefreshPool(context.Context) error                    { return nil }
func (f *fakeHV) RevertSnapshot(context.Context, string, string) error { return nil }
func (f *fakeHV) AllDomainStats(context.Context) ([]hypervisor.DomainStats, error) {
	return nil, nil
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
func (f *fakeHV) CreateOverlay(_ context.Context, name, _ string, capacity uint64) (hypervisor.Volume, error) {
	f.call("CreateOverlay")
	return f.addVol(name, capacity)
}
func (f *fakeHV) CreateVolumeFromBytes(_ context.Context, name string, data []byte) (hypervisor.Volume, error) {
	return f.addVol(name, uint64(len(data)))
}
func (f *fakeHV) Volume(_ context.Context, name string) (hypervisor.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vols[name]
	if !ok {
		return v, notFound("volume", name)
	}
	return v, nil
}
func (f *fakeHV) DeleteVolume(_ context.Context, name string) error {
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
	return out, nil
}
func (f *fakeHV) DefineDomain(_ context.Context, s hypervisor.DomainSpec) (string, error) {
	f.call("DefineDomain")
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.doms[s.Name]
	if !ok {
		d = &fakeDom{state: hypervisor.StateShutoff}
		f.doms[s.Name] = d
	}
	if s.UUID == "" {
		s.UUID = fmt.Sprintf("00000000-0000-0000-0000-%012d", len(f.doms))
	}
	d.spec = s
	return s.UUID, nil
}
func (f *fakeHV) withDom(name string, fn func(d *fakeDom) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.doms[name]
	if !ok {
		return notFound("lookup", name)
	}
	return fn(d)
}
func (f *fakeHV) DomainState(_ context.Context, name string) (hypervisor.State, error) {
	st := hypervisor.StateMissing
	_ = f.withDom(name, func(d *fakeDom) error { st = d.state; return nil })
	return st, nil
}
func (f *fakeHV) DomainDisk(_ context.Context, name string) (p string, err error) {
	err = f.withDom(name, func(d *fakeDom) error { p = d.spec.DiskPath; return nil })
	return p, err
}
func (f *fakeHV) DomainUUID(_ context.Context, name string) (u string, err error) {
	err = f.withDom(name, func(d *fakeDom) error { u = d.spec.UUID; return nil })
	return u, err
}
func (f *fakeHV) StartDomain(_ context.Context, name string) error {
	f.call("StartDomain")
	f.mu.Lock()
	gate := f.startGate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return f.withDom(name, func(d *fakeDom) error { d.state = hypervisor.StateRunning; return nil })
}
func (f *fakeHV) ShutdownDomain(_ context.Context, name string) error {
	return f.withDom(name, func(d *fakeDom) error { d.state = hypervisor.StateShutoff; return nil })
}
func (f *fakeHV) DestroyDomain(_ context.Context, name string) error {
	_ = f.withDom(name, func(d *fakeDom) error { d.state = hypervisor.StateShutoff; return nil })
	return nil
}
func (f *fakeHV) UndefineDomain(_ context.Context, name string) error {
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
	return f.withDom(dom, func(d *fakeDom) error { d.snaps = append(d.snaps, name); return nil })
}
func (f *fakeHV) ListSnapshots(_ context.Context, dom string) (out []hypervisor.Snapshot, err error) {
	err = f.withDom(dom, func(d *fakeDom) error {
		for _, s := range d.snaps {
			out = append(out, hypervisor.Snapshot{Name: s, State: "running"})
		}
		return nil
	})
	return out, err
}
func (f *fakeHV) DeleteSnapshot(_ context.Context, dom, name string, _ bool) error {
	return f.withDom(dom, func(d *fakeDom) error {
		for i, s := range d.snaps {
			if s == name {
				d.snaps = append(d.snaps[:i], d.snaps[i+1:]...)
				return nil
			}
		}
		return notFound("snapshot", name)
	})
}
func (f *fakeHV) SetUserPassword(_ context.Context, _ string, user, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords = append(f.passwords, user+":"+password)
	return nil
}
