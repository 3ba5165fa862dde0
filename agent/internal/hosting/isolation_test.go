package hosting_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// isoPHP is what a tenant's script tries, chosen by ?t=; each line of its
// answer says what PHP returned ("refused:..." when the call threw, as a
// disabled function does).
const isoPHP = `<?php
header('Content-Type: text/plain');
$site = dirname(__DIR__); $sites = dirname($site);
function call($f, ...$a) {
  try { $r = $f(...$a); return $r === false ? 'false' : (is_string($r) ? $r : json_encode($r)); }
  catch (\Throwable $e) { return 'refused:' . $e->getMessage(); }
}
function listdir($d) { $r = @scandir($d); return $r === false ? 'DENIED' : implode(',', $r); }
function readf($f) { $r = @file_get_contents($f); return $r === false ? 'DENIED' : $r; }
switch ($_GET['t'] ?? '') {
case 'page': echo "page of ", get_current_user(), "\n"; break;
case 'scandir':
  foreach (['/home', $sites, '/', '/etc', '/proc'] as $d) { echo "scandir $d=", listdir($d), "\n"; }
  $g = @glob($sites . '/*'); echo "glob=", $g ? implode(',', $g) : 'DENIED', "\n";
  try { $n = []; foreach (new DirectoryIterator('glob://' . $sites . '/*') as $f) { $n[] = $f->getFilename(); }
    echo "globwrapper=", implode(',', $n), "\n"; } catch (\Throwable $e) { echo "globwrapper=DENIED\n"; }
  try { $n = []; foreach (new DirectoryIterator($sites) as $f) { $n[] = $f->getFilename(); }
    echo "diriter=", implode(',', $n), "\n"; } catch (\Throwable $e) { echo "diriter=DENIED\n"; }
  break;
case 'read':
  $f = $_GET['f'];
  echo "get=", readf($f), "\n";
  echo "fopen=", ($h = @fopen($f, 'r')) ? fread($h, 200) : 'DENIED', "\n";
  try { $o = new SplFileObject($f); echo "spl=", $o->fgets(), "\n"; } catch (\Throwable $e) { echo "spl=DENIED\n"; }
  echo "include="; if (!@include($f)) { echo "DENIED"; } echo "\n";
  echo "copy=", @copy($f, $site . '/tmp/copied') ? readf($site . '/tmp/copied') : 'DENIED', "\n";
  echo "symlink=", @symlink($f, $site . '/tmp/link') ? readf($site . '/tmp/link') : 'DENIED', "\n";
  echo "write=", @file_put_contents(dirname($f) . '/hp-written.php', 'x') === false ? 'DENIED' : 'WROTE', "\n";
  break;
case 'fastcgi':
  // Another account's pool socket: a FastCGI request there runs code as that account.
  $s = @stream_socket_client('unix://' . $_GET['sock'], $errno, $errstr, 2);
  echo "connect=", $s ? 'CONNECTED' : 'DENIED:' . $errstr, "\n";
  break;
case 'exec':
  echo "exec=", call('exec', 'id'), "\n";
  echo "shell_exec=", call('shell_exec', 'id'), "\n";
  echo "system=", call('system', 'id'), "\n";
  echo "passthru=", call('passthru', 'id'), "\n";
  try { $r = ` + "`id`" + `; echo "backtick=", $r, "\n"; } catch (\Throwable $e) { echo "backtick=refused:", $e->getMessage(), "\n"; }
  try { $p = popen('id', 'r'); echo "popen=", fread($p, 200), "\n"; } catch (\Throwable $e) { echo "popen=refused:", $e->getMessage(), "\n"; }
  try { $p = proc_open('id', [1 => ['pipe', 'w']], $pipes); echo "proc_open=", stream_get_contents($pipes[1]), "\n"; }
  catch (\Throwable $e) { echo "proc_open=refused:", $e->getMessage(), "\n"; }
  echo "pcntl_fork=", call('pcntl_fork'), "\n";
  echo "putenv=", call('putenv', 'LD_PRELOAD=' . $site . '/tmp/x.so'), "\n";
  echo "posix_kill=", call('posix_kill', getmypid(), 0), "\n";
  echo "shm_attach=", call('shm_attach', 0x4850, 1024), "\n";
  echo "sem_get=", call('sem_get', 0x4850), "\n";
  echo "msg_get_queue=", call('msg_get_queue', 0x4850), "\n";
  echo "shmop_open=", call('shmop_open', 0x4851, 'c', 0644, 1024), "\n";
  break;
case 'names':
  echo "getpwnam=", call('posix_getpwnam', $_GET['b']), "\n";
  echo "getpwuid=", call('posix_getpwuid', (int)$_GET['uid']), "\n";
  echo "opcache_status=", call('opcache_get_status', true), "\n";
  echo "opcache_cached=", call('opcache_is_script_cached', $_GET['bfile']), "\n";
  break;
case 'iniset':
  echo "ini_set=", call('ini_set', 'open_basedir', '/'), "\n";
  echo "disable_functions=", call('ini_set', 'disable_functions', ''), "\n";
  echo "memory_limit=", call('ini_set', 'memory_limit', '-1'), "\n";
  echo "max_execution_time=", call('ini_set', 'max_execution_time', '0'), "\n";
  echo "set_time_limit=", call('set_time_limit', 0), "\n";
  echo "limits=", ini_get('max_execution_time'), ",", ini_get('memory_limit'), "\n";
  // The classic bypass: open_basedir '..' from a subdirectory, walk up, widen.
  @mkdir(__DIR__ . '/bp'); chdir(__DIR__ . '/bp');
  ini_set('open_basedir', '..'); for ($i = 0; $i < 12; $i++) { @chdir('..'); } ini_set('open_basedir', '/');
  echo "open_basedir=", ini_get('open_basedir'), "\n";
  echo "passwd=", readf('/etc/passwd'), "\n";
  echo "scandir=", listdir($sites), "\n";
  break;
case 'loop': set_time_limit(0); ignore_user_abort(true); echo "LOOP-START\n"; while (true) {} echo "LOOP-END\n"; break;
case 'sleep': set_time_limit(0); ignore_user_abort(true); echo "SLEEP-START\n"; for ($i = 0; $i < 40; $i++) { sleep(1); } echo "SLEEP-END\n"; break;
case 'mem':
  echo "memory_limit=", call('ini_set', 'memory_limit', '1024M'), "\n";
  $a = []; for ($i = 0; $i < 100; $i++) { $a[] = str_repeat('x', 1 << 20); } echo "MEM-END ", count($a), "\n"; break;
case 'files':
  $h = []; for ($i = 0; $i < 1500; $i++) { $f = @fopen(__FILE__, 'r'); if (!$f) { break; } $h[] = $f; }
  echo "files=", count($h), "\nhard=", posix_getrlimit()['hard openfiles'], "\n"; break;
case 'upload':
  $f = $_FILES['f'] ?? null;
  if (!$f || $f['error'] !== UPLOAD_ERR_OK) { echo "upload=FAILED:", json_encode($f), "\n"; break; }
  echo "tmpdir=", dirname($f['tmp_name']), "\n";
  echo "moved=", move_uploaded_file($f['tmp_name'], $site . '/private/upload.txt') ? readf($site . '/private/upload.txt') : 'FAILED', "\n";
  break;
case 'session':
  session_start(); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
  echo "n=", $_SESSION['n'], "\nsave_path=", session_save_path(), "\nid=", session_id(), "\n"; break;
case 'tmp':
  $t = tempnam(sys_get_temp_dir(), 'hp'); echo "tempnam=", $t, "\n"; @unlink($t);
  $h = tmpfile(); echo "tmpfile=", $h ? stream_get_meta_data($h)['uri'] : 'FAILED', "\n"; break;
}
`

// userIniPHP runs under a directory whose .user.ini tries to widen what the
// pool allows (precision is the control: a per-directory value it may set).
const userIniPHP = `<?php
header('Content-Type: text/plain');
echo "precision=", ini_get('precision'), "\n";
echo "open_basedir=", ini_get('open_basedir'), "\n";
echo "memory_limit=", ini_get('memory_limit'), "\n";
$r = @file_get_contents('/etc/passwd'); echo "passwd=", $r === false ? 'DENIED' : $r, "\n";
$r = @scandir(dirname(__DIR__, 3)); echo "scandir=", $r === false ? 'DENIED' : implode(',', $r), "\n";
try { $r = exec('id'); echo "exec=", $r, "\n"; } catch (\Throwable $e) { echo "exec=refused:", $e->getMessage(), "\n"; }
`

const userIni = `precision = 7
open_basedir = /
disable_functions =
memory_limit = -1
max_execution_time = 0
`

// isoPlan: short limits, so the runaway scripts end quickly.
var isoPlan = api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 32, MaxExecutionSeconds: 2, UploadMiB: 2, DiskMiB: 100}

// Two tenants on one node (real nginx, PHP-FPM, sshd): what tenant A's PHP
// tries against B, the node and the limits fails, as seen in the HTTP
// answer; A's own page, uploads and sessions work.
func TestPHPTenantIsolation(t *testing.T) {
	e := hostingtest.NewNode(t)
	a, b := newAcct(e, "a"), newAcct(e, "b")
	for _, x := range []acct{a, b} {
		in := x.input(t)
		in.Plan = isoPlan
		if _, err := e.Node.Create(hostenv.Ctx(t), in, noStep); err != nil {
			t.Fatal(err)
		}
	}
	bIndex := filepath.Join(e.Node.L.Docroot(b.user), "index.php")
	bSecret := filepath.Join(e.Node.L.Site(b.user), "private", "secret.txt")
	putFiles(t, e, b, map[string]string{"/public/index.php": `<?php echo "B-PAGE-SECRET";`, "/private/secret.txt": "B-PRIVATE-SECRET"})
	putFiles(t, e, a, map[string]string{"/public/iso.php": isoPHP, "/public/ui/.user.ini": userIni, "/public/ui/index.php": userIniPHP})
	// B's page runs (and is in OPcache, shared by every pool of the master)
	// before A looks: OPcache does not cache a file changed in the last 2 s
	// (opcache.file_update_protection), so B's is made an hour old.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(bIndex, old, old); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if code, body := hostenv.Get(t, e.HTTPAddr, b.domain, "/"); code != 200 || body != "B-PAGE-SECRET" {
			t.Fatalf("B's page: %d %q", code, body)
		}
	}
	get := func(t *testing.T, kv ...string) (int, string) {
		t.Helper()
		return hostenv.Get(t, e.HTTPAddr, a.domain, "/iso.php"+strings.TrimPrefix(q(kv...), "/index.php"))
	}
	leaks := []string{"B-PAGE-SECRET", "B-PRIVATE-SECRET", "root:x:0", b.user}
	noLeak := func(t *testing.T, body string) {
		t.Helper()
		for _, s := range leaks {
			if strings.Contains(body, s) {
				t.Errorf("A's answer shows %q:\n%s", s, body)
			}
		}
	}
	// leakFree is get's body, failing the test unless it is a 200 that
	// shows none of the leaks.
	leakFree := func(t *testing.T, kv ...string) string {
		t.Helper()
		code, body := get(t, kv...)
		if code != 200 {
			t.Fatalf("%v: %d %q", kv, code, body)
		}
		noLeak(t, body)
		return body
	}
	line := func(body, key string) string {
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, key+"="); ok {
				return v
			}
		}
		return "<no " + key + " line>"
	}

	t.Run("own page", func(t *testing.T) {
		if code, body := get(t, "t", "page"); code != 200 || body != "page of "+a.user+"\n" {
			t.Fatalf("%d %q", code, body)
		}
	})
	t.Run("scandir", func(t *testing.T) {
		body := leakFree(t, "t", "scandir")
		for _, k := range []string{"scandir /home", "scandir " + filepath.Join(e.Root, "sites"), "scandir /", "scandir /etc",
			"scandir /proc", "glob", "diriter"} {
			if v := line(body, k); v != "DENIED" {
				t.Errorf("%s: %q", k, v)
			}
		}
		// The glob:// wrapper filters what it finds by open_basedir: nothing.
		if v := line(body, "globwrapper"); v != "" && v != "DENIED" {
			t.Errorf("globwrapper: %q", v)
		}
	})
	t.Run("read", func(t *testing.T) {
		for _, f := range []string{bIndex, bSecret, "/etc/passwd"} {
			body := leakFree(t, "t", "read", "f", f)
			for _, k := range []string{"get", "fopen", "spl", "include", "copy", "symlink", "write"} {
				if v := line(body, k); v != "DENIED" {
					t.Errorf("%s of %s: %q", k, f, v)
				}
			}
		}
	})
	t.Run("other pool's socket", func(t *testing.T) {
		code, body := get(t, "t", "fastcgi", "sock", e.Node.L.Socket(b.user))
		if code != 200 || !strings.HasPrefix(line(body, "connect"), "DENIED:") {
			t.Fatalf("%d %q", code, body)
		}
	})
	t.Run("programs and IPC", func(t *testing.T) {
		code, body := get(t, "t", "exec")
		if code != 200 {
			t.Fatalf("%d %q", code, body)
		}
		if strings.Contains(body, "uid=") {
			t.Errorf("a program ran:\n%s", body)
		}
		for _, k := range []string{"exec", "shell_exec", "system", "passthru", "backtick", "popen", "proc_open", "pcntl_fork",
			"putenv", "posix_kill", "shm_attach", "sem_get", "msg_get_queue", "shmop_open"} {
			if v := line(body, k); !strings.HasPrefix(v, "refused:Call to undefined function") {
				t.Errorf("%s: %q", k, v)
			}
		}
	})
	t.Run("other tenants' names", func(t *testing.T) {
		bf := filepath.Join(e.Node.L.Docroot(b.user), "index.php")
		body := leakFree(t, "t", "names", "b", b.user, "uid", uidOf(t, b.user), "bfile", bf)
		for _, k := range []string{"getpwnam", "getpwuid", "opcache_status", "opcache_cached"} {
			if v := line(body, k); !strings.HasPrefix(v, "refused:") {
				t.Errorf("%s: %q", k, v)
			}
		}
	})
	t.Run("ini_set", func(t *testing.T) {
		body := leakFree(t, "t", "iniset")
		for _, k := range []string{"ini_set", "disable_functions", "memory_limit", "max_execution_time", "set_time_limit"} {
			if v := line(body, k); v != "false" {
				t.Errorf("%s: %q (want false: refused)", k, v)
			}
		}
		if v := line(body, "limits"); v != "2,32M" {
			t.Errorf("max_execution_time,memory_limit: %q, want the plan's 2,32M", v)
		}
		s := e.Node.L.Site(a.user)
		if v := line(body, "open_basedir"); v != s+"/public:"+s+"/private:"+s+"/tmp" {
			t.Errorf("open_basedir after the bypass: %q", v)
		}
		if line(body, "passwd") != "DENIED" || line(body, "scandir") != "DENIED" {
			t.Errorf("after the bypass:\n%s", body)
		}
	})
	t.Run(".user.ini", func(t *testing.T) {
		code, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/ui/index.php")
		if code != 200 {
			t.Fatalf("%d %q", code, body)
		}
		noLeak(t, body)
		if line(body, "precision") != "7" {
			t.Fatalf(".user.ini was not read (precision):\n%s", body)
		}
		s := e.Node.L.Site(a.user)
		if line(body, "open_basedir") != s+"/public:"+s+"/private:"+s+"/tmp" || line(body, "memory_limit") != "32M" ||
			line(body, "passwd") != "DENIED" || line(body, "scandir") != "DENIED" ||
			!strings.HasPrefix(line(body, "exec"), "refused:") {
			t.Errorf(".user.ini widened the pool:\n%s", body)
		}
	})
	t.Run("infinite loop", func(t *testing.T) {
		// CPU time: max_execution_time (2 s) ends it with a fatal error
		// (500), or request_terminate_timeout (7 s of wall time) kills the
		// worker first on a loaded machine (502). Either way it ends.
		start := time.Now()
		code, body := get(t, "t", "loop")
		if (code != 500 && code != 502) || strings.Contains(body, "LOOP-END") {
			t.Fatalf("%d %q", code, body)
		}
		t.Logf("busy loop: %d after %v", code, time.Since(start).Round(time.Millisecond))
	})
	t.Run("sleeping loop", func(t *testing.T) {
		// Wall time (sleep is not CPU time): request_terminate_timeout
		// (2+5 s) kills the worker; nginx answers 502.
		start := time.Now()
		code, body := get(t, "t", "sleep")
		if code != 502 || strings.Contains(body, "SLEEP-END") {
			t.Fatalf("%d %q", code, body)
		}
		if d := time.Since(start); d > 14*time.Second {
			t.Fatalf("ended after %v", d)
		} else {
			t.Logf("sleeping loop: %d after %v", code, d.Round(time.Millisecond))
		}
	})
	t.Run("memory", func(t *testing.T) {
		code, body := get(t, "t", "mem")
		if code == 200 || strings.Contains(body, "MEM-END") {
			t.Fatalf("100 MiB with a 32 MiB limit: %d %q", code, body)
		}
	})
	t.Run("open files", func(t *testing.T) {
		code, body := get(t, "t", "files")
		if n, _ := strconv.Atoi(line(body, "files")); code != 200 || n < 1000 || n >= 1024 || line(body, "hard") != "1024" {
			t.Fatalf("%d %q (rlimit_files 1024)", code, body)
		}
	})
	t.Run("page after the runaways", func(t *testing.T) {
		if code, body := get(t, "t", "page"); code != 200 || body != "page of "+a.user+"\n" {
			t.Fatalf("%d %q", code, body)
		}
	})
	t.Run("upload", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("f", "hello.txt")
		_, _ = io.WriteString(fw, "uploaded by A")
		_ = mw.Close()
		req, _ := http.NewRequest("POST", "http://"+e.HTTPAddr+"/iso.php?t=upload", &buf)
		req.Host = a.domain
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		tmp := filepath.Join(e.Node.L.Site(a.user), "tmp")
		if res.StatusCode != 200 || line(string(body), "tmpdir") != tmp || line(string(body), "moved") != "uploaded by A" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	})
	t.Run("session", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
		var id string
		for i := 1; i <= 2; i++ {
			// The jar keys cookies by the URL's host, the same each time.
			code, _, body := fetch(t, c, "http://"+e.HTTPAddr, a.domain, "/iso.php?t=session")
			if code != 200 || line(body, "n") != string(rune('0'+i)) {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
			id = line(body, "id")
		}
		f := filepath.Join(e.Node.L.Site(a.user), "tmp", "sess_"+id)
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uidOf(t, a.user) != itoa(uid) || st.Mode().Perm() != 0o600 {
			t.Fatalf("session file %s: uid %d mode %v", f, uid, st.Mode())
		}
		dir, _ := os.Stat(filepath.Dir(f))
		if dir.Mode().Perm() != 0o700 || itoa(dir.Sys().(*syscall.Stat_t).Uid) != uidOf(t, a.user) {
			t.Fatalf("tmp dir: %v", dir.Mode())
		}
	})
	t.Run("temporary files", func(t *testing.T) {
		code, body := get(t, "t", "tmp")
		tmp := filepath.Join(e.Node.L.Site(a.user), "tmp") + "/"
		if code != 200 || !strings.HasPrefix(line(body, "tempnam"), tmp) || !strings.HasPrefix(line(body, "tmpfile"), tmp) {
			t.Fatalf("%d %q", code, body)
		}
	})
}

func uidOf(t *testing.T, name string) string {
	t.Helper()
	out, err := hostenv.RunAs(t, name, "id -u")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }
