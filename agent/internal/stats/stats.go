// Package stats samples VM counters (one bulk libvirt call per cycle) and host
// metrics (gopsutil) and keeps a short ring of samples per VM.
package stats

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/pkg/api"
)

// Source is the bulk stats call.
type Source interface {
	AllDomainStats(ctx context.Context) ([]hypervisor.DomainStats, error)
}

// Collector keeps the rings.
type Collector struct {
	src      Source
	diskPath string
	ringSize int
	log      *slog.Logger
	now      func() time.Time

	mu   sync.RWMutex
	vms  map[string]*ring
	prev map[string]raw
	host api.NodeHostStats
}

type raw struct {
	t time.Time
	s hypervisor.DomainStats
}

type ring struct {
	buf  []api.NodeVMStats
	next int
	full bool
}

func (r *ring) add(s api.NodeVMStats) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// latest is the sample added last (ok false: none yet), without list's copy
// of the ring (Live and changed ask it at every stream tick).
func (r *ring) latest() (api.NodeVMStats, bool) {
	if r.next == 0 && !r.full {
		return api.NodeVMStats{}, false
	}
	return r.buf[(r.next-1+len(r.buf))%len(r.buf)], true
}

func (r *ring) list() []api.NodeVMStats {
	if !r.full {
		return append([]api.NodeVMStats(nil), r.buf[:r.next]...)
	}
	return append(append([]api.NodeVMStats(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// New returns a collector; diskPath is the filesystem reported as host disk.
func New(src Source, diskPath string, ringSize int, log *slog.Logger, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{src: src, diskPath: diskPath, ringSize: ringSize, log: log, now: now,
		vms: map[string]*ring{}, prev: map[string]raw{}}
}

// Run samples every interval until ctx ends.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.Cycle(ctx); err != nil {
			c.log.Warn("stats cycle failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Cycle takes one sample of every domain and of the host.
func (c *Collector) Cycle(ctx context.Context) error {
	ds, err := c.src.AllDomainStats(ctx)
	if err != nil {
		return err
	}
	c.record(ds)
	return nil
}

// Current is Snapshot with current power states: one bulk call, and when a
// domain's state differs from its last sample (it stopped, started or vanished
// since the last cycle), that call's results are recorded as a sample now. So a
// VM that stopped shows stopped in the next answer, not "running" until the next
// cycle. If libvirt cannot be asked, the last samples are answered.
func (c *Collector) Current(ctx context.Context, vm string) api.NodeStats {
	if ds, err := c.src.AllDomainStats(ctx); err == nil && c.changed(ds) {
		c.record(ds)
	}
	return c.Snapshot(vm)
}

// minRateWindow is the shortest time a first live sample's rates are computed
// over: nearer to the collector's last sample, Live answers that one. (A
// stream's later samples are its own interval apart, at least 500 ms.)
const minRateWindow = 500 * time.Millisecond

// Mark is what Live remembers between the calls of one caller (a stats
// stream): vm's counters at its previous live sample, so that each sample's
// rates cover the time since the one before it, and the sample it was
// answered then (sent). The zero Mark is a first call.
type Mark struct {
	prev raw
	sent api.NodeVMStats
	set  bool
}

// Live returns vm's sample as of now rather than as of the last cycle (up to
// the agent's --stats-interval old): one bulk call, whose results are recorded
// as a cycle's when a power state changed (as Current does); the counters are
// the call's, the rates cover the time since the caller's previous live sample
// (m) or, on a first call, since the collector's last sample of vm; when that
// is under minRateWindow ago, the collector's last sample is answered. If
// libvirt cannot be asked, the last sample is answered (to a caller answered
// a newer live sample already, that one again: a stream's samples never go
// back in time, nor its counters down); ok is false when there is none (vm is
// not defined, or not sampled yet): Current then tells which. Nothing is added
// to the ring: a live sample is the caller's.
func (c *Collector) Live(ctx context.Context, vm string, m *Mark) (s api.NodeVMStats, ok bool) {
	ds, err := c.src.AllDomainStats(ctx)
	if err != nil {
		return c.lastFor(vm, m)
	}
	if c.changed(ds) {
		c.record(ds)
	}
	i := slices.IndexFunc(ds, func(d hypervisor.DomainStats) bool { return d.Name == vm })
	if i < 0 {
		return api.NodeVMStats{}, false
	}
	d, now := ds[i], c.now()
	base := m.prev
	if !m.set {
		c.mu.RLock()
		base, ok = c.prev[vm]
		c.mu.RUnlock()
		if !ok || now.Sub(base.t) < minRateWindow {
			return c.last(vm)
		}
	}
	dt := now.Sub(base.t)
	if dt <= 0 {
		return c.lastFor(vm, m)
	}
	s = rates(now, d, base, dt)
	m.prev, m.sent, m.set = raw{now, d}, s, true
	return s, true
}

// lastFor is vm's last sample in the ring, or the live sample m was answered
// when that is not older.
func (c *Collector) lastFor(vm string, m *Mark) (api.NodeVMStats, bool) {
	s, ok := c.last(vm)
	if m.set && (!ok || !s.Time.After(m.sent.Time)) {
		return m.sent, true
	}
	return s, ok
}

// last is vm's last sample in the ring.
func (c *Collector) last(vm string) (api.NodeVMStats, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r := c.vms[vm]
	if r == nil {
		return api.NodeVMStats{}, false
	}
	return r.latest()
}

// changed reports whether ds disagrees with the last samples about which
// domains exist or their states.
func (c *Collector) changed(ds []hypervisor.DomainStats) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(ds) != len(c.vms) {
		return true
	}
	for _, d := range ds {
		r := c.vms[d.Name]
		if r == nil {
			return true
		}
		if l, ok := r.latest(); !ok || l.State != string(d.State) {
			return true
		}
	}
	return false
}

// record adds one sample of every domain in ds (and of the host).
func (c *Collector) record(ds []hypervisor.DomainStats) {
	now := c.now()
	host := c.hostSample(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.host = host
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		seen[d.Name] = true
		p, ok := c.prev[d.Name]
		var dt time.Duration
		if ok {
			dt = now.Sub(p.t)
		}
		s := rates(now, d, p, dt)
		c.prev[d.Name] = raw{now, d}
		r := c.vms[d.Name]
		if r == nil {
			r = &ring{buf: make([]api.NodeVMStats, c.ringSize)}
			c.vms[d.Name] = r
		}
		r.add(s)
	}
	for n := range c.vms {
		if !seen[n] {
			delete(c.vms, n)
			delete(c.prev, n)
		}
	}
}

// rates is d's sample at now, its rates over the dt since p (none when dt is
// not positive).
func rates(now time.Time, d hypervisor.DomainStats, p raw, dt time.Duration) api.NodeVMStats {
	s := api.NodeVMStats{Time: now, State: string(d.State), CPUTimeNs: d.CPUTimeNs, MemoryBytes: d.MemoryBytes,
		DiskReadBytes: d.DiskReadBytes, DiskWriteBytes: d.DiskWriteBytes, NetRxBytes: d.NetRxBytes, NetTxBytes: d.NetTxBytes}
	if sec := dt.Seconds(); sec > 0 {
		s.CPUPercent = 100 * float64(sub(d.CPUTimeNs, p.s.CPUTimeNs)) / 1e9 / sec
		s.DiskReadBps = float64(sub(d.DiskReadBytes, p.s.DiskReadBytes)) / sec
		s.DiskWriteBps = float64(sub(d.DiskWriteBytes, p.s.DiskWriteBytes)) / sec
		s.NetRxBps = float64(sub(d.NetRxBytes, p.s.NetRxBytes)) / sec
		s.NetTxBps = float64(sub(d.NetTxBytes, p.s.NetTxBytes)) / sec
	}
	return s
}

// sub is a counter delta that treats a reset (e.g. a restarted QEMU) as zero.
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func (c *Collector) hostSample(now time.Time) api.NodeHostStats {
	h := api.NodeHostStats{Time: now}
	if p, err := cpu.Percent(0, false); err == nil && len(p) > 0 {
		h.CPUPercent = p[0]
	}
	if v, err := mem.VirtualMemory(); err == nil {
		h.MemoryTotal, h.MemoryUsed = v.Total, v.Used
	}
	if d, err := disk.Usage(c.diskPath); err == nil {
		h.DiskTotal, h.DiskUsed = d.Total, d.Used
	}
	if l, err := load.Avg(); err == nil {
		h.Load1, h.Load5, h.Load15 = l.Load1, l.Load5, l.Load15
	}
	return h
}

// Snapshot returns the host sample and the rings (only vm's when vm is set).
func (c *Collector) Snapshot(vm string) api.NodeStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := api.NodeStats{Host: c.host, VMs: map[string][]api.NodeVMStats{}}
	for n, r := range c.vms {
		if vm == "" || n == vm {
			out.VMs[n] = r.list()
		}
	}
	return out
}
