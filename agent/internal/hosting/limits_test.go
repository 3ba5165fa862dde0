package hosting_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/agent/internal/seed"
	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// uploadPHP saves the uploaded file f as private/<n> and says its size as
// PHP saw it; without a file it says why (PHP's upload error, or nothing
// received).
const uploadPHP = `<?php
$n = preg_replace('/[^a-z0-9]/', '', $_GET['n'] ?? 'x');
$f = $_FILES['f'] ?? null;
if (!$f) { echo "nofile\n"; exit; }
if ($f['error'] !== UPLOAD_ERR_OK) { echo "error=", $f['error'], "\n"; exit; }
if (!move_uploaded_file($f['tmp_name'], dirname(__DIR__) . '/private/' . $n)) { echo "move failed\n"; exit; }
echo "saved=", $f['size'], "\n";
`

// createPlan creates account a on plan p and puts files (path → content)
// into its home over SFTP.
func createPlan(t *testing.T, e *hostingtest.Env, a acct, p func(*hosting.CreateInput), files map[string]string) {
	t.Helper()
	in := a.input(t)
	p(&in)
	if _, err := e.Node.Create(hostenv.Ctx(t), in, noStep); err != nil {
		t.Fatal(err)
	}
	c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for path, content := range files {
		if err := hostenv.Put(c, path, content); err != nil {
			t.Fatal(err)
		}
	}
}

// upload posts a file of size bytes to /up.php?n=name on host as a browser
// form does (declared length), or chunked (no Content-Length), and returns
// the status and body.
func upload(t *testing.T, addr, host, name string, size int, chunked bool) (int, string) {
	t.Helper()
	return uploadTo(t, &http.Client{Timeout: 60 * time.Second}, "http://"+addr, host, name, size, chunked)
}

// uploadTo is upload to base ("http://addr" or "https://addr") with c.
func uploadTo(t *testing.T, c *http.Client, base, host, name string, size int, chunked bool) (int, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, err := w.CreateFormFile("f", name+".bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(bytes.Repeat([]byte{'u'}, size)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var body io.Reader = bytes.NewReader(b.Bytes())
	if chunked {
		body = io.MultiReader(body) // no length: sent chunked
	}
	req, _ := http.NewRequest("POST", base+"/up.php?n="+name, body)
	req.Host = host
	req.Header.Set("Content-Type", w.FormDataContentType())
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s (%d bytes, chunked %v): %v", host, size, chunked, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(rb)
}

// Each account's plan sets how large an upload nginx lets through to its
// PHP (client_max_body_size = upload_mib, PHP's post_max_size): two accounts
// on different plans on one node, each reached by its primary domain and by
// a second host name, each get their own limit, declared or chunked; a
// file just under the limit is saved whole by PHP, one over it is a 413
// from nginx and never reaches PHP. A PHP request that runs longer than
// nginx's default 60 s read timeout but within its plan finishes.
func TestPlanLimitsInNginx(t *testing.T) {
	e := hostingtest.NewNode(t)
	const mib = 1 << 20
	small, big := newAcct(e, "s"), newAcct(e, "b")
	createPlan(t, e, small, func(in *hosting.CreateInput) { in.Plan.UploadMiB = 2 }, map[string]string{"/public/up.php": uploadPHP})
	createPlan(t, e, big, func(in *hosting.CreateInput) { in.Plan.UploadMiB = 5 }, map[string]string{"/public/up.php": uploadPHP})
	// A second host name of each account (as a custom domain is attached).
	alias := map[string]string{small.user: "alias-" + small.domain, big.user: "alias-" + big.domain}
	for u, h := range alias {
		if err := e.Node.L.SetHost(h, u); err != nil {
			t.Fatal(err)
		}
	}

	// A long request runs meanwhile: a plan of 61 s (the pool ends a request
	// at 66 s), a script that sleeps 62 s (sleep does not count towards
	// max_execution_time on Linux: the wall-clock limit is the pool's).
	long := newAcct(e, "l")
	createPlan(t, e, long, func(in *hosting.CreateInput) { in.Plan.MaxExecutionSeconds = 61 },
		map[string]string{"/public/slow.php": "<?php sleep(62); echo \"done\\n\";"})
	type result struct {
		code int
		body string
		took time.Duration
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		start := time.Now()
		req, _ := http.NewRequest("GET", "http://"+e.HTTPAddr+"/slow.php", nil)
		req.Host = long.domain
		res, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
		if err != nil {
			slow <- result{err: err, took: time.Since(start)}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- result{code: res.StatusCode, body: string(b), took: time.Since(start)}
	}()

	saved := func(a acct, name string) int64 {
		st, err := os.Stat(filepath.Join(e.Node.L.Site(a.user), "private", name))
		if err != nil {
			return -1
		}
		return st.Size()
	}
	i := 0
	for _, c := range []struct {
		a       acct
		size    int
		chunked bool
		ok      bool
	}{
		{small, 2*mib - 64<<10, false, true},
		{small, 2*mib + 64<<10, false, false},
		{small, 2*mib - 64<<10, true, true},
		{small, 2*mib + 64<<10, true, false},
		// The larger plan of the other account does not raise this one's.
		{small, 5*mib - 64<<10, false, false},
		{small, 5*mib - 64<<10, true, false},
		{big, 2*mib + 64<<10, false, true},
		{big, 5*mib - 64<<10, false, true},
		{big, 5*mib - 64<<10, true, true},
		{big, 5*mib + 64<<10, false, false},
		{big, 5*mib + 64<<10, true, false},
	} {
		for _, host := range []string{c.a.domain, alias[c.a.user]} {
			i++
			name := "f" + strconv.Itoa(i)
			code, body := upload(t, e.HTTPAddr, host, name, c.size, c.chunked)
			what := fmt.Sprintf("%s: %d bytes (chunked %v)", host, c.size, c.chunked)
			if c.ok {
				if code != 200 || body != "saved="+strconv.Itoa(c.size)+"\n" || saved(c.a, name) != int64(c.size) {
					t.Errorf("%s: %d %q, saved %d bytes; want the whole file saved", what, code, body, saved(c.a, name))
				}
				continue
			}
			if code != 413 || !strings.Contains(body, "413 Request Entity Too Large") || saved(c.a, name) != -1 {
				t.Errorf("%s: %d %q, saved %d; want nginx's 413 and nothing saved", what, code, body, saved(c.a, name))
			}
		}
	}

	r := <-slow
	if r.err != nil || r.code != 200 || r.body != "done\n" {
		log, _ := os.ReadFile(filepath.Join(e.Node.L.NginxDir(), "logs", "error.log"))
		t.Errorf("a 62 s request on a 61 s plan: %d %q %v after %v; want 200 done\n%s", r.code, r.body, r.err, r.took.Round(time.Second), log)
	}
}

// The regular expression nginx uses to refuse a declared body over the
// limit matches exactly the numbers above it.
func TestGreaterThanRegex(t *testing.T) {
	for _, n := range []int64{0, 1, 9, 10, 99, 100, 1 << 20, 2 << 20, 33554432, 4096 << 20, 999999, 1000000} {
		re := regexp.MustCompile(hosting.GreaterThanRegex(n))
		for _, d := range []int64{-n - 1, -n, -1000, -11, -10, -9, -2, -1, 0, 1, 2, 9, 10, 11, 1000, n, n * 9} {
			v := n + d
			if v < 0 {
				continue
			}
			for _, s := range []string{strconv.FormatInt(v, 10), "0" + strconv.FormatInt(v, 10), "000" + strconv.FormatInt(v, 10)} {
				if got := re.MatchString(s); got != (v > n) {
					t.Errorf("n=%d: %q matched %v", n, s, got)
				}
			}
		}
		for _, s := range []string{"", "-1", "+99999999999", "1e9", " 99999999999", "99999999999 ", "0x1ffffffff"} {
			if re.MatchString(s) {
				t.Errorf("n=%d: %q matched", n, s)
			}
		}
	}
}

func FuzzGreaterThanRegex(f *testing.F) {
	f.Add(int64(33554432), "33554433")
	f.Add(int64(0), "0")
	f.Add(int64(999), "1000")
	f.Fuzz(func(t *testing.T, n int64, s string) {
		if n < 0 {
			return
		}
		re := regexp.MustCompile(hosting.GreaterThanRegex(n))
		want := false
		if regexp.MustCompile(`^[0-9]+$`).MatchString(s) {
			d := strings.TrimLeft(s, "0")
			ns := strconv.FormatInt(n, 10)
			want = len(d) > len(ns) || len(d) == len(ns) && d > ns
		}
		if got := re.MatchString(s); got != want {
			t.Fatalf("n=%d %q: matched %v", n, s, got)
		}
	})
}

// A reload returns once the previous configuration's workers no longer take
// requests: a request sent right after SetSites adds an account's location
// is served by it (here 502: its PHP-FPM socket is not there), never by an
// old worker that has no such location (500).
func TestSetSitesServedAtOnce(t *testing.T) {
	n, addr := startNginx(t)
	l := n.L
	if err := os.MkdirAll(l.Docroot("siteone"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Docroot("siteone"), "x.php"), []byte("<?php echo 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.SetHost("one.example.test", "siteone"); err != nil {
		t.Fatal(err)
	}
	ctx := hostenv.Ctx(t)
	for i := range 20 {
		if err := n.SetSites(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := n.SetSites(ctx, []hosting.SiteLimits{{User: "siteone", UploadMiB: 1 + i, ReadTimeoutSeconds: 10}}); err != nil {
			t.Fatal(err)
		}
		if code, body := hostenv.Get(t, addr, "one.example.test", "/x.php"); code != 502 {
			t.Fatalf("reload %d: %d %q, want 502 from the new configuration", i, code, body)
		}
	}
}

// oldSiteConf is site.conf as the agent rendered it before the plans'
// limits reached nginx (@ROOT@ and @CONF@ filled in).
const oldSiteConf = `# rendered by hostplane-agent (hosting role): the site of $hp_site
if ($hp_site = "") { return 421; }
set $hp_home @ROOT@/hosts/$hp_site;
root $hp_home/public;
disable_symlinks if_not_owner from=$document_root;
index index.php index.html;
error_page 503 /.hostplane-suspended.html;
location = /.hostplane-suspended.html { internal; alias @ROOT@/nginx/pages/suspended.html; }
location / {
  if (-f $hp_home/suspended) { return 503; }
  try_files $uri $uri/ =404;
}
location ~ \.php$ {
  if (-f $hp_home/suspended) { return 503; }
  try_files $uri =404;
  include @CONF@/fastcgi_params;
  fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
  fastcgi_param HTTP_PROXY "";
  fastcgi_pass unix:$hp_home/run/php-fpm.sock;
}
`

// An account made by an older agent, whose nginx has no limits of its
// plan, gets them when the agent starts again (site.conf is rendered from
// the accounts' records and nginx reloaded); a start with nothing to change
// does not reload nginx.
func TestStartRewritesExistingSites(t *testing.T) {
	e := hostingtest.NewNode(t)
	ctx := hostenv.Ctx(t)
	a := newAcct(e, "r")
	createPlan(t, e, a, func(in *hosting.CreateInput) { in.Plan.UploadMiB = 3 }, map[string]string{"/public/up.php": uploadPHP})
	old := strings.NewReplacer("@ROOT@", e.Root, "@CONF@", e.Cfg.NginxConfDir).Replace(oldSiteConf)
	if err := os.WriteFile(e.Node.L.SiteConf(), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Node.Nginx.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	const size = 2<<20 + 1<<19 // 2.5 MiB
	if code, body := upload(t, e.HTTPAddr, a.domain, "before", size, false); code != 413 {
		t.Fatalf("an upload under the plan's limit with the old agent's nginx: %d %q, want its 413", code, body)
	}

	hostingtest.Started(t, e.Cfg)
	if code, body := upload(t, e.HTTPAddr, a.domain, "after", size, false); code != 200 || body != fmt.Sprintf("saved=%d\n", size) {
		t.Fatalf("after the upgraded agent's start: %d %q, want the file saved", code, body)
	}
	if code, _ := upload(t, e.HTTPAddr, a.domain, "over", 3<<20+1<<16, false); code != 413 {
		t.Fatalf("an upload over the plan's limit after the start: %d, want 413", code)
	}
	logf := filepath.Join(e.Root, "nginx", "logs", "error.log")
	before, _ := os.ReadFile(logf)
	hostingtest.Started(t, e.Cfg)
	if after, _ := os.ReadFile(logf); strings.Count(string(after), "reconfiguring") != strings.Count(string(before), "reconfiguring") {
		t.Fatalf("a start with nothing to change reloaded nginx:\n%s", after[len(before):])
	}
}

// A request body nginx buffers to disk (client_body_temp_path, shared by
// every site) is readable by nginx's workers only: nginx unlinks the file as
// it creates it (mode 0600, its workers' user), so it is reachable only
// through the worker's descriptor, which another account's user cannot
// open; the directory is the workers' own.
func TestUploadBodyTempIsPrivate(t *testing.T) {
	e := hostingtest.NewNode(t)
	a, other := newAcct(e, "u"), newAcct(e, "v")
	createPlan(t, e, a, func(*hosting.CreateInput) {}, map[string]string{"/public/up.php": uploadPHP})
	createPlan(t, e, other, func(*hosting.CreateInput) {}, nil)
	conn, err := net.Dial("tcp", e.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of a 1 MiB body: past client_body_buffer_size, so on disk.
	if _, err := fmt.Fprintf(conn, "POST /up.php?n=t HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s",
		a.domain, 1<<20, strings.Repeat("s", 1<<19)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.Root, "nginx", "tmp", "body")
	var fd string // /proc/<worker>/fd/<n> of the body's file
	framework.WaitFor(t, "the body on disk", 10*time.Second, 20*time.Millisecond, func() bool {
		m, _ := filepath.Glob("/proc/[0-9]*/fd/*")
		for _, p := range m {
			if l, err := os.Readlink(p); err == nil && strings.HasPrefix(l, dir+"/") {
				fd = p
				return true
			}
		}
		return false
	})
	link, _ := os.Readlink(fd)
	if !strings.HasSuffix(link, " (deleted)") {
		t.Errorf("the body's file %s has a name in the shared directory", link)
	}
	web, err := user.Lookup(e.Cfg.WebUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, fd} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if strconv.Itoa(int(sys.Uid)) != web.Uid || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: uid %d mode %v; want %s's only", p, sys.Uid, st.Mode(), e.Cfg.WebUser)
		}
	}
	for _, u := range []string{a.user, other.user} {
		if out, err := hostenv.RunAs(t, u, "head -c 10 "+fd+"; ls "+dir); err == nil || strings.Contains(out, "ssssssssss") {
			t.Errorf("%s read the body being uploaded or listed the directory: %q %v", u, out, err)
		}
	}
	conn.Close()
	framework.WaitFor(t, "the body's file closed", 10*time.Second, 20*time.Millisecond, func() bool {
		l, err := os.Readlink(fd)
		return err != nil || l != link
	})
}

// Over TLS (the sitetls server block, in each certificate mode), a custom
// domain gets its account's limit as on HTTP: a file under it is saved, one
// over it is nginx's 413.
func TestPlanLimitsOverTLS(t *testing.T) {
	for _, mode := range []sitetls.Mode{sitetls.ModeVariable, sitetls.ModeLua} {
		t.Run(string(mode), func(t *testing.T) {
			if _, err := os.Stat(sitetls.LuaModule); mode == sitetls.ModeLua && err != nil {
				t.Fatalf("the lua mode needs nginx's lua module (apt-get install libnginx-mod-http-lua): %v", err)
			}
			e, tn, tlsAddr := tlsNode(t, mode)
			n := e.Node
			a := newAcct(e, "t")
			createPlan(t, e, a, func(in *hosting.CreateInput) { in.Plan.UploadMiB = 2 }, map[string]string{"/public/up.php": uploadPHP})
			custom := "shop-" + a.domain
			if err := n.L.SetHost(custom, a.user); err != nil {
				t.Fatal(err)
			}
			c, k, err := sitetls.SelfSigned(custom, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := tn.Store.Attach(hostenv.Ctx(t), custom, c, k); err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{ServerName: custom, InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
			const mib = 1 << 20
			for i, chunked := range []bool{false, true} {
				name := "ok" + strconv.Itoa(i)
				if code, body := uploadTo(t, hc, "https://"+tlsAddr, custom, name, 2*mib-64<<10, chunked); code != 200 || body != fmt.Sprintf("saved=%d\n", 2*mib-64<<10) {
					t.Errorf("HTTPS upload under the limit (chunked %v): %d %q", chunked, code, body)
				}
				if code, body := uploadTo(t, hc, "https://"+tlsAddr, custom, "no"+strconv.Itoa(i), 2*mib+64<<10, chunked); code != 413 || !strings.Contains(body, "413 Request Entity Too Large") {
					t.Errorf("HTTPS upload over the limit (chunked %v): %d %q", chunked, code, body)
				}
			}
		})
	}
}

// BenchmarkPHPRequest: a small PHP page on keep-alive connections, served
// through the account's location (realpath of the docroot, an internal
// redirect to @hp_php_<user>) against the old site.conf's direct
// fastcgi_pass, on one nginx and PHP-FPM in the same run.
func BenchmarkPHPRequest(b *testing.B) {
	e := hostingtest.NewNode(b)
	ctx := hostenv.Ctx(b)
	a := newAcct(e, "p")
	h, err := seed.HashPassword(a.sftpPW)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Node.Create(ctx, hosting.CreateInput{Username: a.user, Domain: a.domain, Plan: testPlan, PHPVersion: "8.2",
		SFTPHash: h, DBHash: hosting.MySQLNativeHash(a.dbPW)}, noStep); err != nil {
		b.Fatal(err)
	}
	u, err := user.Lookup(a.user)
	if err != nil {
		b.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	page := filepath.Join(e.Node.L.Docroot(a.user), "p.php")
	if err := os.WriteFile(page, []byte("<?php echo 'ok';"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Chown(page, uid, -1); err != nil {
		b.Fatal(err)
	}
	cur, _ := os.ReadFile(e.Node.L.SiteConf())
	old := strings.NewReplacer("@ROOT@", e.Root, "@CONF@", e.Cfg.NginxConfDir).Replace(oldSiteConf)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(b *testing.B) {
		if code, _, body := fetch(b, c, "http://"+e.HTTPAddr, a.domain, "/p.php"); code != 200 || body != "ok" {
			b.Fatalf("%d %q", code, body)
		}
	}
	for _, v := range []struct {
		name string
		conf []byte
	}{{"old", []byte(old)}, {"account-location", cur}} {
		b.Run(v.name, func(b *testing.B) {
			if err := os.WriteFile(e.Node.L.SiteConf(), v.conf, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := e.Node.Nginx.Reload(ctx); err != nil {
				b.Fatal(err)
			}
			c.CloseIdleConnections()
			for range 50 {
				get(b)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b)
				}
			})
		})
	}
}
