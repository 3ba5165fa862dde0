package ops

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/agent/internal/seed"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

const gib = 1 << 30

// provisionInput is what the journal keeps of a provision: the resolved request with
// the root password replaced by its crypt hash.
type provisionInput struct {
	Name         string       `json:"name"`
	Template     string       `json:"template"`
	Plan         api.NodePlan `json:"plan"`
	MAC          string       `json:"mac"`
	Network      string       `json:"network"`
	Hostname     string       `json:"hostname"`
	PasswordHash string       `json:"password_hash,omitempty"`
	SSHKeys      []string     `json:"ssh_keys,omitempty"`
	IPv4         string       `json:"ipv4,omitempty"`
	Gateway4     string       `json:"gateway4,omitempty"`
	Bridge       string       `json:"bridge,omitempty"`
	IPv6         string       `json:"ipv6,omitempty"`
	Gateway6     string       `json:"gateway6,omitempty"`
	Resolvers    []string     `json:"resolvers,omitempty"`
}

// newVM is the journal record of a VM provisioned from in.
func (m *Manager) newVM(in provisionInput, diskVol, seedVol string, now time.Time) journal.VM {
	return journal.VM{Name: in.Name, Template: in.Template, Plan: in.Plan, MAC: in.MAC, Network: in.Network,
		Hostname: in.Hostname, DomainType: m.cfg.DomainType, DiskVolume: diskVol, SeedVolume: seedVol,
		ConsoleLog: m.consoleLog(in.Name), PasswordHash: in.PasswordHash, SSHKeys: in.SSHKeys, IPv4: in.IPv4,
		Gateway4: in.Gateway4, Bridge: in.Bridge, IPv6: in.IPv6, Gateway6: in.Gateway6, Resolvers: in.Resolvers,
		InstalledAt: now, CreatedAt: now}
}

func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// Provision defines and starts a VM: qcow2 overlay on the template, NoCloud seed,
// domain from the plan. Any failure undoes every step.
func (m *Manager) Provision(ctx context.Context, req api.NodeProvisionRequest) (*api.NodeOperation, error) {
	in, err := m.validateProvision(req)
	if err != nil {
		return nil, err
	}
	// The hash covers the caller's request (a generated MAC is not part of it); the
	// journal stores the resolved input with the password as a crypt hash only.
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpProvision, target: req.Name, lock: "vm/" + req.Name,
		input: req, stored: in,
		precheck: func(ctx context.Context) error {
			t, err := m.j.GetTemplate(in.Template)
			if err != nil {
				return apiErr(api.NodeErrNotFound, "provision %s: unknown template %s", in.Name, in.Template)
			}
			if in.Plan.DiskGiB*gib < t.SizeBytes {
				return apiErr(api.NodeErrInvalid, "provision %s: disk %d GiB is smaller than template %s (%d bytes)", in.Name, in.Plan.DiskGiB, t.Name, t.SizeBytes)
			}
			if _, err := m.j.GetVM(in.Name); err == nil {
				return apiErr(api.NodeErrAlreadyExists, "provision %s: a VM with this name already exists", in.Name)
			}
			st, err := m.hv.DomainState(ctx, in.Name)
			if err != nil {
				return err
			}
			if st != hypervisor.StateMissing {
				return apiErr(api.NodeErrAlreadyExists, "provision %s: a libvirt domain with this name already exists", in.Name)
			}
			return m.checkSpace(ctx, "provision "+in.Name)
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.provision(ctx, r, in, false)
		},
	})
}

func (m *Manager) validateProvision(req api.NodeProvisionRequest) (provisionInput, error) {
	in := provisionInput{Name: req.Name, Template: req.Template, Plan: req.Plan, Network: req.Network,
		Hostname: req.Hostname, IPv4: req.IPv4, Gateway4: req.Gateway4, IPv6: req.IPv6, Gateway6: req.Gateway6}
	if err := validate.OpID(req.OpID); err != nil {
		return in, err
	}
	if err := validate.Name("vm", req.Name); err != nil {
		return in, err
	}
	if err := validate.TemplateName(req.Template); err != nil {
		return in, err
	}
	if err := validate.Plan(m.cfg.Limits, req.Plan.VCPUs, req.Plan.MemoryMiB, req.Plan.DiskGiB); err != nil {
		return in, err
	}
	if req.MAC == "" {
		in.MAC = randomMAC()
	} else {
		mac, err := validate.MAC(req.MAC)
		if err != nil {
			return in, err
		}
		in.MAC = mac
	}
	if req.Bridge != "" {
		if err := m.checkBridge(req); err != nil {
			return in, err
		}
		in.Bridge = req.Bridge
		in.Network = "bridge:" + req.Bridge
	}
	if in.Network == "" {
		in.Network = m.cfg.Network
	}
	if err := validate.Network(in.Network); err != nil {
		return in, err
	}
	if in.Hostname == "" {
		in.Hostname = req.Name
	}
	if err := validate.Hostname(in.Hostname); err != nil {
		return in, err
	}
	if err := validate.IPv4CIDR(req.IPv4, req.Gateway4); err != nil {
		return in, err
	}
	if err := validate.IPv6CIDR(req.IPv6, req.Gateway6); err != nil {
		return in, err
	}
	rs, err := validate.Resolvers(req.Resolvers)
	if err != nil {
		return in, err
	}
	if len(rs) > 0 {
		in.Resolvers = rs
	}
	keys, err := validate.SSHKeys(req.SSHKeys)
	if err != nil {
		return in, err
	}
	in.SSHKeys = keys
	if req.RootPassword != "" {
		if err := validate.Password(req.RootPassword); err != nil {
			return in, err
		}
		h, err := seed.HashPassword(req.RootPassword)
		if err != nil {
			return in, err
		}
		in.PasswordHash = h
	}
	return in, nil
}

// checkBridge checks a provision's bridge: a valid name, one of the node's
// configured bridges, a network that does not name another one, and an
// address for the traffic filter (without any, the guest could send nothing).
func (m *Manager) checkBridge(req api.NodeProvisionRequest) error {
	if err := validate.Bridge(req.Bridge); err != nil {
		return err
	}
	if !slices.Contains(m.cfg.Bridges, req.Bridge) {
		return apiErr(api.NodeErrInvalid, "provision %s: bridge %s is not configured on this node (agent --bridge)", req.Name, req.Bridge)
	}
	if req.Network != "" && req.Network != "bridge:"+req.Bridge {
		return apiErr(api.NodeErrInvalid, "provision %s: network and bridge %s disagree; give one of them", req.Name, req.Bridge)
	}
	if req.IPv4 == "" && req.IPv6 == "" {
		return apiErr(api.NodeErrInvalid, "provision %s: a guest on bridge %s needs an ipv4 or ipv6 address for its traffic filter", req.Name, req.Bridge)
	}
	return nil
}

func (m *Manager) checkSpace(ctx context.Context, what string) error {
	avail, err := m.hv.PoolAvailable(ctx)
	if err != nil {
		return err
	}
	if avail < m.cfg.MinFreeBytes {
		return apiErr(api.NodeErrNoSpace, "%s: not enough space in the storage pool (%d bytes free, %d required)", what, avail, m.cfg.MinFreeBytes)
	}
	return nil
}

func (m *Manager) buildSeed(ctx context.Context, vol string, in provisionInput, instanceID string) (hypervisor.Volume, error) {
	iso, err := seed.Build(seed.Config{InstanceID: instanceID, Hostname: in.Hostname, PasswordHash: in.PasswordHash,
		SSHKeys: in.SSHKeys, MAC: in.MAC, IPv4CIDR: in.IPv4, Gateway4: in.Gateway4, IPv6CIDR: in.IPv6,
		Gateway6: in.Gateway6, Resolvers: in.Resolvers})
	if err != nil {
		return hypervisor.Volume{}, err
	}
	return m.hv.CreateVolumeFromBytes(ctx, vol, iso)
}

func (m *Manager) domainSpec(vm journal.VM, t journal.Template, diskPath, seedPath string) hypervisor.DomainSpec {
	return hypervisor.DomainSpec{
		Name: vm.Name, UUID: vm.UUID, Type: m.cfg.DomainType, Machine: m.cfg.Machine, Emulator: m.cfg.Emulator,
		VCPUs: vm.Plan.VCPUs, MemoryMiB: vm.Plan.MemoryMiB, Kernel: t.Kernel, Initrd: t.Initrd, Cmdline: t.Cmdline,
		DiskPath: diskPath, SeedPath: seedPath, MAC: vm.MAC, Network: vm.Network, ConsoleLog: vm.ConsoleLog,
		GuestAgent: t.GuestAgent, Filter: trafficFilter(vm),
	}
}

// trafficFilter is the nwfilter of a VM on a bridge of the node's
// configuration: its MAC and its addresses only (nil for other networks). The
// addresses were validated when the VM was provisioned.
func trafficFilter(vm journal.VM) *hypervisor.InterfaceFilter {
	if vm.Bridge == "" {
		return nil
	}
	var v4, v6 []netip.Addr
	if p, err := netip.ParsePrefix(vm.IPv4); err == nil {
		v4 = append(v4, p.Addr())
	}
	if p, err := netip.ParsePrefix(vm.IPv6); err == nil {
		v6 = append(v6, p.Addr())
	}
	return hypervisor.TrafficFilter(vm.MAC, v4, v6)
}

// provision creates everything; resume = true after a crash, when parts may exist.
func (m *Manager) provision(ctx context.Context, r *run, in provisionInput, resume bool) (res *api.NodeOpResult, err error) {
	u := &undo{log: r.log}
	defer func() {
		if err != nil {
			u.run(ctx)
		}
	}()
	t, err := m.j.GetTemplate(in.Template)
	if err != nil {
		return nil, apiErr(api.NodeErrNotFound, "provision %s: unknown template %s", in.Name, in.Template)
	}
	g := gen(r.rec.ID)
	diskVol, seedVol := diskVolName(in.Name, g), seedVolName(in.Name, g)
	now := m.clock.Now().UTC()
	vm := m.newVM(in, diskVol, seedVol, now)

	// Every step below registers its undo before the next one runs.
	u.add(func(context.Context) error { return removeIfExists(vm.ConsoleLog) })
	u.add(func(ctx context.Context) error { return m.hv.DeleteVolume(ctx, diskVol) })
	u.add(func(ctx context.Context) error { return m.hv.DeleteVolume(ctx, seedVol) })
	if resume {
		// A half-written volume from the crashed attempt is never reused.
		if err := m.hv.DeleteVolume(ctx, diskVol); err != nil {
			return nil, err
		}
		if err := m.hv.DeleteVolume(ctx, seedVol); err != nil {
			return nil, err
		}
	}
	disk, err := m.hv.CreateOverlay(ctx, diskVol, t.BasePath, in.Plan.DiskGiB*gib)
	if err != nil {
		return nil, err
	}
	if err := r.step("disk-created"); err != nil {
		return nil, err
	}
	sv, err := m.buildSeed(ctx, seedVol, in, in.Name+"-"+g)
	if err != nil {
		return nil, err
	}
	if err := r.step("seed-created"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(vm.ConsoleLog), 0o755); err != nil {
		return nil, fmt.Errorf("provision %s: console log dir: %w", in.Name, err)
	}
	u.add(func(ctx context.Context) error { return m.hv.UndefineDomain(ctx, in.Name) })
	uuid, err := m.hv.DefineDomain(ctx, m.domainSpec(vm, t, disk.Path, sv.Path))
	if err != nil {
		return nil, err
	}
	vm.UUID = uuid
	u.add(func(context.Context) error { return m.j.DeleteVM(in.Name) })
	if err := m.j.PutVM(vm); err != nil {
		return nil, fmt.Errorf("provision %s: registry: %w", in.Name, err)
	}
	if err := r.step("defined"); err != nil {
		return nil, err
	}
	u.add(func(ctx context.Context) error { return m.hv.DestroyDomain(ctx, in.Name) })
	if err := m.hv.StartDomain(ctx, in.Name); err != nil {
		return nil, err
	}
	v, err := m.startedView(ctx, r, vm)
	if err != nil {
		return nil, err
	}
	return &api.NodeOpResult{VM: &v}, nil
}

// VMs lists the agent's VMs with their current power state.
func (m *Manager) VMs(ctx context.Context) ([]api.NodeVM, error) {
	vms, err := m.j.VMs()
	if err != nil {
		return nil, err
	}
	out := make([]api.NodeVM, 0, len(vms))
	for _, v := range vms {
		view, err := m.vmView(ctx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, view)
	}
	return out, nil
}

// VMNames returns the names of the agent's VMs (registry only, no libvirt call).
func (m *Manager) VMNames() (map[string]bool, error) {
	vms, err := m.j.VMs()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(vms))
	for _, v := range vms {
		out[v.Name] = true
	}
	return out, nil
}

// VM returns one VM.
func (m *Manager) VM(ctx context.Context, name string) (api.NodeVM, error) {
	v, err := m.getVM(name)
	if err != nil {
		return api.NodeVM{}, err
	}
	return m.vmView(ctx, v)
}

func (m *Manager) getVM(name string) (journal.VM, error) {
	if err := validate.Name("vm", name); err != nil {
		return journal.VM{}, err
	}
	v, err := m.j.GetVM(name)
	if errors.Is(err, journal.ErrNotFound) {
		return journal.VM{}, apiErr(api.NodeErrNotFound, "vm %s not found", name)
	}
	return v, err
}

// startedView records the operation's step "started" (the VM runs) and
// returns the VM as it is now.
func (m *Manager) startedView(ctx context.Context, r *run, vm journal.VM) (api.NodeVM, error) {
	if err := r.step("started"); err != nil {
		return api.NodeVM{}, err
	}
	return m.vmView(ctx, vm)
}

func (m *Manager) vmView(ctx context.Context, v journal.VM) (api.NodeVM, error) {
	st, err := m.hv.DomainState(ctx, v.Name)
	if err != nil {
		return api.NodeVM{}, err
	}
	return api.NodeVM{Name: v.Name, UUID: v.UUID, State: string(st), Template: v.Template, Plan: v.Plan, MAC: v.MAC,
		Network: v.Network, Hostname: v.Hostname, DomainType: v.DomainType, DiskVolume: v.DiskVolume,
		SeedVolume: v.SeedVolume, ConsoleLog: v.ConsoleLog, InstalledAt: v.InstalledAt, CreatedAt: v.CreatedAt}, nil
}

// reinstallInput is the stored form of a reinstall.
type reinstallInput struct {
	Template     string   `json:"template"`
	PasswordHash string   `json:"password_hash,omitempty"`
	SSHKeys      []string `json:"ssh_keys,omitempty"`
}

// Reinstall replaces the root disk with a fresh overlay of a template, keeping the
// domain's name, UUID and MAC; snapshots of the old disk are removed.
func (m *Manager) Reinstall(ctx context.Context, name string, req api.NodeReinstallRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	if err := validate.TemplateName(req.Template); err != nil {
		return nil, err
	}
	keys, err := validate.SSHKeys(req.SSHKeys)
	if err != nil {
		return nil, err
	}
	in := reinstallInput{Template: req.Template, SSHKeys: keys}
	if req.RootPassword != "" {
		if err := validate.Password(req.RootPassword); err != nil {
			return nil, err
		}
		if in.PasswordHash, err = seed.HashPassword(req.RootPassword); err != nil {
			return nil, err
		}
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpReinstall, target: name, lock: "vm/" + name, input: req, stored: in,
		precheck: func(ctx context.Context) error {
			vm, err := m.getVM(name)
			if err != nil {
				return err
			}
			t, err := m.j.GetTemplate(req.Template)
			if err != nil {
				return apiErr(api.NodeErrNotFound, "reinstall %s: unknown template %s", name, req.Template)
			}
			if vm.Plan.DiskGiB*gib < t.SizeBytes {
				return apiErr(api.NodeErrInvalid, "reinstall %s: disk %d GiB is smaller than template %s", name, vm.Plan.DiskGiB, t.Name)
			}
			return m.checkSpace(ctx, "reinstall "+name)
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.reinstall(ctx, r, name, in)
		},
	})
}

// reinstall is idempotent so a crashed run can be resumed: until the domain points at
// the new disk everything is undoable; after that the old disk is only deleted.
func (m *Manager) reinstall(ctx context.Context, r *run, name string, in reinstallInput) (*api.NodeOpResult, error) {
	p, err := m.reinstallPlan(r, name, in)
	if err != nil {
		return nil, err
	}
	cur, err := m.hv.DomainDisk(ctx, name)
	if err != nil {
		return nil, err
	}
	var removed []string
	if cur != filepath.Join(m.hv.PoolPath(), p.newDisk) {
		if removed, err = m.swapDisk(ctx, r, p); err != nil {
			return nil, err
		}
	} else if s := r.rec.Notes["snapshots_removed"]; s != "" { // resumed after the swap
		removed = strings.Split(s, ",")
	}
	return m.finishReinstall(ctx, r, p, removed)
}

// reinstallPlan is what a reinstall run works with: the VM and template, the
// new volume names (derived from the operation id, so a resumed run finds
// them) and the old ones (noted on the first run).
type reinstallPlan struct {
	name             string
	in               reinstallInput
	vm               journal.VM
	t                journal.Template
	newDisk, newSeed string
	oldDisk, oldSeed string
}

func (m *Manager) reinstallPlan(r *run, name string, in reinstallInput) (*reinstallPlan, error) {
	vm, err := m.getVM(name)
	if err != nil {
		return nil, err
	}
	t, err := m.j.GetTemplate(in.Template)
	if err != nil {
		return nil, apiErr(api.NodeErrNotFound, "reinstall %s: unknown template %s", name, in.Template)
	}
	g := gen(r.rec.ID)
	p := &reinstallPlan{name: name, in: in, vm: vm, t: t, newDisk: diskVolName(name, g), newSeed: seedVolName(name, g)}
	if r.rec.Notes["old_disk"] == "" { // first run: remember what is being replaced
		if err := r.note("old_disk", vm.DiskVolume); err != nil {
			return nil, err
		}
		if err := r.note("old_seed", vm.SeedVolume); err != nil {
			return nil, err
		}
	}
	p.oldDisk, p.oldSeed = r.rec.Notes["old_disk"], r.rec.Notes["old_seed"]
	return p, nil
}

// swapDisk creates the new disk and seed, powers the domain off and redefines
// it on them (the commit point). A failure before the commit is undone: the new
// volumes go and a running domain is started again. It returns the snapshots
// whose metadata the rest of the reinstall drops.
func (m *Manager) swapDisk(ctx context.Context, r *run, p *reinstallPlan) ([]string, error) {
	name, vm := p.name, p.vm
	u := &undo{log: r.log}
	fail := func(e error) ([]string, error) { u.run(ctx); return nil, e }
	for _, v := range []string{p.newDisk, p.newSeed} { // leftovers of a crashed attempt
		if err := m.hv.DeleteVolume(ctx, v); err != nil {
			return nil, err
		}
	}
	u.add(func(ctx context.Context) error { return m.hv.DeleteVolume(ctx, p.newDisk) })
	disk, err := m.hv.CreateOverlay(ctx, p.newDisk, p.t.BasePath, vm.Plan.DiskGiB*gib)
	if err != nil {
		return fail(err)
	}
	u.add(func(ctx context.Context) error { return m.hv.DeleteVolume(ctx, p.newSeed) })
	pin := provisionInput{Name: name, Hostname: vm.Hostname, MAC: vm.MAC, PasswordHash: p.in.PasswordHash,
		SSHKeys: p.in.SSHKeys, IPv4: vm.IPv4, Gateway4: vm.Gateway4, IPv6: vm.IPv6, Gateway6: vm.Gateway6,
		Resolvers: vm.Resolvers}
	sv, err := m.buildSeed(ctx, p.newSeed, pin, name+"-"+gen(r.rec.ID))
	if err != nil {
		return fail(err)
	}
	if err := r.step("volumes-created"); err != nil {
		return fail(err)
	}
	st, err := m.hv.DomainState(ctx, name)
	if err != nil {
		return fail(err)
	}
	if st.Active() {
		u.add(func(ctx context.Context) error { return m.hv.StartDomain(ctx, name) })
		if err := m.hv.DestroyDomain(ctx, name); err != nil {
			return fail(err)
		}
	}
	// Snapshot metadata refers to the old disk; its data goes with that disk.
	snaps, err := m.hv.ListSnapshots(ctx, name)
	if err != nil {
		return fail(err)
	}
	var removed []string
	for _, s := range snaps {
		removed = append(removed, s.Name)
	}
	if err := r.note("snapshots_removed", strings.Join(removed, ",")); err != nil {
		return fail(err)
	}
	if _, err := m.hv.DefineDomain(ctx, m.domainSpec(vm, p.t, disk.Path, sv.Path)); err != nil {
		return fail(err)
	}
	// Committed: the domain boots from the new disk. No undo past this point.
	if err := r.step("disk-swapped"); err != nil {
		return nil, err
	}
	return removed, nil
}

// finishReinstall runs after the commit point and only moves forward: snapshot
// metadata and the old volumes go, the registry records the new disk, and the
// domain is started.
func (m *Manager) finishReinstall(ctx context.Context, r *run, p *reinstallPlan, removed []string) (*api.NodeOpResult, error) {
	name, vm := p.name, p.vm
	snaps, err := m.hv.ListSnapshots(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		if err := m.hv.DeleteSnapshot(ctx, name, s.Name, true); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return nil, err
		}
	}
	vm.Template, vm.DiskVolume, vm.SeedVolume = p.t.Name, p.newDisk, p.newSeed
	vm.PasswordHash, vm.SSHKeys, vm.InstalledAt = p.in.PasswordHash, p.in.SSHKeys, m.clock.Now().UTC()
	if err := m.j.PutVM(vm); err != nil {
		return nil, fmt.Errorf("reinstall %s: registry: %w", name, err)
	}
	for _, v := range []string{p.oldDisk, p.oldSeed} {
		if v != "" && v != p.newDisk && v != p.newSeed {
			if err := m.hv.DeleteVolume(ctx, v); err != nil {
				return nil, err
			}
		}
	}
	if err := r.step("old-removed"); err != nil {
		return nil, err
	}
	st, err := m.hv.DomainState(ctx, name)
	if err != nil {
		return nil, err
	}
	if !st.Active() {
		if err := m.hv.StartDomain(ctx, name); err != nil {
			return nil, err
		}
	}
	v, err := m.startedView(ctx, r, vm)
	if err != nil {
		return nil, err
	}
	msg := "reinstalled; no snapshots existed"
	if len(removed) > 0 {
		msg = fmt.Sprintf("reinstalled; removed %d snapshot(s) of the old disk: %s", len(removed), strings.Join(removed, ", "))
	}
	if removed == nil {
		removed = []string{}
	}
	return &api.NodeOpResult{VM: &v, SnapshotsRemoved: removed, Message: msg}, nil
}

// Terminate destroys a VM and deletes its disk and seed. Every step tolerates a
// previous partial run, so an interrupted terminate is simply resumed.
func (m *Manager) Terminate(ctx context.Context, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpTerminate, target: name, lock: "vm/" + name, input: req, stored: req,
		precheck: func(ctx context.Context) error { _, err := m.getVM(name); return err },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.terminate(ctx, r, name)
		},
	})
}

func (m *Manager) terminate(ctx context.Context, r *run, name string) (*api.NodeOpResult, error) {
	vm, err := m.j.GetVM(name)
	if errors.Is(err, journal.ErrNotFound) {
		vm = journal.VM{Name: name}
	} else if err != nil {
		return nil, err
	}
	if vm.DiskVolume != "" && r.rec.Notes["disk"] == "" {
		if err := r.note("disk", vm.DiskVolume); err != nil {
			return nil, err
		}
		if err := r.note("seed", vm.SeedVolume); err != nil {
			return nil, err
		}
	}
	if m.cfg.OnTerminate != nil {
		m.cfg.OnTerminate(name)
	}
	if err := m.hv.DestroyDomain(ctx, name); err != nil {
		return nil, err
	}
	if err := m.hv.UndefineDomain(ctx, name); err != nil {
		return nil, err
	}
	if err := r.step("undefined"); err != nil {
		return nil, err
	}
	for _, v := range []string{r.rec.Notes["disk"], r.rec.Notes["seed"]} {
		if v != "" {
			if err := m.hv.DeleteVolume(ctx, v); err != nil {
				return nil, err
			}
		}
	}
	if err := r.step("volumes-deleted"); err != nil {
		return nil, err
	}
	if err := removeIfExists(m.consoleLog(name)); err != nil {
		return nil, fmt.Errorf("terminate %s: console log: %w", name, err)
	}
	if err := m.j.DeleteVM(name); err != nil {
		return nil, err
	}
	return &api.NodeOpResult{Message: "terminated: domain undefined, disk and seed deleted"}, nil
}

// ResetPassword sets a user's password through the QEMU guest agent.
func (m *Manager) ResetPassword(ctx context.Context, name string, req api.NodePasswordResetRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	if req.User == "" {
		req.User = "root"
	}
	if err := validate.Name("user", req.User); err != nil {
		return nil, err
	}
	if err := validate.Password(req.Password); err != nil {
		return nil, err
	}
	stored := req
	stored.Password = "[redacted]"
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpPasswordReset, target: name, lock: "vm/" + name, input: req, stored: stored,
		precheck: func(ctx context.Context) error {
			vm, err := m.getVM(name)
			if err != nil {
				return err
			}
			t, err := m.j.GetTemplate(vm.Template)
			if err != nil || !t.GuestAgent {
				return apiErr(api.NodeErrUnsupported, "password reset %s: template %s has no QEMU guest agent; reinstall to set a new root password", name, vm.Template)
			}
			st, err := m.hv.DomainState(ctx, name)
			if err != nil {
				return err
			}
			if st != hypervisor.StateRunning {
				return apiErr(api.NodeErrConflict, "password reset %s: the VM must be running (it is %s)", name, st)
			}
			return nil
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			if err := m.hv.SetUserPassword(ctx, name, req.User, req.Password); err != nil {
				return nil, err
			}
			return &api.NodeOpResult{Message: "password of " + req.User + " changed through the guest agent"}, nil
		},
	})
}
