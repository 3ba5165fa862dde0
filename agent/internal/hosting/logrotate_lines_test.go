package hosting_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// shippedLogrotateFor is the packaged logrotate file made to run against a
// test's hosting root: its paths under root, its postrotate the agent
// binary of this tree with a config file naming root (as the packaged
// agent.json does the default one). It returns the file and a state file.
func shippedLogrotateFor(t *testing.T, root string) (conf, state string) {
	t.Helper()
	b, err := os.ReadFile(shippedLogrotate)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const defaultRoot = "/var/lib/hostplane/hosting/"
	for _, want := range []string{defaultRoot + "nginx/logs/*.log", defaultRoot + "fpm/*/error.log"} {
		if !strings.Contains(s, want) {
			t.Fatalf("%s: want the logs %s:\n%s", shippedLogrotate, want, s)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("{%q: %q}\n", "hosting-root", root)), 0o600); err != nil {
		t.Fatal(err)
	}
	s = strings.ReplaceAll(s, defaultRoot, root+"/")
	s = strings.ReplaceAll(s, "/usr/sbin/hostplane-agent ", framework.AgentBinary(t)+" ")
	s = strings.ReplaceAll(s, "/etc/hostplane/agent.json", cfg)
	conf = filepath.Join(dir, "hostplane-agent")
	if err := os.WriteFile(conf, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, filepath.Join(dir, "state")
}

// startTestFPM starts a PHP-FPM master (one www-data pool) under the
// layout's fpm/<version>/, as the agent lays it out, and returns its pid.
func startTestFPM(t *testing.T, l hosting.Layout) (version string, pid int) {
	t.Helper()
	versions, bins := hosting.PHPVersions(hosting.DefaultConfig().FPMGlob)
	if len(versions) == 0 {
		t.Fatalf("no php-fpm: %s", hostenv.Install)
	}
	version = versions[len(versions)-1]
	dir := l.FPMDir(version)
	if err := os.MkdirAll(filepath.Join(dir, "pool.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[global]\npid = %[1]s/php-fpm.pid\nerror_log = %[1]s/error.log\ndaemonize = yes\ninclude = %[1]s/pool.d/*.conf\n", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	pool := fmt.Sprintf("[t]\nuser = www-data\ngroup = www-data\nlisten = %s/t.sock\npm = static\npm.max_children = 1\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "pool.d", "t.conf"), []byte(pool), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins[version], "-y", conf).CombinedOutput(); err != nil {
		t.Fatalf("php-fpm: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "php-fpm.pid")); err == nil {
			_ = exec.Command("kill", "-QUIT", strings.TrimSpace(string(b))).Run()
			time.Sleep(300 * time.Millisecond)
		}
	})
	waitFor(t, "php-fpm's pid file", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "php-fpm.pid"))
		if err == nil {
			_, err = fmt.Sscan(string(b), &pid)
		}
		return err == nil && pid > 0
	})
	return version, pid
}

// readLogs returns the text of every file of a log (name, name.1,
// name.2.gz, ...), keyed by file name.
func readLogs(t *testing.T, name string) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(name + "*")
	out := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			z, err := gzip.NewReader(fh)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			r = z
		}
		b, err := io.ReadAll(r)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

// requestRE is a request's path in an access log line.
var requestRE = regexp.MustCompile(`"GET (/w-[0-9]+-[0-9]+) HTTP/1\.1"`)

// The packaged logrotate file, run by the real logrotate (its own state
// file, -f) six times while four clients send requests to a real nginx
// as fast as it answers, loses no access log line and writes none twice:
// every request answered is in exactly one of access.log, access.log.1 and
// the compressed older files. A real PHP-FPM master's error.log is rotated
// with it, and the master writes to the new file afterwards. copytruncate
// (the file up to hosting63) fails here: the lines nginx writes between
// logrotate's copy and its truncate are in no file.
func TestShippedLogrotateLosesNoLine(t *testing.T) {
	hostenv.Need(t, "nginx", "logrotate")
	n, addr := startNginx(t)
	version, fpm := startTestFPM(t, n.L)
	conf, state := shippedLogrotateFor(t, n.L.Root)

	var sent sync.Map // path → true, for each request answered
	var answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("/w-%d-%d", g, i)
				req, _ := http.NewRequest("GET", "http://"+addr+p, nil)
				req.Host = "x"
				res, err := c.Do(req)
				if err != nil {
					errs <- fmt.Errorf("GET %s: %v", p, err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				sent.Store(p, true)
				answered.Add(1)
			}
		}()
	}
	const rotations = 6
	for r := range rotations {
		for before := answered.Load(); answered.Load() < before+200; {
			time.Sleep(5 * time.Millisecond)
		}
		if out, err := exec.Command("logrotate", "-f", "-s", state, conf).CombinedOutput(); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("rotation %d: logrotate -f: %v\n%s", r+1, err, out)
		}
	}
	for before := answered.Load(); answered.Load() < before+200; {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var paths []string
	sent.Range(func(k, _ any) bool { paths = append(paths, k.(string)); return true })

	logs := n.L.NginxLogs()
	count := func() (map[string][]string, map[string]string) {
		files := readLogs(t, filepath.Join(logs, "access.log"))
		in := map[string][]string{}
		for name, text := range files {
			sc := bufio.NewScanner(strings.NewReader(text))
			for sc.Scan() {
				if m := requestRE.FindStringSubmatch(sc.Text()); m != nil {
					in[m[1]] = append(in[m[1]], name)
				}
			}
		}
		return in, files
	}
	// A worker writes a request's line after its answer: the last ones may
	// still come.
	var in map[string][]string
	var files map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		in, files = count()
		if !slices.ContainsFunc(paths, func(p string) bool { return len(in[p]) == 0 }) || time.Now().After(deadline) {
			break
		}
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	t.Logf("%d requests answered across %d rotations; access log files %v", len(paths), rotations, names)
	if len(files) != rotations+1 {
		t.Errorf("access log files %v, want the live one and %d rotated", names, rotations)
	}
	var lost, twice []string
	for _, p := range paths {
		switch k := len(in[p]); {
		case k == 0:
			lost = append(lost, p)
		case k > 1:
			twice = append(twice, fmt.Sprintf("%s in %v", p, in[p]))
		}
	}
	if len(lost) > 0 || len(twice) > 0 {
		slices.Sort(lost)
		t.Fatalf("of %d requests answered, %d are in no access log file (e.g. %v) and %d in more than one (e.g. %v)",
			len(paths), len(lost), lost[:min(5, len(lost))], len(twice), twice[:min(5, len(twice))])
	}

	// PHP-FPM: rotated with them, its master writes to the new error.log.
	fpmLog := filepath.Join(n.L.FPMDir(version), "error.log")
	reopened := 0
	fl := readLogs(t, fpmLog)
	for _, text := range fl {
		reopened += strings.Count(text, "error log file re-opened")
	}
	if reopened != rotations || !strings.Contains(fl["error.log"], "error log file re-opened") {
		t.Errorf("PHP-FPM's error.log: %d reopens across %d files, want one per rotation (%d), the last in the live file: %q", reopened, len(fl), rotations, fl)
	}
	if fd2, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", fpm)); err != nil || fd2 != fpmLog {
		t.Errorf("PHP-FPM's master writes its messages to %q (%v), want %s", fd2, err, fpmLog)
	}
}

// Run as the hourly timer runs it (no -f, one state file across runs), the
// packaged file leaves a small log that was rotated today alone, and
// rotates one that has passed its maxsize (100M) at once, not at the next
// daily rotation: the hourly run is what keeps a busy node's log near the
// cap. nginx then writes to the new file.
func TestShippedLogrotateMaxsizeBeforeTheDayIsOver(t *testing.T) {
	hostenv.Need(t, "nginx", "logrotate")
	n, addr := startNginx(t)
	conf, state := shippedLogrotateFor(t, n.L.Root)
	access := filepath.Join(n.L.NginxLogs(), "access.log")
	get := func(p string) {
		if code, _ := hostenv.Get(t, addr, "x", p); code != 421 {
			t.Fatalf("GET %s: %d", p, code)
		}
		waitFor(t, p+" in access.log", func() bool { b, _ := os.ReadFile(access); return strings.Contains(string(b), p) })
	}
	hourly := func(run string) string {
		out, err := exec.Command("logrotate", "-v", "-s", state, conf).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: logrotate: %v\n%s", run, err, out)
		}
		return string(out)
	}
	get("/first")
	day := time.Now().YearDay()
	hourly("first run") // the state file learns the logs (today)
	get("/second")
	if out := hourly("second run"); fileExists(access+".1") && time.Now().YearDay() == day {
		t.Fatalf("a small log was rotated again within the day:\n%s", out)
	}
	if fileExists(access + ".1") {
		t.Skip("the day changed between the runs: the daily rotation was due")
	}
	if err := os.Truncate(access, 101<<20); err != nil { // past maxsize (sparse)
		t.Fatal(err)
	}
	if out := hourly("third run"); !fileExists(access + ".1") {
		t.Fatalf("a log past maxsize was not rotated by the next run:\n%s", out)
	}
	get("/after")
	if b, _ := os.ReadFile(access); !strings.Contains(string(b), "/after") || strings.Contains(string(b), "/first") {
		t.Fatalf("after the rotation access.log holds %q", b)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// A PHP-FPM reload (a pool changed) during which logrotate renames the
// master's error.log and creates a new one (the packaged file's create,
// before its postrotate) still ends when the re-executed master is ready,
// whichever of the two files its "ready" went to: the wait reads the log it
// had open before the signal and the new one from its start. Before, it
// read the path from the old size on, found nothing in the new file, and
// failed after 20 s with "the reload did not finish".
func TestFPMReloadAcrossALogRotation(t *testing.T) {
	hostenv.Need(t, "logrotate")
	root, _ := hostenv.Root(t)
	f := &hosting.FPM{L: hosting.Layout{Root: root}, Glob: hosting.DefaultConfig().FPMGlob}
	versions, _ := hosting.PHPVersions(f.Glob)
	if len(versions) == 0 {
		t.Fatalf("no php-fpm: %s", hostenv.Install)
	}
	version := versions[len(versions)-1]
	site := f.L.Site("www-data") // a pool is named after its user
	for _, d := range []string{"public", "private", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(site, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := hosting.PoolParams{User: "www-data", Group: "www-data", WebGroup: "www-data", Socket: f.L.Socket("www-data"),
		Site: site, MaxChildren: 2, MemoryMiB: 64, MaxExecutionSeconds: 30, UploadMiB: 8, RequestTerminateSecond: 35}
	ctx := hostenv.Ctx(t)
	if err := f.PutPool(ctx, version, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.RemovePool(context.Background(), p.User) })
	logf := filepath.Join(f.L.FPMDir(version), "error.log")
	rotated := false
	f.SetAfterReloadSignal(func() {
		if err := os.Rename(logf, logf+".1"); err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(logf, nil, 0o600); err != nil {
			t.Error(err)
		}
		rotated = true
	})
	p.MaxChildren = 3
	start := time.Now()
	if err := f.PutPool(ctx, version, p); err != nil {
		t.Fatalf("reload across a rotation of the error log (after %v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	if !rotated {
		t.Fatal("the scenario did not happen: no reload signal")
	}
	t.Logf("reloaded in %v", time.Since(start).Round(time.Millisecond))
}
