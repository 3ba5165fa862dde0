package sitetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The hosting benchmarks of issue 13, side by side in one run (make bench):
//
//   - BenchmarkAttach: attaching a domain on a node that already serves
//     HP_BENCH_SITES (10,000) domains, time until HTTPS serves it, and the
//     nginx reloads it took, against a server block per domain + nginx -t +
//     reload on the same nginx binary with the same sites
//     (HP_BENCH_BASELINE_ATTACHES samples, 3: each costs tens of seconds).
//   - BenchmarkHandshake: full TLS handshakes/s with a static certificate,
//     with the variable path (read per handshake) and with the lua cache, on
//     one nginx, one worker, alternating, for three spreads of SNIs over the
//     node's HP_BENCH_HS_NAMES (1,000) names: one name, Zipf (s = 1) and
//     uniform; with the nginx worker's CPU time per handshake.
//   - BenchmarkMemory: nginx's memory before and after 1,000 attaches, each
//     handshaken once: its own pages (each counted once, which other
//     processes cannot move), with the anonymous growth and the growth of
//     PSS, RSS and USS beside.
//
// HP_BENCH_CACHE_SIZE sets the lua cache's size in both (DefaultCacheSize).
//
// The nginx processes and files of a run are kept for the whole process
// (TestMain removes them), so the Go benchmark's repeated runs do not build
// 10,000 sites again.

func TestMain(m *testing.M) {
	code := m.Run()
	benchCleanup()
	os.Exit(code)
}

var (
	benchMu       sync.Mutex
	benchCleanups []func()
)

func benchCleanup() {
	benchMu.Lock()
	defer benchMu.Unlock()
	for i := len(benchCleanups) - 1; i >= 0; i-- {
		benchCleanups[i]()
	}
	benchCleanups = nil
}

func atExit(f func()) {
	benchMu.Lock()
	defer benchMu.Unlock()
	benchCleanups = append(benchCleanups, f)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchDir is a directory nginx's workers can read, removed at exit.
func benchDir(b *testing.B, name string) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "hp-sitetls-bench-"+name+"-")
	if err != nil {
		b.Fatal(err)
	}
	atExit(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchNode is a node of n sites with certificates in the chosen mode.
type benchNode struct {
	*testNginx
	next atomic.Int64
}

var (
	nodeOnce sync.Once
	node     *benchNode
	nodeErr  error
)

func siteName(i int) string { return fmt.Sprintf("d%d.bench.test", i) }

// writeSites writes n certificates straight into the store (the domains a
// node already serves; no check per file), in the form Attach writes.
func writeSites(s *Store, n int) error {
	for i := range n {
		if err := s.writeSelfSigned(siteName(i), siteName(i), 24*time.Hour); err != nil {
			return err
		}
	}
	return nil
}

func benchLuaNode(b *testing.B) *benchNode {
	b.Helper()
	nodeBin(b)
	nodeOnce.Do(func() {
		dir := benchDir(b, "node")
		addr := freePort(b)
		st := &Store{CertsDir: filepath.Join(dir, "certs"), GID: wwwDataGID(b), CheckAddr: addr, CheckTimeout: 5 * time.Second}
		if nodeErr = st.Prepare(); nodeErr != nil {
			return
		}
		sites := envInt("HP_BENCH_SITES", 10000)
		if nodeErr = writeSites(st, sites); nodeErr != nil {
			return
		}
		block, err := Render(Conf{Mode: ModeLua, Listen: addr, CertsDir: st.CertsDir, Body: "ok"})
		if err != nil {
			nodeErr = err
			return
		}
		if nodeErr = os.WriteFile(filepath.Join(dir, "tls.conf"), block, 0o644); nodeErr != nil {
			return
		}
		n, err := launch(dir, nginxMain(ModeLua, dir, "include "+dir+"/tls.conf;"), addr)
		if err != nil {
			nodeErr = err
			return
		}
		atExit(n.stop)
		n.store, n.mode = st, ModeLua
		node = &benchNode{testNginx: n}
		node.next.Store(int64(sites))
	})
	if nodeErr != nil {
		b.Fatal(nodeErr)
	}
	return node
}

func nodeBin(b *testing.B) {
	b.Helper()
	nginxBin(b)
	needLua(b)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// baseline: a server block per domain, nginx -t, reload (HUP); measured once.
var (
	baseOnce               sync.Once
	baseP50, baseP99       time.Duration
	baseReloads, baseSites int
	baseErr                error
)

func measureBaseline(b *testing.B) {
	b.Helper()
	baseOnce.Do(func() {
		sites := envInt("HP_BENCH_SITES", 10000)
		samples := envInt("HP_BENCH_BASELINE_ATTACHES", 3)
		dir := benchDir(b, "baseline")
		addr := freePort(b)
		st := &Store{CertsDir: filepath.Join(dir, "certs"), GID: wwwDataGID(b)}
		if baseErr = st.Prepare(); baseErr != nil {
			return
		}
		if baseErr = writeSites(st, sites); baseErr != nil {
			return
		}
		block := func(name string) string {
			p := st.Path(name)
			return fmt.Sprintf("server { listen %s ssl; server_name %s; ssl_certificate %s; ssl_certificate_key %s; location / { return 200 \"ok\"; } }\n", addr, name, p, p)
		}
		var all strings.Builder
		all.WriteString(block(siteName(0))) // the default server of the port
		for i := 1; i < sites; i++ {
			all.WriteString(block(siteName(i)))
		}
		if baseErr = os.WriteFile(filepath.Join(dir, "sites.conf"), []byte(all.String()), 0o644); baseErr != nil {
			return
		}
		if baseErr = os.MkdirAll(filepath.Join(dir, "new.d"), 0o755); baseErr != nil {
			return
		}
		n, err := launch(dir, nginxMain(ModeVariable, dir, "include "+dir+"/sites.conf;\n  include "+dir+"/new.d/*.conf;"), addr)
		if err != nil {
			baseErr = err
			return
		}
		atExit(n.stop)
		var d []time.Duration
		for i := range samples {
			name := fmt.Sprintf("base%d.bench.test", i)
			c, k, err := SelfSigned(name, time.Now(), 24*time.Hour)
			if err != nil {
				baseErr = err
				return
			}
			want := leafDER(b, c)
			start := time.Now()
			if err := st.write(st.Path(name), append(c, k...)); err != nil {
				baseErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, "new.d", name+".conf"), []byte(block(name)), 0o644); err != nil {
				baseErr = err
				return
			}
			if out, err := n.cmd("-t", "-q").CombinedOutput(); err != nil {
				baseErr = fmt.Errorf("nginx -t: %v: %s", err, out)
				return
			}
			if err := syscall.Kill(n.pid(), syscall.SIGHUP); err != nil {
				baseErr = err
				return
			}
			for {
				leaf, err := ServedLeaf(context.Background(), addr, name, 5*time.Second)
				if err == nil && bytes.Equal(leaf.Raw, want) {
					break
				}
				if time.Since(start) > 10*time.Minute {
					baseErr = fmt.Errorf("baseline: %s not served 10 min after the reload", name)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			d = append(d, time.Since(start))
		}
		// Reloads: one HUP per attach, by construction (nginx logs each).
		baseP50, baseP99, baseReloads, baseSites = percentile(d, 0.5), percentile(d, 0.99), samples, sites
	})
	if baseErr != nil {
		b.Fatal(baseErr)
	}
}

// BenchmarkAttach: HP_BENCH_ATTACHES (200) attaches per iteration on the
// node of HP_BENCH_SITES sites, each timed from the call to a handshake with
// that SNI that gets the new certificate (Attach's own check).
func BenchmarkAttach(b *testing.B) {
	n := benchLuaNode(b)
	measureBaseline(b)
	workers := n.workers(b)
	per := envInt("HP_BENCH_ATTACHES", 200)
	type pair struct{ c, k []byte }
	ctx := context.Background()
	var d []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		certs := make([]pair, per)
		names := make([]string, per)
		for j := range per {
			names[j] = siteName(int(n.next.Add(1)))
			c, k, err := SelfSigned(names[j], time.Now(), 24*time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			certs[j] = pair{c, k}
		}
		b.StartTimer()
		for j := range per {
			start := time.Now()
			if err := n.store.Attach(ctx, names[j], certs[j].c, certs[j].k); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
	}
	b.StopTimer()
	if n.workers(b) != workers {
		b.Fatalf("nginx's workers changed: %s → %s", workers, n.workers(b))
	}
	p50, p99 := percentile(d, 0.5), percentile(d, 0.99)
	b.ReportMetric(ms(p50), "attach-p50-ms")
	b.ReportMetric(ms(p99), "attach-p99-ms")
	b.ReportMetric(float64(n.reloads()), "reloads")
	b.ReportMetric(ms(baseP50), "baseline-p50-ms")
	b.ReportMetric(ms(baseP99), "baseline-p99-ms")
	b.ReportMetric(float64(baseReloads), "baseline-reloads")
	b.ReportMetric(float64(baseP50)/float64(p50), "speedup-p50-x")
	b.Logf("node of %d sites: attach p50 %.2f ms p99 %.2f ms over %d attaches, %d reloads; baseline (server block + nginx -t + reload, %d sites) p50 %.0f ms p99 %.0f ms, %d reloads; %.0fx faster at p50",
		baseSites, ms(p50), ms(p99), len(d), n.reloads(), baseSites, ms(baseP50), ms(baseP99), baseReloads, float64(baseP50)/float64(p50))
}

// spread picks the SNI of each handshake among the node's names.
type spread struct {
	label string
	pick  func(r *mrand.Rand) string
}

// spreads: one name (all cache hits once warm), Zipf with s = 1 over names
// (a few popular sites and a long tail), uniform over names.
func spreads(names int) []spread {
	cum := make([]float64, names)
	total := 0.0
	for i := range names {
		total += 1 / float64(i+1)
		cum[i] = total
	}
	return []spread{
		{"one", func(*mrand.Rand) string { return siteName(1) }},
		{fmt.Sprintf("zipf%d", names), func(r *mrand.Rand) string {
			i, _ := slices.BinarySearch(cum, r.Float64()*total)
			return siteName(min(i, names-1))
		}},
		{fmt.Sprintf("uniform%d", names), func(r *mrand.Rand) string { return siteName(r.IntN(names)) }},
	}
}

// cpuNS is a process's CPU time so far (schedstat), in ns.
func cpuNS(b *testing.B, pid string) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/schedstat")
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// handshakeRate runs full TLS handshakes (no resumption) with SNIs from
// sp against addr from 4 goroutines for dur, and returns the handshakes/s
// and the nginx worker's CPU time per handshake (µs).
func handshakeRate(b *testing.B, addr, worker string, sp spread, dur time.Duration) (rate, cpuUS float64) {
	b.Helper()
	var count, fails atomic.Int64
	cpu0 := cpuNS(b, worker)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for time.Now().Before(deadline) {
				cfg := &tls.Config{ServerName: sp.pick(r), InsecureSkipVerify: true} //nolint:gosec // a benchmark of handshakes
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					fails.Add(1)
					continue
				}
				c.Close()
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	if fails.Load() > 0 {
		b.Fatalf("%d handshakes with %s failed", fails.Load(), addr)
	}
	return float64(count.Load()) / dur.Seconds(), (cpuNS(b, worker) - cpu0) / 1e3 / float64(max(count.Load(), 1))
}

// BenchmarkHandshake: one nginx, one worker, three listeners (a static
// certificate, the variable path, the lua cache of DefaultCacheSize) over
// the same HP_BENCH_HS_NAMES (1,000) files, measured alternately
// HP_BENCH_HS_ROUNDS (1) times per iteration for HP_BENCH_HS_SECONDS (3)
// each, in turns of HP_BENCH_HS_SLICE_MS (500), for each spread of SNIs.
// The static listener has one certificate, whatever the SNI: the cost of
// TLS alone.
func BenchmarkHandshake(b *testing.B) {
	nodeBin(b)
	dir := benchDir(b, "handshake")
	st := &Store{CertsDir: filepath.Join(dir, "certs"), GID: wwwDataGID(b)}
	if err := st.Prepare(); err != nil {
		b.Fatal(err)
	}
	names := envInt("HP_BENCH_HS_NAMES", 1000)
	if err := writeSites(st, names); err != nil {
		b.Fatal(err)
	}
	static, variable, lua := freePort(b), freePort(b), freePort(b)
	luaBlock, err := Render(Conf{Mode: ModeLua, Listen: lua, CertsDir: st.CertsDir, Body: "ok", CacheSize: envInt("HP_BENCH_CACHE_SIZE", 0)})
	if err != nil {
		b.Fatal(err)
	}
	varBlock, err := Render(Conf{Mode: ModeVariable, Listen: variable, CertsDir: st.CertsDir, Body: "ok", SkipMap: true})
	if err != nil {
		b.Fatal(err)
	}
	// Listeners are default_server: each its own port.
	p := st.Path(siteName(1))
	// The same protocols as the rendered blocks: nginx 1.22's default
	// (TLSv1 to TLSv1.2) would compare TLS 1.3 handshakes with TLS 1.2 ones.
	staticBlock := fmt.Sprintf("server { listen %s ssl; ssl_certificate %s; ssl_certificate_key %s; ssl_protocols %s; location / { return 200 \"ok\"; } }\n", static, p, p, Protocols)
	conf := string(luaBlock) + string(varBlock) + staticBlock
	if err := os.WriteFile(filepath.Join(dir, "tls.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	n, err := launch(dir, nginxMain(ModeLua, dir, "include "+dir+"/tls.conf;"), lua)
	if err != nil {
		b.Fatal(err)
	}
	defer n.stop()
	worker := n.workers(b)
	// The listeners differ in how they find the certificate only: the
	// client gets the same protocol version from each.
	var versions [3]uint16
	for i, addr := range []string{static, variable, lua} {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: siteName(1), InsecureSkipVerify: true}) //nolint:gosec // a benchmark of handshakes
		if err != nil {
			b.Fatal(err)
		}
		versions[i] = c.ConnectionState().Version
		c.Close()
	}
	if versions[0] != versions[1] || versions[0] != versions[2] {
		b.Fatalf("listeners negotiate different TLS versions (static, variable, lua): %x", versions)
	}
	rounds := envInt("HP_BENCH_HS_ROUNDS", 1)
	dur := time.Duration(envInt("HP_BENCH_HS_SECONDS", 3)) * time.Second
	// Each listener's time is cut into slices taken in turn (static,
	// variable, lua, static, ...), so a change in the machine's load
	// lasting seconds weighs on the three alike.
	slice := min(time.Duration(envInt("HP_BENCH_HS_SLICE_MS", 500))*time.Millisecond, dur)
	turns := max(int(dur/slice), 1)
	// per listener: handshakes, seconds, worker CPU (µs)
	type sums struct{ n, sec, cpu [3]float64 }
	sps := spreads(names)
	res := make([]sums, len(sps))
	addrs := [3]string{static, variable, lua}
	b.ResetTimer()
	for range b.N {
		for range rounds {
			for i, sp := range sps {
				r := &res[i]
				for range turns {
					for l, addr := range addrs {
						v, c := handshakeRate(b, addr, worker, sp, slice)
						n := v * slice.Seconds()
						r.n[l], r.sec[l], r.cpu[l] = r.n[l]+n, r.sec[l]+slice.Seconds(), r.cpu[l]+c*n
					}
				}
			}
		}
	}
	b.StopTimer()
	for i, sp := range sps {
		r := res[i]
		rate := func(l int) float64 { return r.n[l] / r.sec[l] }
		cpu := func(l int) float64 { return r.cpu[l] / max(r.n[l], 1) }
		rs, rv, rl, cs, cv, cl := rate(0), rate(1), rate(2), cpu(0), cpu(1), cpu(2)
		b.ReportMetric(rs, sp.label+"-static-hs/s")
		b.ReportMetric(rv/rs, sp.label+"-variable/static")
		b.ReportMetric(rl/rs, sp.label+"-lua/static")
		b.ReportMetric(cs/cl, sp.label+"-lua/static-cpu")
		b.Logf("%s: full TLS handshakes/s, 1 nginx worker, 4 client goroutines: static %.0f, variable path %.0f (%.2fx), lua cache %.0f (%.2fx); worker CPU per handshake static %.0f µs, variable %.0f µs (%.2fx), lua %.0f µs (%.2fx)",
			sp.label, rs, rv, rv/rs, rl, rl/rs, cs, cv, cs/cv, cl, cs/cl)
	}
}

// mem is nginx's memory (master and workers, KiB) by several measures:
//
//   - own (the figure of record): the physical pages nginx's processes map,
//     each counted once however many of them, or of the machine's other
//     processes, map it (from /proc/<pid>/pagemap: what nginx takes when it
//     runs alone). Nothing but nginx moves it.
//   - PSS: each page divided among all the processes mapping it. Its file
//     part (the nginx binary, libcrypto, libluajit...) moves whenever
//     another process on the machine maps or unmaps the same files
//     (another nginx, php-fpm, curl...): by up to 2.3 MiB here, with no
//     change in nginx.
//   - PssAnon: PSS's anonymous part (heaps, the Lua state, OpenSSL's
//     objects: what a certificate cache grows). Anonymous pages are shared
//     only between the master and the workers it forked, so this is exactly
//     nginx's anonymous memory, whatever else runs.
//   - RSS: every mapped page counted in full in each process (pages the
//     master and a worker share count twice).
//   - USS: pages mapped by one process only (Private_Clean + Private_Dirty):
//     a page drops out of it when any other process maps it.
type mem struct{ own, pss, pssAnon, pssFile, rss, uss int }

func memOf(b *testing.B, n *testNginx) mem {
	b.Helper()
	pids := append([]string{strconv.Itoa(n.pid())}, strings.Fields(n.workers(b))...)
	m := mem{own: ownPages(b, pids)}
	for _, p := range pids {
		data, err := os.ReadFile("/proc/" + p + "/smaps_rollup")
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Pss:":
				m.pss += v
			case "Pss_Anon:":
				m.pssAnon += v
			case "Pss_File:":
				m.pssFile += v
			case "Rss:":
				m.rss += v
			case "Private_Clean:", "Private_Dirty:":
				m.uss += v
			}
		}
	}
	if m.pssAnon == 0 {
		b.Fatal("smaps_rollup has no Pss_Anon (Linux >= 5.8 needed)")
	}
	return m
}

// ownPages is the memory (KiB) of the distinct physical pages that the
// processes pids map: each page's frame number from /proc/<pid>/pagemap
// (which only root sees), counted once.
func ownPages(b *testing.B, pids []string) int {
	b.Helper()
	page := uint64(os.Getpagesize())
	frames := map[uint64]struct{}{}
	for _, p := range pids {
		maps, err := os.ReadFile("/proc/" + p + "/maps")
		if err != nil {
			b.Fatal(err)
		}
		pm, err := os.Open("/proc/" + p + "/pagemap")
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(maps), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || (len(f) > 5 && f[5] == "[vsyscall]") {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				b.Fatalf("/proc/%s/maps: %q", p, line)
			}
			buf := make([]byte, (end-start)/page*8)
			if _, err := pm.ReadAt(buf, int64(start/page*8)); err != nil {
				b.Fatalf("/proc/%s/pagemap at %x: %v", p, start, err)
			}
			for i := 0; i < len(buf); i += 8 {
				e := binary.LittleEndian.Uint64(buf[i:])
				if e&(1<<63) == 0 { // not present
					continue
				}
				pfn := e & (1<<55 - 1)
				if pfn == 0 {
					b.Fatal("/proc/<pid>/pagemap hides page frame numbers: the memory benchmark must run as root")
				}
				frames[pfn] = struct{}{}
			}
		}
		pm.Close()
	}
	return len(frames) * int(page) / 1024
}

// steadyMem is nginx's memory measured the same way before and after the
// attaches: the median of 5 samples of each measure, each sample after 40
// handshakes on the warm name (its Lua heap and malloc in their usual
// state).
func steadyMem(b *testing.B, n *testNginx) mem {
	b.Helper()
	var v [6][]int
	for range 5 {
		for range 40 {
			if _, err := ServedLeaf(context.Background(), n.addr, "warm.bench.test", 5*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		m := memOf(b, n)
		for i, x := range []int{m.own, m.pss, m.pssAnon, m.pssFile, m.rss, m.uss} {
			v[i] = append(v[i], x)
		}
	}
	for i := range v {
		slices.Sort(v[i])
	}
	return mem{own: v[0][2], pss: v[1][2], pssAnon: v[2][2], pssFile: v[3][2], rss: v[4][2], uss: v[5][2]}
}

// BenchmarkMemory: nginx's PSS (and RSS, USS) before and after 1,000
// attaches (each checked by a handshake, so each certificate goes through
// the lua cache), in both modes.
func BenchmarkMemory(b *testing.B) {
	nodeBin(b)
	for _, mode := range modes {
		b.Run(string(mode), func(b *testing.B) {
			var growth float64
			for range b.N {
				n := startNginxCache(b, mode, "", envInt("HP_BENCH_CACHE_SIZE", 0))
				c, k := selfSigned(b, "warm.bench.test")
				if err := n.store.Attach(context.Background(), "warm.bench.test", c, k); err != nil {
					b.Fatal(err)
				}
				// Serve a while first: the worker's lazy allocations and
				// its Lua GC's cycles come with serving, not with names.
				for range 1000 {
					if _, err := ServedLeaf(context.Background(), n.addr, "warm.bench.test", 5*time.Second); err != nil {
						b.Fatal(err)
					}
				}
				before := steadyMem(b, n)
				attaches := envInt("HP_BENCH_MEMORY_ATTACHES", 1000)
				for i := range attaches {
					c, k := selfSigned(b, siteName(i))
					if err := n.store.Attach(context.Background(), siteName(i), c, k); err != nil {
						b.Fatal(err)
					}
				}
				after := steadyMem(b, n)
				// The figure of record: the growth of nginx's own pages
				// (each counted once, whatever else runs). PSS's growth
				// also carries any change in how many other processes map
				// nginx's files between the two measures (its file part's
				// move is reported); the anonymous growth (what the cache
				// adds) is reported against nginx's own size and its PSS.
				growth = float64(after.own-before.own) / float64(before.own)
				pct := func(a, b int) float64 { return 100 * float64(a-b) / float64(b) }
				anon := after.pssAnon - before.pssAnon
				b.ReportMetric(float64(before.own), "before-KiB")
				b.ReportMetric(100*growth, "growth-%")
				b.ReportMetric(float64(anon), "anon-growth-KiB")
				b.ReportMetric(100*float64(anon)/float64(before.pss), "anon-of-pss-%")
				b.ReportMetric(pct(after.pss, before.pss), "pss-growth-%")
				b.ReportMetric(pct(after.rss, before.rss), "rss-growth-%")
				b.ReportMetric(pct(after.uss, before.uss), "uss-growth-%")
				b.ReportMetric(float64(after.pssFile-before.pssFile), "pss-file-move-KiB")
				b.Logf("%s: nginx's own pages %d → %d KiB after %d attaches (%+.1f%%); anonymous +%d KiB (%.1f%% of own, %.1f%% of PSS before); PSS %d → %d KiB (%+.1f%%, of which file pages %+d KiB); RSS %d → %d KiB (%+.1f%%); USS %d → %d KiB (%+.1f%%)",
					mode, before.own, after.own, attaches, 100*growth, anon, 100*float64(anon)/float64(before.own), 100*float64(anon)/float64(before.pss),
					before.pss, after.pss, pct(after.pss, before.pss), after.pssFile-before.pssFile,
					before.rss, after.rss, pct(after.rss, before.rss), before.uss, after.uss, pct(after.uss, before.uss))
				n.stop()
			}
		})
	}
}
