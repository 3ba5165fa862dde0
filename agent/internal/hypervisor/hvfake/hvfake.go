// Package hvfake is an in-memory hypervisor for tests of the agent's own logic
// (journal, undo, replay, timing, action handling). The libvirt implementation
// is tested against a real libvirtd.
package hvfake

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
)

var _ hypervisor.Hypervisor = (*HV)(nil)

// HV is an in-memory hypervisor.Hypervisor. The fields are for tests to set up
// and inspect; hold Mu while others may be calling.
type HV struct {
	Mu    sync.Mutex
	Pool  string
	Vols  map[string]hypervisor.Volume
	Doms  map[string]*Dom
	Fail  map[string]error // method → error to return once
	calls []string
	// ACPIPoll is how many state polls an ACPI shutdown takes; <0: the guest
	// ignores ACPI.
	ACPIPoll int
	// StartGate, if set, blocks StartDomain until it is closed.
	StartGate chan struct{}
	// Passwords records SetUserPassword calls as user:password.
	Passwords []string
}

// Dom is a domain of the fake.
type Dom struct {
	Spec  hypervisor.DomainSpec
	State hypervisor.State
	Snaps []string
	Boots int // guest resets by RebootDomain and ResetDomain (the process stays)
	// RebootPending is libvirt's fake-reboot flag: a reboot request
	// (RebootDomain) the guest has not acted on, which would turn its next
	// shutdown into a restart. A reset, an ACPI shutdown request, a
	// power-off or a start clears it.
	RebootPending bool
	pending       int // polls until ACPI shutdown completes
}

// New returns an empty fake whose pool is the directory pool; an ACPI
// shutdown completes after 2 polls.
func New(pool string) *HV {
	return &HV{Pool: pool, Vols: map[string]hypervisor.Volume{}, Doms: map[string]*Dom{}, Fail: map[string]error{}, ACPIPoll: 2}
}

func (f *HV) call(name string) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.calls = append(f.calls, name)
	if err, ok := f.Fail[name]; ok {
		delete(f.Fail, name)
		return err
	}
	return nil
}

// Count is how often a method was called.
func (f *HV) Count(name string) int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == name {
			n++
		}
	}
	return n
}

func (f *HV) EnsurePool(context.Context) error { return nil }
func (f *HV) PoolPath() string                 { return f.Pool }
func (f *HV) PoolAvailable(context.Context) (uint64, error) {
	return 100 << 30, f.call("PoolAvailable")
}
func (f *HV) RefreshPool(context.Context) error { return nil }
func (f *HV) CreateOverlay(_ context.Context, name, backing string, capacity uint64) (hypervisor.Volume, error) {
	if err := f.call("CreateOverlay"); err != nil {
		return hypervisor.Volume{}, err
	}
	return f.addVol(name, capacity)
}
func (f *HV) addVol(name string, capacity uint64) (hypervisor.Volume, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if _, ok := f.Vols[name]; ok {
		return hypervisor.Volume{}, &hypervisor.Error{Op: "create volume", Resource: name, Kind: hypervisor.ErrExists}
	}
	v := hypervisor.Volume{Name: name, Path: filepath.Join(f.Pool, name), Capacity: capacity}
	f.Vols[name] = v
	return v, nil
}
func (f *HV) CreateVolumeFromBytes(_ context.Context, name string, data []byte) (hypervisor.Volume, error) {
	if err := f.call("CreateVolumeFromBytes"); err != nil {
		return hypervisor.Volume{}, err
	}
	return f.addVol(name, uint64(len(data)))
}
func (f *HV) Volume(_ context.Context, name string) (hypervisor.Volume, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	v, ok := f.Vols[name]
	if !ok {
		return v, &hypervisor.Error{Op: "volume", Resource: name, Kind: hypervisor.ErrNotFound}
	}
	return v, nil
}
func (f *HV) DeleteVolume(_ context.Context, name string) error {
	return f.mutate("DeleteVolume", func() { delete(f.Vols, name) })
}
func (f *HV) ListVolumes(context.Context) ([]hypervisor.Volume, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []hypervisor.Volume
	for _, v := range f.Vols {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
func (f *HV) DefineDomain(_ context.Context, s hypervisor.DomainSpec) (string, error) {
	if err := f.call("DefineDomain"); err != nil {
		return "", err
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	d, ok := f.Doms[s.Name]
	if !ok {
		d = &Dom{State: hypervisor.StateShutoff}
		f.Doms[s.Name] = d
	}
	if s.UUID == "" {
		s.UUID = "00000000-0000-0000-0000-" + fmt.Sprintf("%012d", len(f.Doms))
	}
	d.Spec = s
	return s.UUID, nil
}
func (f *HV) dom(name string) (*Dom, error) {
	d, ok := f.Doms[name]
	if !ok {
		return nil, &hypervisor.Error{Op: "lookup", Resource: name, Kind: hypervisor.ErrNotFound}
	}
	return d, nil
}
func (f *HV) DomainState(_ context.Context, name string) (hypervisor.State, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return hypervisor.StateMissing, nil
	}
	if d.pending > 0 {
		d.pending--
		if d.pending == 0 {
			d.State = hypervisor.StateShutoff
		}
	}
	return d.State, nil
}

// onDom records the call op (none if op is empty) and, unless it is set to
// fail, runs fn on the domain name under Mu.
func (f *HV) onDom(op, name string, fn func(d *Dom) error) error {
	if op != "" {
		if err := f.call(op); err != nil {
			return err
		}
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	return fn(d)
}

// mutate records the call op and, unless it is set to fail, runs fn under Mu.
func (f *HV) mutate(op string, fn func()) error {
	if err := f.call(op); err != nil {
		return err
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	fn()
	return nil
}
func (f *HV) DomainDisk(_ context.Context, name string) (path string, err error) {
	err = f.onDom("", name, func(d *Dom) error { path = d.Spec.DiskPath; return nil })
	return path, err
}
func (f *HV) DomainUUID(_ context.Context, name string) (uuid string, err error) {
	err = f.onDom("", name, func(d *Dom) error { uuid = d.Spec.UUID; return nil })
	return uuid, err
}
func (f *HV) StartDomain(_ context.Context, name string) error {
	if err := f.call("StartDomain"); err != nil {
		return err
	}
	f.Mu.Lock()
	gate := f.StartGate
	f.Mu.Unlock()
	if gate != nil {
		<-gate
	}
	return f.onDom("", name, func(d *Dom) error {
		d.State, d.pending, d.RebootPending = hypervisor.StateRunning, 0, false
		return nil
	})
}
func (f *HV) ShutdownDomain(_ context.Context, name string) error {
	return f.onDom("ShutdownDomain", name, func(d *Dom) error {
		if f.ACPIPoll >= 0 {
			d.pending = f.ACPIPoll + 1
		}
		d.RebootPending = false
		return nil
	})
}

// RebootDomain resets a guest that honours ACPI (ACPIPoll >= 0) at once, and
// its watch shows both signals; a guest that ignores ACPI never resets.
func (f *HV) RebootDomain(_ context.Context, name string) (*hypervisor.RebootWatch, error) {
	reset := make(chan struct{})
	err := f.onDom("RebootDomain", name, func(d *Dom) error {
		if f.ACPIPoll >= 0 && d.State.Active() {
			d.Boots++
			close(reset)
		} else {
			d.RebootPending = d.State.Active()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &hypervisor.RebootWatch{Event: reset, Reset: reset, Stop: func() {}}, nil
}

// WatchReset opens a watch whose signals never come: the fake's guest
// resets only when RebootDomain asks it to, at once.
func (f *HV) WatchReset(_ context.Context, name string) (*hypervisor.RebootWatch, error) {
	err := f.onDom("WatchReset", name, func(*Dom) error { return nil })
	if err != nil {
		return nil, err
	}
	return &hypervisor.RebootWatch{Event: make(chan struct{}), Reset: make(chan struct{}), Stop: func() {}}, nil
}
func (f *HV) ResetDomain(_ context.Context, name string) error {
	return f.onDom("ResetDomain", name, func(d *Dom) error { d.Boots++; d.RebootPending = false; return nil })
}
func (f *HV) DestroyDomain(_ context.Context, name string) error {
	return f.mutate("DestroyDomain", func() {
		if d, ok := f.Doms[name]; ok {
			d.State, d.pending, d.RebootPending = hypervisor.StateShutoff, 0, false
		}
	})
}
func (f *HV) UndefineDomain(_ context.Context, name string) error {
	return f.mutate("UndefineDomain", func() { delete(f.Doms, name) })
}
func (f *HV) ListDomains(context.Context) ([]string, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var out []string
	for n := range f.Doms {
		out = append(out, n)
	}
	return out, nil
}
func (f *HV) CreateSnapshot(_ context.Context, dom, name, _ string) error {
	return f.onDom("", dom, func(d *Dom) error { d.Snaps = append(d.Snaps, name); return nil })
}
func (f *HV) ListSnapshots(_ context.Context, dom string) ([]hypervisor.Snapshot, error) {
	var out []hypervisor.Snapshot
	err := f.onDom("", dom, func(d *Dom) error {
		for _, s := range d.Snaps {
			out = append(out, hypervisor.Snapshot{Name: s, State: "running"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
func (f *HV) DeleteSnapshot(_ context.Context, dom, name string, _ bool) error {
	return f.onDom("", dom, func(d *Dom) error {
		for i, s := range d.Snaps {
			if s == name {
				d.Snaps = append(d.Snaps[:i], d.Snaps[i+1:]...)
				return nil
			}
		}
		return &hypervisor.Error{Op: "snapshot delete", Resource: name, Kind: hypervisor.ErrNotFound}
	})
}
func (f *HV) RevertSnapshot(context.Context, string, string) error { return nil }
func (f *HV) SetUserPassword(_ context.Context, _ string, user, password string) error {
	return f.mutate("SetUserPassword", func() { f.Passwords = append(f.Passwords, user+":"+password) })
}
func (f *HV) AllDomainStats(context.Context) ([]hypervisor.DomainStats, error) { return nil, nil }
