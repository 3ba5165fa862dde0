package libvirttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// Benchmarks run their function once with b.N=1 and again with the real N; the
// expensive fixtures (a 2 GiB template import, 100 domains) are built once per test
// process and torn down in TestMain.
var (
	benchMu       sync.Mutex
	benchFixtures = map[string]any{}
	pkgCleanups   []func()
)

// sharedTB outlives the benchmark run that created a fixture: cleanups go to
// TestMain, logs are dropped.
type sharedTB struct{ testing.TB }

func (s sharedTB) Cleanup(f func())    { pkgCleanups = append(pkgCleanups, f) }
func (s sharedTB) Log(...any)          {}
func (s sharedTB) Logf(string, ...any) {}
func (s sharedTB) Helper()             {}
func (s sharedTB) TempDir() string {
	d, err := os.MkdirTemp("", "hostplane-bench")
	if err != nil {
		s.Fatal(err)
	}
	pkgCleanups = append(pkgCleanups, func() { os.RemoveAll(d) })
	return d
}

func fixture[T any](b *testing.B, key string, build func(tb testing.TB) T) T {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if v, ok := benchFixtures[key]; ok {
		return v.(T)
	}
	v := build(sharedTB{b})
	benchFixtures[key] = v
	return v
}

func TestMain(m *testing.M) {
	code := framework.Main(m) // removes the binaries framework built
	for i := len(pkgCleanups) - 1; i >= 0; i-- {
		pkgCleanups[i]()
	}
	os.Exit(code)
}

// newBenchEnv starts an agent in-process for benchmarks.
func newBenchEnv(tb testing.TB) *env {
	testenv.RequireLibvirt(tb)
	g := testenv.RequireGuest(tb)
	prefix := testenv.Prefix()
	e := &env{t: tb, prefix: prefix, guest: g}
	e.cfg = agentConfig(tb.TempDir(), prefix)
	testenv.Cleanup(tb, prefix, e.cfg.PoolName)
	e.startInProcess()
	return e
}

type hvEnv struct {
	e  *env
	hv *hypervisor.Libvirt
}

// bigTemplate returns a cached qcow2 of 10 GiB virtual size holding 2 GiB of data.
func bigTemplate(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(testenv.RepoRoot(b), ".cache", "bench")
	p := filepath.Join(dir, "base-10g-2g.qcow2")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	tmp := p + ".tmp"
	for _, args := range [][]string{
		{"qemu-img", "create", "-q", "-f", "qcow2", tmp, "10G"},
		{"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1G", "-c", "write -P 0xcd 1G 1G", tmp},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", args, err, out)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		b.Fatal(err)
	}
	return p
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportP50s reports the medians of x and y as NAME-p50-ms and returns them.
func reportP50s(b *testing.B, xName string, x []time.Duration, yName string, y []time.Duration) (time.Duration, time.Duration) {
	px, py := p50(x), p50(y)
	b.ReportMetric(ms(px), xName+"-p50-ms")
	b.ReportMetric(ms(py), yName+"-p50-ms")
	return px, py
}

func p50(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkProvisionOverlayVsFullCopy: provision to `running` through the agent (qcow2
// overlay on a 10 GiB-virtual / 2 GiB-data template) against the baseline of a full
// copy with `qemu-img convert` followed by the same define + start, in the same run.
// Guest boot is excluded: both stop at libvirt reporting the domain running.
func BenchmarkProvisionOverlayVsFullCopy(b *testing.B) {
	ctx := context.Background()
	base := bigTemplate(b)
	f := fixture(b, "provision", func(tb testing.TB) hvEnv {
		e := newBenchEnv(tb)
		if _, err := e.c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-imp", Name: "big", OSFamily: "linux",
			ImagePath: base, SHA256: testenv.SHA256File(tb, base)}); err != nil {
			tb.Fatal(err)
		}
		hv, _ := testenv.HypervisorFor(tb, e.cfg.PoolName, e.cfg.PoolPath)
		return hvEnv{e, hv}
	})
	e, hv := f.e, f.hv
	var overlay, copyT, ovDisk, cpDisk []time.Duration
	basePath := filepath.Join(e.cfg.PoolPath, "tpl-big.qcow2")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("%s-ov%d", e.prefix, i)
		req := e.provisionReq(name+"-op", name, "big")
		req.Plan.DiskGiB = 10
		t0 := time.Now()
		op, err := e.c.Provision(ctx, req)
		d := time.Since(t0)
		if err != nil || op.Result.VM.State != "running" {
			b.Fatalf("provision: %+v %v", op, err)
		}
		overlay = append(overlay, d)
		b.StopTimer()
		if _, err := e.c.Terminate(ctx, name, name+"-term"); err != nil {
			b.Fatal(err)
		}

		// Baseline: full copy, then the same define + start.
		cname := fmt.Sprintf("%s-cp%d", e.prefix, i)
		dst := filepath.Join(e.cfg.PoolPath, cname+".qcow2")
		b.StartTimer()
		t0 = time.Now()
		if out, err := exec.Command("qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", base, dst).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v %s", err, out)
		}
		cpDisk = append(cpDisk, time.Since(t0))
		if _, err := hv.DefineDomain(ctx, hypervisor.DomainSpec{Name: cname, Type: "qemu", Machine: "pc", Emulator: e.cfg.Emulator,
			VCPUs: 1, MemoryMiB: 128, DiskPath: dst, MAC: "52:54:00:fe:00:01", Network: "user", ConsoleLog: dst + ".log"}); err != nil {
			b.Fatal(err)
		}
		if err := hv.StartDomain(ctx, cname); err != nil {
			b.Fatal(err)
		}
		copyT = append(copyT, time.Since(t0))
		b.StopTimer()
		_ = hv.DestroyDomain(ctx, cname)
		_ = hv.UndefineDomain(ctx, cname)
		os.Remove(dst)
		os.Remove(dst + ".log")

		// The disk step alone: a libvirt qcow2 overlay on the template's base volume.
		t0 = time.Now()
		v, err := hv.CreateOverlay(ctx, cname+"-ov.qcow2", basePath, 10<<30)
		if err != nil {
			b.Fatal(err)
		}
		ovDisk = append(ovDisk, time.Since(t0))
		_ = hv.DeleteVolume(ctx, v.Name)
		b.StartTimer()
	}
	b.StopTimer()
	o, c := reportP50s(b, "overlay", overlay, "fullcopy", copyT)
	b.ReportMetric(float64(c)/float64(o), "speedup-x")
	od, cd := reportP50s(b, "disk-overlay", ovDisk, "disk-copy", cpDisk)
	b.ReportMetric(float64(cd)/float64(od), "disk-speedup-x")
}

// BenchmarkStartAgentVsDirect: `start` through the agent's local API (journal,
// locks, HTTP over the unix socket) against go-libvirt's DomainCreate on the same
// domain, alternating, each followed by an untimed destroy. Reports p50s and ratio.
func BenchmarkStartAgentVsDirect(b *testing.B) {
	ctx := context.Background()
	f := fixture(b, "start", func(tb testing.TB) hvEnv {
		e := newBenchEnv(tb)
		if _, err := e.c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-imp", Name: "guest", OSFamily: "linux",
			ImagePath: e.guest.Disk, SHA256: testenv.SHA256File(tb, e.guest.Disk), KernelPath: e.guest.Kernel, InitrdPath: e.guest.Initrd, Cmdline: e.guest.Cmdline}); err != nil {
			tb.Fatal(err)
		}
		name := e.prefix + "-pw"
		if _, err := e.c.Provision(ctx, e.provisionReq(name+"-op", name, "guest")); err != nil {
			tb.Fatal(err)
		}
		hv, _ := testenv.HypervisorFor(tb, e.cfg.PoolName, e.cfg.PoolPath)
		return hvEnv{e, hv}
	})
	e, hv := f.e, f.hv
	name := e.prefix + "-pw"
	lv, err := hv.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	dom, err := lv.DomainLookupByName(name)
	if err != nil {
		b.Fatal(err)
	}
	destroy := func() {
		if err := lv.DomainDestroyFlags(dom, 0); err != nil {
			b.Fatal(err)
		}
	}
	if st, _ := hv.DomainState(ctx, name); st.Active() {
		destroy()
	}
	var agentT, directT []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		op, err := e.c.Start(ctx, name, fmt.Sprintf("%s-start-%d-%d", e.prefix, b.N, i))
		agentT = append(agentT, time.Since(t0))
		if err != nil || op.Result.PowerMethod != api.NodePowerStarted {
			b.Fatalf("start: %+v %v", op, err)
		}
		b.StopTimer()
		destroy()
		b.StartTimer()
		t0 = time.Now()
		if err := lv.DomainCreate(dom); err != nil {
			b.Fatal(err)
		}
		directT = append(directT, time.Since(t0))
		b.StopTimer()
		destroy()
		b.StartTimer()
	}
	b.StopTimer()
	a, d := reportP50s(b, "agent", agentT, "direct", directT)
	b.ReportMetric(float64(a)/float64(d), "ratio-p50")
}

// BenchmarkStatsCycle100Domains: one stats cycle (one bulk libvirt call + host
// metrics + rings) with 100 defined domains, 10 running. Reports wall and this
// process's CPU time per cycle, and the bare go-libvirt bulk call for comparison.
func BenchmarkStatsCycle100Domains(b *testing.B) {
	ctx := context.Background()
	hv := fixture(b, "stats", func(tb testing.TB) *hypervisor.Libvirt {
		testenv.RequireLibvirt(tb)
		g := testenv.RequireGuest(tb)
		prefix := testenv.Prefix()
		cfg := agentConfig(tb.TempDir(), prefix)
		testenv.Cleanup(tb, prefix, cfg.PoolName)
		hv, _ := testenv.HypervisorFor(tb, cfg.PoolName, cfg.PoolPath)
		for i := range 100 {
			name := fmt.Sprintf("%s-s%03d", prefix, i)
			disk := g.Disk
			if i < 10 {
				v, err := hv.CreateOverlay(ctx, name+".qcow2", g.Disk, 64<<20)
				if err != nil {
					tb.Fatal(err)
				}
				disk = v.Path
			}
			// No kernel: the running ten sit in SeaBIOS ("not a bootable disk"), nearly idle.
			if _, err := hv.DefineDomain(ctx, hypervisor.DomainSpec{Name: name, Type: "qemu", Machine: "pc", Emulator: cfg.Emulator,
				VCPUs: 1, MemoryMiB: 64, DiskPath: disk, MAC: fmt.Sprintf("52:54:00:fd:00:%02x", i), Network: "user",
				ConsoleLog: filepath.Join(cfg.PoolPath, name+".log")}); err != nil {
				tb.Fatal(err)
			}
			if i < 10 {
				if err := hv.StartDomain(ctx, name); err != nil {
					tb.Fatal(err)
				}
			}
		}
		return hv
	})
	col := stats.New(hv, hv.PoolPath(), 60, testenv.Logger(b), nil)
	if err := col.Cycle(ctx); err != nil {
		b.Fatal(err)
	}
	if n := len(col.Snapshot("").VMs); n < 100 {
		b.Fatalf("stats cover %d domains", n)
	}
	lv, err := hv.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	which := uint32(libvirt.DomainStatsState | libvirt.DomainStatsCPUTotal | libvirt.DomainStatsBalloon |
		libvirt.DomainStatsVCPU | libvirt.DomainStatsInterface | libvirt.DomainStatsBlock)
	var rawWall, rawCPU time.Duration
	b.ResetTimer()
	c0, w0 := proccpu.Self(), time.Now()
	for i := 0; i < b.N; i++ {
		if err := col.Cycle(ctx); err != nil {
			b.Fatal(err)
		}
	}
	wall, cpu := time.Since(w0), proccpu.Self()-c0
	b.StopTimer()
	c1, w1 := proccpu.Self(), time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := lv.ConnectGetAllDomainStats(nil, which, 0); err != nil {
			b.Fatal(err)
		}
	}
	rawWall, rawCPU = time.Since(w1), proccpu.Self()-c1
	n := float64(b.N)
	b.ReportMetric(ms(wall)/n, "cycle-wall-ms")
	b.ReportMetric(ms(cpu)/n, "cycle-cpu-ms")
	b.ReportMetric(ms(rawWall)/n, "rawcall-wall-ms")
	b.ReportMetric(ms(rawCPU)/n, "rawcall-cpu-ms")
}
