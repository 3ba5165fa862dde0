// Package hypervisor drives libvirt for the agent: domains, storage volumes,
// snapshots and bulk stats, behind the small Hypervisor interface.
package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Hypervisor is everything the agent asks of libvirt. Names are validated by the
// caller; XML is built with libvirtxml. Lookups of missing objects return an error
// wrapping ErrNotFound; deletes of missing objects succeed.
type Hypervisor interface {
	// Storage pool and volumes.
	EnsurePool(ctx context.Context) error
	PoolPath() string
	PoolAvailable(ctx context.Context) (uint64, error)
	RefreshPool(ctx context.Context) error
	CreateOverlay(ctx context.Context, name, backingPath string, capacity uint64) (Volume, error)
	CreateVolumeFromBytes(ctx context.Context, name string, data []byte) (Volume, error)
	Volume(ctx context.Context, name string) (Volume, error)
	DeleteVolume(ctx context.Context, name string) error
	ListVolumes(ctx context.Context) ([]Volume, error)

	// Domains.
	DefineDomain(ctx context.Context, spec DomainSpec) (uuid string, err error)
	DomainState(ctx context.Context, name string) (State, error)
	DomainDisk(ctx context.Context, name string) (string, error) // path of vda
	DomainUUID(ctx context.Context, name string) (string, error)
	StartDomain(ctx context.Context, name string) error
	ShutdownDomain(ctx context.Context, name string) error // ACPI power button
	DestroyDomain(ctx context.Context, name string) error  // forced power off; nil if not running
	// RebootDomain asks the guest to reboot through the ACPI power button with
	// libvirt's guest-reboot semantics: once the guest has shut down, libvirt
	// resets it inside the same QEMU process. The returned watch says when the
	// domain resets; its Stop must be called.
	RebootDomain(ctx context.Context, name string) (*RebootWatch, error)
	// WatchReset opens the watch RebootDomain returns without asking for a
	// reboot: the rest of a reboot whose watch ended before the reset (its
	// libvirt connection was lost, the agent restarted) is watched on a new
	// one. It sees only a shutdown and reset after it opened.
	WatchReset(ctx context.Context, name string) (*RebootWatch, error)
	ResetDomain(ctx context.Context, name string) error    // hardware reset now; the QEMU process stays
	UndefineDomain(ctx context.Context, name string) error // with snapshot metadata and NVRAM; nil if missing
	ListDomains(ctx context.Context) ([]string, error)

	// Snapshots.
	CreateSnapshot(ctx context.Context, dom, name, description string) error
	ListSnapshots(ctx context.Context, dom string) ([]Snapshot, error)
	DeleteSnapshot(ctx context.Context, dom, name string, metadataOnly bool) error
	RevertSnapshot(ctx context.Context, dom, name string) error

	// Guest agent.
	SetUserPassword(ctx context.Context, dom, user, password string) error

	// Stats: one bulk call for every domain.
	AllDomainStats(ctx context.Context) ([]DomainStats, error)
}

// RebootWatch reports the reset of a domain asked to reboot (RebootDomain)
// through two signals, subscribed before the request, so that one not
// delivered does not make a reboot that happened look like none.
//
// Both count only a reset that follows the guest's shutdown after the
// request (QEMU's SHUTDOWN event, by QEMU's time not before the watch began).
// A guest still booting from the previous reboot or start resets itself in
// its firmware once or twice, 0.1–0.3 s after that reset; before, a reboot
// asked for then took those resets' late events for its own and said the
// guest had restarted on its request, which the firmware does not even hear.
// A guest that answers the power button by resetting itself without
// shutting down is not seen either: it is reset after the grace.
type RebootWatch struct {
	// Event is closed on libvirt's reboot event for the domain
	// (VIR_DOMAIN_EVENT_ID_REBOOT, emitted when QEMU reports a reset) after
	// the guest's shutdown.
	Event <-chan struct{}
	// Reset is closed on QEMU's own RESET event for the domain after its
	// SHUTDOWN event; libvirt relays both as QEMU monitor events beside the
	// reboot event. Nothing else shows libvirt's guest reboot: it keeps the
	// guest's shutdown out of the domain's state and sends no lifecycle
	// event for it (libvirt's qemuProcessHandleShutdown; none came in 22
	// reboots watched here).
	Reset <-chan struct{}
	// Lost is closed when the libvirt connection the watch is on ends first
	// (libvirtd restarted, the socket broke): neither signal can come any
	// more, and whether the guest reset meanwhile is not known
	// (ErrConnectionLost). A signal delivered before the connection ended is
	// closed before Lost. Nil: never.
	Lost <-chan struct{}
	// Stop ends the watch; it must be called, once.
	Stop func()
}

// State is a domain's power state.
type State string

// States as libvirt reports them.
const (
	StateNoState   State = "nostate"
	StateRunning   State = "running"
	StateBlocked   State = "blocked"
	StatePaused    State = "paused"
	StateShutdown  State = "shutdown" // shutting down
	StateShutoff   State = "shutoff"
	StateCrashed   State = "crashed"
	StateSuspended State = "pmsuspended"
	StateMissing   State = "missing" // not defined
)

// Active reports whether a domain in this state has a running QEMU process.
func (s State) Active() bool {
	return s != StateShutoff && s != StateMissing && s != StateCrashed && s != StateNoState
}

// Volume is a storage volume in the agent's pool.
type Volume struct {
	Name       string
	Path       string
	Capacity   uint64
	Allocation uint64
}

// Snapshot is one snapshot of a domain.
type Snapshot struct {
	Name         string
	Description  string
	CreatedAt    time.Time
	State        string
	Current      bool
	VMStateBytes uint64
}

// DomainStats is one domain's counters from the bulk stats call.
type DomainStats struct {
	Name           string
	State          State
	VCPUs          uint32
	CPUTimeNs      uint64
	MemoryBytes    uint64 // the memory the guest uses, at most its memory size; see MemorySource
	MemorySource   MemorySource
	DiskReadBytes  uint64
	DiskWriteBytes uint64
	NetRxBytes     uint64
	NetTxBytes     uint64
}

// MemorySource says where DomainStats.MemoryBytes comes from.
//
// MemoryBalloon: the guest's own figure, reported through the domain's virtio
// memballoon (DomainXML defines one, with statistics every BalloonStatsPeriod
// seconds): total minus available memory (balloon.available − balloon.usable,
// as free(1) counts "used": page cache the guest can drop is not counted), or
// total minus free (balloon.available − balloon.unused) when the guest's kernel
// gives no "available" figure; at most the domain's maximum memory.
//
// MemoryHost: no guest figure (a domain defined without a balloon, before this
// agent version, keeps its definition until redefined; a guest without the
// virtio_balloon driver; the first seconds after boot): the smaller of the QEMU
// process's resident memory (balloon.rss) and the guest's current memory
// (balloon.current), so never more than the domain's memory.
//
// The balloon device means the guest's memory can be shrunk from the host
// (virsh setmem): the agent never does so; an operator who does takes memory
// the customer pays for.
type MemorySource string

const (
	MemoryBalloon MemorySource = "balloon"
	MemoryHost    MemorySource = "host"
)

// BalloonStatsPeriod is how often, in seconds, a guest's balloon driver
// reports its memory figures.
const BalloonStatsPeriod = 5

// DomainSpec is what a VM's domain is defined from.
type DomainSpec struct {
	Name       string
	UUID       string // empty: libvirt assigns one
	Type       string // kvm or qemu
	Machine    string // e.g. pc
	Emulator   string
	VCPUs      uint32
	MemoryMiB  uint64
	Kernel     string // direct kernel boot when set
	Initrd     string
	Cmdline    string
	DiskPath   string // qcow2 root disk (vda)
	SeedPath   string // NoCloud ISO (read-only cdrom)
	MAC        string
	Network    string // user, network:NAME, bridge:NAME
	ConsoleLog string
	GuestAgent bool

	// Filter is the interface's nwfilter (TrafficFilter for a guest on a
	// bridge with assigned addresses); nil: none.
	Filter *InterfaceFilter
}

// Error kinds; match with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrNoSpace     = errors.New("not enough space in the storage pool")
	ErrBusy        = errors.New("locked by another job, try again shortly")
	ErrUnavailable = errors.New("libvirt is not reachable")
	ErrGuestAgent  = errors.New("the QEMU guest agent is not responding")
	ErrUnsupported = errors.New("not supported")
	ErrInvalid     = errors.New("invalid request")
	ErrHypervisor  = errors.New("hypervisor error (details in the agent log)")

	// ErrConnectionLost is a watch ended by the end of its libvirt
	// connection (RebootWatch.Lost); it is ErrUnavailable.
	ErrConnectionLost = fmt.Errorf("%w: the connection to libvirtd was lost", ErrUnavailable)
)

// Error is a libvirt failure translated for operators. Error() is safe to show;
// Detail keeps libvirt's own message for the log.
type Error struct {
	Op       string
	Resource string
	Kind     error
	Detail   string
	Code     uint32
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %s", e.Op, e.Resource, e.Kind) }

// Unwrap lets errors.Is match the kind.
func (e *Error) Unwrap() error { return e.Kind }

// DetectDomainType returns "kvm" when the CPU advertises vmx or svm and the KVM
// device opens read-write, "qemu" (TCG) otherwise. Nested setups that expose
// /dev/kvm without VMX/SVM (e.g. kvm_pvm) cannot boot stock kernels, hence both checks.
func DetectDomainType(cpuinfoPath, kvmPath string) string {
	b, err := os.ReadFile(cpuinfoPath)
	if err != nil {
		return "qemu"
	}
	hasVirt := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				hasVirt = true
			}
		}
		break
	}
	if !hasVirt {
		return "qemu"
	}
	f, err := os.OpenFile(kvmPath, os.O_RDWR, 0)
	if err != nil {
		return "qemu"
	}
	f.Close()
	return "kvm"
}
