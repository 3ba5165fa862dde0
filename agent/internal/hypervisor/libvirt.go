package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"libvirt.org/go/libvirtxml"
)

// LibvirtConfig configures the libvirt implementation.
type LibvirtConfig struct {
	Socket   string // libvirtd's unix socket
	PoolName string // dedicated dir pool
	PoolPath string
	Log      *slog.Logger
}

// Libvirt implements Hypervisor over go-libvirt.
type Libvirt struct {
	cfg    LibvirtConfig
	log    *slog.Logger
	mu     sync.Mutex
	lv     *libvirt.Libvirt
	closed bool // Close was called: no new connection
	pool   libvirt.StoragePool

	// The reboot watches (watchReset) and the subscriptions relayed to
	// them: the connection's one subscription to libvirt's reboot events,
	// and one to each watched domain's QEMU events.
	rebootMu      sync.Mutex
	rebootConn    *libvirt.Libvirt // the connection subscribed to reboot events; nil: none
	qemuSubs      map[qemuSubKey]*qemuSub
	rebootWatches map[*rebootWatch]bool
}

// NewLibvirt connects to libvirtd. Close it when done.
func NewLibvirt(ctx context.Context, cfg LibvirtConfig) (*Libvirt, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Libvirt{cfg: cfg, log: cfg.Log}
	if _, err := l.conn(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Conn returns the underlying go-libvirt connection (benchmarks compare against it).
func (l *Libvirt) Conn(ctx context.Context) (*libvirt.Libvirt, error) { return l.conn(ctx) }

func (l *Libvirt) conn(ctx context.Context) (*libvirt.Libvirt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lv != nil && l.lv.IsConnected() {
		return l.lv, nil
	}
	if l.closed {
		// An operation still running when the agent stops (a reboot
		// watching on after its connection ended) gets no new one.
		return nil, &Error{Op: "connect", Resource: l.cfg.Socket, Kind: ErrUnavailable, Detail: "the agent's libvirt client is closed"}
	}
	lv := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(l.cfg.Socket), dialers.WithLocalTimeout(5*time.Second)))
	if err := lv.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return nil, &Error{Op: "connect", Resource: l.cfg.Socket, Kind: ErrUnavailable, Detail: err.Error()}
	}
	l.lv = lv
	return lv, nil
}

// Close disconnects; no call connects again.
func (l *Libvirt) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.lv == nil {
		return nil
	}
	err := l.lv.Disconnect()
	l.lv = nil
	return err
}

// translate maps a libvirt error to an operator message; the detail is logged.
func (l *Libvirt) translate(op, res string, err error) error {
	if err == nil {
		return nil
	}
	var herr *Error
	if errors.As(err, &herr) {
		return err
	}
	e := Translate(op, res, err)
	level := slog.LevelWarn
	if errors.Is(e, ErrNotFound) {
		level = slog.LevelDebug // callers often probe for absence
	}
	l.log.Log(context.Background(), level, "libvirt call failed", "op", op, "resource", res, "code", e.(*Error).Code, "detail", e.(*Error).Detail)
	return e
}

// Translate turns a go-libvirt error into an *Error with an operator-facing kind.
func Translate(op, res string, err error) error {
	e := &Error{Op: op, Resource: res, Kind: ErrHypervisor, Detail: err.Error()}
	var le libvirt.Error
	if errors.As(err, &le) {
		e.Code = le.Code
	}
	msg := strings.ToLower(e.Detail)
	switch libvirt.ErrorNumber(e.Code) {
	case libvirt.ErrNoDomain, libvirt.ErrNoStorageVol, libvirt.ErrNoStoragePool, libvirt.ErrNoDomainSnapshot, libvirt.ErrNoNetwork:
		e.Kind = ErrNotFound
	case libvirt.ErrDomExist, libvirt.ErrStorageVolExist, libvirt.ErrNetworkExist:
		e.Kind = ErrExists
	case libvirt.ErrOperationTimeout, libvirt.ErrResourceBusy:
		e.Kind = ErrBusy
	case libvirt.ErrAgentUnresponsive, libvirt.ErrAgentUnsynced:
		e.Kind = ErrGuestAgent
	case libvirt.ErrOperationUnsupported, libvirt.ErrArgumentUnsupported, libvirt.ErrNoSupport:
		e.Kind = ErrUnsupported
	case libvirt.ErrXMLError, libvirt.ErrXMLDetail, libvirt.ErrInvalidArg, libvirt.ErrConfigUnsupported:
		e.Kind = ErrInvalid
	}
	switch {
	case strings.Contains(msg, "no space left") || strings.Contains(msg, "not enough space") || strings.Contains(msg, "disk quota"):
		e.Kind = ErrNoSpace
	case strings.Contains(msg, "already exists"):
		e.Kind = ErrExists
	case strings.Contains(msg, "cannot acquire state change lock") || strings.Contains(msg, "another job"):
		e.Kind = ErrBusy
	case strings.Contains(msg, "guest agent is not connected") || strings.Contains(msg, "guest agent not available"):
		e.Kind = ErrGuestAgent
	case errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset"),
		// The connection ended during the call (go-libvirt's
		// ErrInterrupted), or before it (its socket answers EINVAL).
		errors.Is(err, libvirt.ErrInterrupted) || errors.Is(err, syscall.EINVAL):
		e.Kind = ErrUnavailable
	}
	return e
}

// ---- storage ----

// PoolPath is the pool's directory.
func (l *Libvirt) PoolPath() string { return l.cfg.PoolPath }

// EnsurePool defines, builds and starts the agent's dir pool when needed.
func (l *Libvirt) EnsurePool(ctx context.Context) error {
	lv, err := l.conn(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.cfg.PoolPath, 0o711); err != nil {
		return fmt.Errorf("ensure pool %s: %w", l.cfg.PoolName, err)
	}
	pool, err := lv.StoragePoolLookupByName(l.cfg.PoolName)
	if err != nil {
		if !isNotFound(err) {
			return l.translate("ensure pool", l.cfg.PoolName, err)
		}
		x, merr := (&libvirtxml.StoragePool{Type: "dir", Name: l.cfg.PoolName, Target: &libvirtxml.StoragePoolTarget{Path: l.cfg.PoolPath}}).Marshal()
		if merr != nil {
			return fmt.Errorf("ensure pool %s: %w", l.cfg.PoolName, merr)
		}
		pool, err = lv.StoragePoolDefineXML(x, 0)
		if err != nil {
			return l.translate("define pool", l.cfg.PoolName, err)
		}
	}
	// A pool of this name pointing elsewhere would put volumes where nobody expects them.
	if x, err := lv.StoragePoolGetXMLDesc(pool, 0); err == nil {
		var px libvirtxml.StoragePool
		if err := px.Unmarshal(x); err == nil {
			path := ""
			if px.Target != nil {
				path = filepath.Clean(px.Target.Path)
			}
			if px.Type != "dir" || path != filepath.Clean(l.cfg.PoolPath) {
				return fmt.Errorf("ensure pool %s: it exists as a %s pool at %q, not a dir pool at %q: another data directory's pool? "+
					"Give this agent its own --pool-name, or, if nothing uses that pool: virsh pool-destroy %s; virsh pool-undefine %s",
					l.cfg.PoolName, px.Type, path, l.cfg.PoolPath, l.cfg.PoolName, l.cfg.PoolName)
			}
		}
	}
	state, _, _, _, err := lv.StoragePoolGetInfo(pool)
	if err != nil {
		return l.translate("ensure pool", l.cfg.PoolName, err)
	}
	if libvirt.StoragePoolState(state) != libvirt.StoragePoolRunning {
		if err := lv.StoragePoolCreate(pool, 0); err != nil {
			return l.translate("start pool", l.cfg.PoolName, err)
		}
	}
	_ = lv.StoragePoolSetAutostart(pool, 1)
	l.mu.Lock()
	l.pool = pool
	l.mu.Unlock()
	return nil
}

// RemovePool stops and undefines the pool (tests).
func (l *Libvirt) RemovePool(ctx context.Context) error {
	lv, err := l.conn(ctx)
	if err != nil {
		return err
	}
	pool, err := lv.StoragePoolLookupByName(l.cfg.PoolName)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return l.translate("remove pool", l.cfg.PoolName, err)
	}
	_ = lv.StoragePoolDestroy(pool)
	if err := lv.StoragePoolUndefine(pool); err != nil && !isNotFound(err) {
		return l.translate("remove pool", l.cfg.PoolName, err)
	}
	return nil
}

func (l *Libvirt) poolRef() libvirt.StoragePool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pool
}

// PoolAvailable returns the pool's free bytes.
func (l *Libvirt) PoolAvailable(ctx context.Context) (uint64, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return 0, err
	}
	_, _, _, avail, err := lv.StoragePoolGetInfo(l.poolRef())
	if err != nil {
		return 0, l.translate("pool info", l.cfg.PoolName, err)
	}
	return avail, nil
}

// RefreshPool rescans the pool directory (after files were placed in it directly).
func (l *Libvirt) RefreshPool(ctx context.Context) error {
	lv, err := l.conn(ctx)
	if err != nil {
		return err
	}
	return l.translate("refresh pool", l.cfg.PoolName, lv.StoragePoolRefresh(l.poolRef(), 0))
}

func (l *Libvirt) volInfo(lv *libvirt.Libvirt, v libvirt.StorageVol) (Volume, error) {
	_, capacity, alloc, err := lv.StorageVolGetInfo(v)
	if err != nil {
		return Volume{}, l.translate("volume info", v.Name, err)
	}
	path, err := lv.StorageVolGetPath(v)
	if err != nil {
		return Volume{}, l.translate("volume path", v.Name, err)
	}
	return Volume{Name: v.Name, Path: path, Capacity: capacity, Allocation: alloc}, nil
}

// CreateOverlay creates a qcow2 volume backed by backingPath (qcow2), so it costs
// the same whatever the template's size.
func (l *Libvirt) CreateOverlay(ctx context.Context, name, backingPath string, capacity uint64) (Volume, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return Volume{}, err
	}
	sv := &libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{
			Path: backingPath, Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"},
		},
	}
	v, err := l.createVol(lv, "create overlay", sv)
	if err != nil {
		return Volume{}, err
	}
	return l.volInfo(lv, v)
}

// createVol creates the volume sv in the pool; what names the operation in a
// marshalling error.
func (l *Libvirt) createVol(lv *libvirt.Libvirt, what string, sv *libvirtxml.StorageVolume) (libvirt.StorageVol, error) {
	x, err := sv.Marshal()
	if err != nil {
		return libvirt.StorageVol{}, fmt.Errorf("%s %s: %w", what, sv.Name, err)
	}
	v, err := lv.StorageVolCreateXML(l.poolRef(), x, 0)
	if err != nil {
		return libvirt.StorageVol{}, l.translate("create volume", sv.Name, err)
	}
	return v, nil
}

// CreateVolumeFromBytes creates a raw volume holding data (the seed ISO).
func (l *Libvirt) CreateVolumeFromBytes(ctx context.Context, name string, data []byte) (Volume, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return Volume{}, err
	}
	sv := &libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(len(data))},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}},
	}
	v, err := l.createVol(lv, "create volume", sv)
	if err != nil {
		return Volume{}, err
	}
	if err := lv.StorageVolUpload(v, strings.NewReader(string(data)), 0, uint64(len(data)), 0); err != nil {
		_ = lv.StorageVolDelete(v, 0)
		return Volume{}, l.translate("upload volume", name, err)
	}
	return l.volInfo(lv, v)
}

// Volume looks up a volume by name.
func (l *Libvirt) Volume(ctx context.Context, name string) (Volume, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return Volume{}, err
	}
	v, err := lv.StorageVolLookupByName(l.poolRef(), name)
	if err != nil {
		return Volume{}, l.translate("volume", name, err)
	}
	return l.volInfo(lv, v)
}

// DeleteVolume deletes a volume; a missing volume is not an error.
func (l *Libvirt) DeleteVolume(ctx context.Context, name string) error {
	lv, err := l.conn(ctx)
	if err != nil {
		return err
	}
	v, err := lv.StorageVolLookupByName(l.poolRef(), name)
	if err != nil {
		if isNotFound(err) {
			// The file may exist without libvirt knowing it (placed directly, no refresh yet).
			if rerr := os.Remove(filepath.Join(l.cfg.PoolPath, name)); rerr != nil && !os.IsNotExist(rerr) {
				return fmt.Errorf("delete volume %s: %w", name, rerr)
			}
			return nil
		}
		return l.translate("delete volume", name, err)
	}
	if err := lv.StorageVolDelete(v, 0); err != nil && !isNotFound(err) {
		return l.translate("delete volume", name, err)
	}
	return nil
}

// ListVolumes lists the pool's volumes.
func (l *Libvirt) ListVolumes(ctx context.Context) ([]Volume, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return nil, err
	}
	if err := lv.StoragePoolRefresh(l.poolRef(), 0); err != nil {
		return nil, l.translate("refresh pool", l.cfg.PoolName, err)
	}
	vols, _, err := lv.StoragePoolListAllVolumes(l.poolRef(), 1, 0)
	if err != nil {
		return nil, l.translate("list volumes", l.cfg.PoolName, err)
	}
	out := make([]Volume, 0, len(vols))
	for _, v := range vols {
		vi, err := l.volInfo(lv, v)
		if err != nil {
			continue
		}
		out = append(out, vi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ---- domains ----

// DefineDomain defines (or redefines, keeping the UUID) a persistent domain.
func (l *Libvirt) DefineDomain(ctx context.Context, spec DomainSpec) (string, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return "", err
	}
	x, err := DomainXML(spec)
	if err != nil {
		return "", err
	}
	d, err := lv.DomainDefineXMLFlags(x, libvirt.DomainDefineValidate)
	if err != nil {
		return "", l.translate("define domain", spec.Name, err)
	}
	return uuidString(d.UUID), nil
}

func uuidString(u libvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func (l *Libvirt) lookup(ctx context.Context, op, name string) (*libvirt.Libvirt, libvirt.Domain, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return nil, libvirt.Domain{}, err
	}
	d, err := lv.DomainLookupByName(name)
	if err != nil {
		return nil, libvirt.Domain{}, l.translate(op, name, err)
	}
	return lv, d, nil
}

var stateNames = map[libvirt.DomainState]State{
	libvirt.DomainNostate: StateNoState, libvirt.DomainRunning: StateRunning, libvirt.DomainBlocked: StateBlocked,
	libvirt.DomainPaused: StatePaused, libvirt.DomainShutdown: StateShutdown, libvirt.DomainShutoff: StateShutoff,
	libvirt.DomainCrashed: StateCrashed, libvirt.DomainPmsuspended: StateSuspended,
}

// DomainState returns the power state, StateMissing when the domain is not defined.
func (l *Libvirt) DomainState(ctx context.Context, name string) (State, error) {
	lv, d, err := l.lookup(ctx, "domain state", name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return StateMissing, nil
		}
		return "", err
	}
	st, _, err := lv.DomainGetState(d, 0)
	if err != nil {
		if isNotFound(err) {
			return StateMissing, nil
		}
		return "", l.translate("domain state", name, err)
	}
	return stateNames[libvirt.DomainState(st)], nil
}

// DomainDisk returns the path of the domain's root disk (vda) from its persistent XML.
func (l *Libvirt) DomainDisk(ctx context.Context, name string) (string, error) {
	lv, d, err := l.lookup(ctx, "domain disk", name)
	if err != nil {
		return "", err
	}
	x, err := lv.DomainGetXMLDesc(d, libvirt.DomainXMLInactive)
	if err != nil {
		return "", l.translate("domain disk", name, err)
	}
	return ParseDomainDisk(x)
}

// DomainUUID returns a domain's UUID.
func (l *Libvirt) DomainUUID(ctx context.Context, name string) (string, error) {
	_, d, err := l.lookup(ctx, "domain uuid", name)
	if err != nil {
		return "", err
	}
	return uuidString(d.UUID), nil
}

// StartDomain starts a defined domain.
func (l *Libvirt) StartDomain(ctx context.Context, name string) error {
	lv, d, err := l.lookup(ctx, "start", name)
	if err != nil {
		return err
	}
	return l.translate("start", name, lv.DomainCreate(d))
}

// ShutdownDomain presses the ACPI power button.
func (l *Libvirt) ShutdownDomain(ctx context.Context, name string) error {
	lv, d, err := l.lookup(ctx, "shutdown", name)
	if err != nil {
		return err
	}
	return l.translate("shutdown", name, lv.DomainShutdownFlags(d, libvirt.DomainShutdownAcpiPowerBtn))
}

// RebootDomain presses the ACPI power button with libvirt's reboot semantics
// (virDomainReboot with VIR_DOMAIN_REBOOT_ACPI_POWER_BTN): when the guest has
// shut down, libvirt issues a system reset to the same QEMU process instead of
// letting it exit. The watch (watchReset) is subscribed before the request,
// so a fast guest cannot reset unseen, and it counts only a reset that
// follows the guest's shutdown after the request (RebootWatch).
func (l *Libvirt) RebootDomain(ctx context.Context, name string) (*RebootWatch, error) {
	lv, d, err := l.lookup(ctx, "reboot", name)
	if err != nil {
		return nil, err
	}
	w, err := l.watchReset(lv, d)
	if err != nil {
		return nil, err
	}
	if err := lv.DomainReboot(d, libvirt.DomainRebootAcpiPowerBtn); err != nil {
		w.Stop()
		return nil, l.translate("reboot", name, err)
	}
	return w, nil
}

// WatchReset opens domain name's reboot watch without asking for a reboot
// (Hypervisor.WatchReset): RebootDomain's first half.
func (l *Libvirt) WatchReset(ctx context.Context, name string) (*RebootWatch, error) {
	lv, d, err := l.lookup(ctx, "reboot", name)
	if err != nil {
		return nil, err
	}
	return l.watchReset(lv, d)
}

// rebootWatch is one reboot watch's state, guarded by Libvirt.rebootMu and
// updated by the connection's two relays: relayRebootEvents (libvirt's
// reboot events) and relayQEMUEvents (QEMU's events of the domain).
type rebootWatch struct {
	uuid  libvirt.UUID     // the domain
	lv    *libvirt.Libvirt // the connection the watch is on
	since time.Time        // just before the request: the guest's shutdown comes after it
	// shutdownAt is QEMU's time of the guest's shutdown (its SHUTDOWN
	// event, not before since); zero until then. Only a reset after it is
	// this reboot's: a guest still booting from the previous reboot or
	// start resets itself in its firmware once or twice, and those resets'
	// events come after a reboot asked for at once has begun its watch.
	shutdownAt time.Time
	// eventAt is when a libvirt reboot event came while shutdownAt was not
	// known yet (zero: none). The two come through different relays, so
	// libvirt's event of the reset after the shutdown can be relayed before
	// QEMU's SHUTDOWN; one that came after the shutdown happened counts once
	// the shutdown is known.
	eventAt              time.Time
	event, reset, lost   chan struct{}
	eventSeen, resetSeen bool
	// relays is how many of the watch's two relays still run; Lost is
	// closed when none does (the connection ended), so that a signal
	// either had in hand is delivered first.
	relays int
}

// qemuSubKey names a connection's subscription to one domain's QEMU events.
type qemuSubKey struct {
	lv   *libvirt.Libvirt
	uuid libvirt.UUID
}

// qemuSub is a subscription to one domain's QEMU events; cancel ends it.
type qemuSub struct{ cancel context.CancelFunc }

// watchReset subscribes to the two signals of domain d's reset (RebootWatch)
// on the connection lv: libvirt's reboot events (one subscription per
// connection, watchRebootEvents) and QEMU's events of d (one subscription per
// connection and domain, watchQEMUEvents), and registers a watch of d's next
// shutdown and reset. When the connection ends, both subscriptions end
// (go-libvirt closes every event stream of a lost connection) and the watch's
// Lost is closed, after any signal delivered before: a reboot in flight does
// not wait for signals that can no longer come.
func (l *Libvirt) watchReset(lv *libvirt.Libvirt, d libvirt.Domain) (*RebootWatch, error) {
	l.rebootMu.Lock()
	defer l.rebootMu.Unlock()
	if err := l.watchRebootEvents(lv, d.Name); err != nil {
		return nil, err
	}
	if err := l.watchQEMUEvents(lv, d); err != nil {
		return nil, err
	}
	w := &rebootWatch{uuid: d.UUID, lv: lv, since: time.Now(), relays: 2,
		event: make(chan struct{}), reset: make(chan struct{}), lost: make(chan struct{})}
	if l.rebootWatches == nil {
		l.rebootWatches = map[*rebootWatch]bool{}
	}
	l.rebootWatches[w] = true
	return &RebootWatch{Event: w.event, Reset: w.reset, Lost: w.lost, Stop: func() {
		l.rebootMu.Lock()
		delete(l.rebootWatches, w)
		l.rebootMu.Unlock()
	}}, nil
}

// watchRebootEvents makes sure that the connection lv's libvirt reboot events
// are relayed to the watches (relayRebootEvents). libvirtd takes one
// subscription to the reboot events of every domain per connection and
// refuses a second while it is open ("event callback already tracked"; the
// library has no per-domain subscription), so two VMs rebooting at once
// share this one: made on lv at the first watch, kept while lv is connected,
// made again on the next connection. Called with rebootMu held.
func (l *Libvirt) watchRebootEvents(lv *libvirt.Libvirt, name string) error {
	if l.rebootConn == lv {
		return nil
	}
	events, err := lv.SubscribeEvents(context.Background(), libvirt.DomainEventIDReboot, libvirt.OptDomain{})
	if err != nil {
		return l.translate("reboot", name, err)
	}
	l.rebootConn = lv
	go l.relayRebootEvents(lv, events)
	return nil
}

// watchQEMUEvents makes sure that QEMU's events of domain d on the connection
// lv are relayed to the watches (relayQEMUEvents). libvirtd refuses a second
// subscription to one domain's QEMU events on a connection while the first
// is open ("event callback already tracked"), and go-libvirt deregisters a
// subscription only after its channel has closed, so a watch per
// subscription would rely on that deregistration reaching libvirtd before
// the next watch's subscription (it did in 50 watches in a row). Instead the
// subscription is made at d's first watch and kept while lv is connected and
// d defined (UndefineDomain ends it). Called with rebootMu held.
func (l *Libvirt) watchQEMUEvents(lv *libvirt.Libvirt, d libvirt.Domain) error {
	key := qemuSubKey{lv, d.UUID}
	if _, ok := l.qemuSubs[key]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, err := lv.SubscribeQEMUEvents(ctx, d.Name)
	if err != nil {
		cancel()
		return l.translate("reboot", d.Name, err)
	}
	if l.qemuSubs == nil {
		l.qemuSubs = map[qemuSubKey]*qemuSub{}
	}
	sub := &qemuSub{cancel}
	l.qemuSubs[key] = sub
	go l.relayQEMUEvents(key, sub, d.Name, events)
	return nil
}

// endQEMUEvents ends the subscriptions to QEMU's events of the domain uuid
// (UndefineDomain).
func (l *Libvirt) endQEMUEvents(uuid libvirt.UUID) {
	l.rebootMu.Lock()
	defer l.rebootMu.Unlock()
	for key, sub := range l.qemuSubs {
		if key.uuid == uuid {
			sub.cancel()
			delete(l.qemuSubs, key)
		}
	}
}

// relayQEMUEvents updates the watches of one domain on one connection with
// its QEMU events (rebootWatch) until the subscription sub ends (with the
// connection, or endQEMUEvents). The events carry QEMU's own time.
func (l *Libvirt) relayQEMUEvents(key qemuSubKey, sub *qemuSub, name string, events <-chan libvirt.DomainEvent) {
	for ev := range events {
		if ev.Event != "SHUTDOWN" && ev.Event != "RESET" {
			continue
		}
		at := time.Unix(int64(ev.Seconds), int64(ev.Microseconds)*1000)
		l.log.Debug("reboot watch: QEMU event", "vm", name, "event", ev.Event, "at", at, "details", string(ev.Details))
		l.rebootMu.Lock()
		for w := range l.rebootWatches {
			if w.lv != key.lv || w.uuid != key.uuid {
				continue
			}
			switch {
			case ev.Event == "SHUTDOWN" && w.shutdownAt.IsZero() && !at.Before(w.since):
				w.shutdownAt = at
				if !w.eventAt.IsZero() && !w.eventAt.Before(at) {
					w.signal(&w.eventSeen, w.event)
				}
			case ev.Event == "RESET" && !w.shutdownAt.IsZero():
				w.signal(&w.resetSeen, w.reset)
			}
		}
		l.rebootMu.Unlock()
	}
	l.rebootMu.Lock()
	defer l.rebootMu.Unlock()
	if l.qemuSubs[key] == sub {
		delete(l.qemuSubs, key)
	}
	sub.cancel()
	for w := range l.rebootWatches {
		if w.lv == key.lv && w.uuid == key.uuid {
			l.relayEnded(w)
		}
	}
}

// relayEnded notes that one of w's relays ended; when both have, w's
// connection has ended and Lost is closed. Called with rebootMu held.
func (l *Libvirt) relayEnded(w *rebootWatch) {
	if w.relays--; w.relays == 0 {
		close(w.lost)
		delete(l.rebootWatches, w)
	}
}

// signal closes c once; seen says whether it was.
func (w *rebootWatch) signal(seen *bool, c chan struct{}) {
	if !*seen {
		*seen = true
		close(c)
	}
}

// relayRebootEvents updates the watches of each reboot event's domain
// (rebootWatch), until the connection lv ends (the library then closes
// events); then it closes the lost channel of every watch still open on lv,
// and the next watch subscribes again on the new connection.
func (l *Libvirt) relayRebootEvents(lv *libvirt.Libvirt, events <-chan any) {
	for ev := range events {
		m, ok := ev.(*libvirt.DomainEventCallbackRebootMsg)
		if !ok {
			continue
		}
		now := time.Now()
		l.log.Debug("reboot watch: libvirt reboot event", "vm", m.Msg.Dom.Name)
		l.rebootMu.Lock()
		for w := range l.rebootWatches {
			if w.lv != lv || w.uuid != m.Msg.Dom.UUID {
				continue
			}
			if w.shutdownAt.IsZero() {
				w.eventAt = now
			} else {
				w.signal(&w.eventSeen, w.event)
			}
		}
		l.rebootMu.Unlock()
	}
	l.rebootMu.Lock()
	defer l.rebootMu.Unlock()
	if l.rebootConn == lv {
		l.rebootConn = nil
	}
	for w := range l.rebootWatches {
		if w.lv == lv {
			l.relayEnded(w)
		}
	}
}

// ResetDomain resets the guest at once (virDomainReset, like pressing the reset
// button); the QEMU process stays.
func (l *Libvirt) ResetDomain(ctx context.Context, name string) error {
	lv, d, err := l.lookup(ctx, "reset", name)
	if err != nil {
		return err
	}
	return l.translate("reset", name, lv.DomainReset(d, 0))
}

// DestroyDomain powers a domain off; not running or not defined is success.
func (l *Libvirt) DestroyDomain(ctx context.Context, name string) error {
	return l.ifDefined(ctx, "power off", name, func(lv *libvirt.Libvirt, d libvirt.Domain) error {
		err := lv.DomainDestroyFlags(d, 0)
		var le libvirt.Error
		if errors.As(err, &le) && libvirt.ErrorNumber(le.Code) == libvirt.ErrOperationInvalid {
			return nil // "domain is not running"
		}
		return err
	})
}

// UndefineDomain removes the definition with snapshot metadata and NVRAM,
// and ends the reboot watches' subscription to the domain's QEMU events.
func (l *Libvirt) UndefineDomain(ctx context.Context, name string) error {
	return l.ifDefined(ctx, "undefine", name, func(lv *libvirt.Libvirt, d libvirt.Domain) error {
		err := lv.DomainUndefineFlags(d, libvirt.DomainUndefineSnapshotsMetadata|libvirt.DomainUndefineNvram|libvirt.DomainUndefineManagedSave|libvirt.DomainUndefineCheckpointsMetadata)
		if err == nil {
			l.endQEMUEvents(d.UUID)
		}
		return err
	})
}

// ifDefined runs call on the domain name; a domain that is not defined, or
// vanishes meanwhile, is success.
func (l *Libvirt) ifDefined(ctx context.Context, op, name string, call func(*libvirt.Libvirt, libvirt.Domain) error) error {
	lv, d, err := l.lookup(ctx, op, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := call(lv, d); err != nil && !isNotFound(err) {
		return l.translate(op, name, err)
	}
	return nil
}

// ListDomains lists every defined domain's name.
func (l *Libvirt) ListDomains(ctx context.Context) ([]string, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return nil, err
	}
	doms, _, err := lv.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, l.translate("list domains", "", err)
	}
	out := make([]string, len(doms))
	for i, d := range doms {
		out[i] = d.Name
	}
	sort.Strings(out)
	return out, nil
}

// ---- snapshots ----

// CreateSnapshot takes an internal snapshot of the root disk (with memory when running).
// The read-only seed is excluded.
func (l *Libvirt) CreateSnapshot(ctx context.Context, dom, name, description string) error {
	lv, d, err := l.lookup(ctx, "snapshot create", dom)
	if err != nil {
		return err
	}
	x, err := lv.DomainGetXMLDesc(d, libvirt.DomainXMLInactive)
	if err != nil {
		return l.translate("snapshot create", dom, err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return fmt.Errorf("snapshot create %s: %w", dom, err)
	}
	snap := libvirtxml.DomainSnapshot{Name: name, Description: description, Disks: &libvirtxml.DomainSnapshotDisks{}}
	if def.Devices != nil {
		for _, disk := range def.Devices.Disks {
			if disk.Target == nil {
				continue
			}
			mode := "internal"
			if disk.Device != "disk" || disk.ReadOnly != nil {
				mode = "no"
			}
			snap.Disks.Disks = append(snap.Disks.Disks, libvirtxml.DomainSnapshotDisk{Name: disk.Target.Dev, Snapshot: mode})
		}
	}
	sx, err := snap.Marshal()
	if err != nil {
		return fmt.Errorf("snapshot create %s: %w", dom, err)
	}
	_, err = lv.DomainSnapshotCreateXML(d, sx, 0)
	return l.translate("snapshot create", dom+"/"+name, err)
}

// ListSnapshots lists a domain's snapshots, oldest first, with the saved VM state size.
func (l *Libvirt) ListSnapshots(ctx context.Context, dom string) ([]Snapshot, error) {
	lv, d, err := l.lookup(ctx, "snapshot list", dom)
	if err != nil {
		return nil, err
	}
	snaps, _, err := lv.DomainListAllSnapshots(d, 1, 0)
	if err != nil {
		return nil, l.translate("snapshot list", dom, err)
	}
	current := ""
	if cur, err := lv.DomainSnapshotCurrent(d, 0); err == nil {
		current = cur.Name
	}
	var sizes map[string]uint64
	if x, err := lv.DomainGetXMLDesc(d, libvirt.DomainXMLInactive); err == nil {
		if p, err := ParseDomainDisk(x); err == nil {
			if infos, err := ReadQcow2Snapshots(ctx, p); err == nil {
				sizes = map[string]uint64{}
				for _, in := range infos {
					sizes[in.Name] = in.VMStateSize
				}
			}
		}
	}
	out := make([]Snapshot, 0, len(snaps))
	for _, s := range snaps {
		x, err := lv.DomainSnapshotGetXMLDesc(s, 0)
		if err != nil {
			return nil, l.translate("snapshot list", dom+"/"+s.Name, err)
		}
		var sx libvirtxml.DomainSnapshot
		if err := sx.Unmarshal(x); err != nil {
			return nil, fmt.Errorf("snapshot list %s: %w", dom, err)
		}
		secs, _ := strconv.ParseInt(sx.CreationTime, 10, 64)
		out = append(out, Snapshot{Name: sx.Name, Description: sx.Description, CreatedAt: time.Unix(secs, 0).UTC(),
			State: sx.State, Current: sx.Name == current, VMStateBytes: sizes[sx.Name]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// DeleteSnapshot deletes one snapshot (data and metadata, or metadata only when
// the disk is about to be discarded anyway).
func (l *Libvirt) DeleteSnapshot(ctx context.Context, dom, name string, metadataOnly bool) error {
	var flags libvirt.DomainSnapshotDeleteFlags
	if metadataOnly {
		flags = libvirt.DomainSnapshotDeleteMetadataOnly
	}
	return l.onSnapshot(ctx, "snapshot delete", dom, name, func(lv *libvirt.Libvirt, s libvirt.DomainSnapshot) error {
		return lv.DomainSnapshotDelete(s, flags)
	})
}

// RevertSnapshot reverts to a snapshot; the domain comes back in the snapshot's state.
func (l *Libvirt) RevertSnapshot(ctx context.Context, dom, name string) error {
	return l.onSnapshot(ctx, "snapshot revert", dom, name, func(lv *libvirt.Libvirt, s libvirt.DomainSnapshot) error {
		return lv.DomainRevertToSnapshot(s, 0)
	})
}

// onSnapshot runs call on snapshot name of domain dom; errors are translated
// for op on dom/name.
func (l *Libvirt) onSnapshot(ctx context.Context, op, dom, name string, call func(*libvirt.Libvirt, libvirt.DomainSnapshot) error) error {
	lv, d, err := l.lookup(ctx, op, dom)
	if err != nil {
		return err
	}
	s, err := lv.DomainSnapshotLookupByName(d, name, 0)
	if err != nil {
		return l.translate(op, dom+"/"+name, err)
	}
	return l.translate(op, dom+"/"+name, call(lv, s))
}

// SetUserPassword sets a guest user's password through the QEMU guest agent.
func (l *Libvirt) SetUserPassword(ctx context.Context, dom, user, password string) error {
	lv, d, err := l.lookup(ctx, "password reset", dom)
	if err != nil {
		return err
	}
	return l.translate("password reset", dom, lv.DomainSetUserPassword(d, libvirt.OptString{user}, libvirt.OptString{password}, 0))
}

// ---- stats ----

// AllDomainStats returns every domain's counters from one ConnectGetAllDomainStats call.
func (l *Libvirt) AllDomainStats(ctx context.Context) ([]DomainStats, error) {
	lv, err := l.conn(ctx)
	if err != nil {
		return nil, err
	}
	which := libvirt.DomainStatsState | libvirt.DomainStatsCPUTotal | libvirt.DomainStatsBalloon |
		libvirt.DomainStatsVCPU | libvirt.DomainStatsInterface | libvirt.DomainStatsBlock
	recs, err := lv.ConnectGetAllDomainStats(nil, uint32(which), 0)
	if err != nil {
		return nil, l.translate("domain stats", "", err)
	}
	out := make([]DomainStats, 0, len(recs))
	for _, r := range recs {
		out = append(out, ParseStats(r.Dom.Name, r.Params))
	}
	return out, nil
}

// ParseStats folds libvirt's typed parameters into DomainStats.
func ParseStats(name string, params []libvirt.TypedParam) DomainStats {
	s := DomainStats{Name: name}
	var m memFields
	for _, p := range params {
		v := paramUint(p.Value)
		f := p.Field
		switch {
		case f == "state.state":
			s.State = stateNames[libvirt.DomainState(v)]
		case f == "cpu.time":
			s.CPUTimeNs = v
		case f == "vcpu.current":
			s.VCPUs = uint32(v)
		case strings.HasPrefix(f, "balloon."):
			m.set(strings.TrimPrefix(f, "balloon."), v*1024)
		case strings.HasPrefix(f, "block.") && strings.HasSuffix(f, ".rd.bytes"):
			s.DiskReadBytes += v
		case strings.HasPrefix(f, "block.") && strings.HasSuffix(f, ".wr.bytes"):
			s.DiskWriteBytes += v
		case strings.HasPrefix(f, "net.") && strings.HasSuffix(f, ".rx.bytes"):
			s.NetRxBytes += v
		case strings.HasPrefix(f, "net.") && strings.HasSuffix(f, ".tx.bytes"):
			s.NetTxBytes += v
		}
	}
	s.MemoryBytes, s.MemorySource = m.used()
	return s
}

// memFields are a domain's balloon.* figures in bytes (libvirt gives KiB);
// have* say which the guest reported.
type memFields struct {
	current, maximum, rss, available, unused, usable uint64
	haveAvailable, haveUnused, haveUsable            bool
}

func (m *memFields) set(field string, b uint64) {
	switch field {
	case "current":
		m.current = b
	case "maximum":
		m.maximum = b
	case "rss":
		m.rss = b
	case "available":
		m.available, m.haveAvailable = b, true
	case "unused":
		m.unused, m.haveUnused = b, true
	case "usable":
		m.usable, m.haveUsable = b, true
	}
}

// used is the memory the guest uses and where the figure comes from (see
// MemorySource). A guest figure that does not add up (free or available
// above total: the guest's report is its own, not the host's) is not used.
func (m *memFields) used() (uint64, MemorySource) {
	limit := func(b uint64) uint64 {
		if m.maximum > 0 {
			return min(b, m.maximum)
		}
		return b
	}
	if m.haveAvailable && m.available > 0 {
		switch {
		case m.haveUsable && m.usable <= m.available:
			return limit(m.available - m.usable), MemoryBalloon
		case !m.haveUsable && m.haveUnused && m.unused <= m.available:
			return limit(m.available - m.unused), MemoryBalloon
		}
	}
	b := m.current
	if m.rss > 0 && (b == 0 || m.rss < b) {
		b = m.rss
	}
	return limit(b), MemoryHost
}

func paramUint(v libvirt.TypedParamValue) uint64 {
	switch x := v.I.(type) {
	case int32:
		return uint64(max(x, 0))
	case uint32:
		return uint64(x)
	case int64:
		return uint64(max(x, 0))
	case uint64:
		return x
	case float64:
		return uint64(max(x, 0))
	case int:
		return uint64(max(x, 0))
	}
	return 0
}

func isNotFound(err error) bool {
	var le libvirt.Error
	if !errors.As(err, &le) {
		return false
	}
	switch libvirt.ErrorNumber(le.Code) {
	case libvirt.ErrNoDomain, libvirt.ErrNoStorageVol, libvirt.ErrNoStoragePool, libvirt.ErrNoDomainSnapshot, libvirt.ErrNoNetwork:
		return true
	}
	return false
}
