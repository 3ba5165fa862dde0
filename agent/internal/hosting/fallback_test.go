package hosting_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"os/user"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// frontPHP is a front controller (WordPress's, Laravel's index.php): it
// says whose it is and the request as PHP sees it.
const frontPHP = `<?php
echo "front=", basename(dirname(__DIR__)), " uid=", posix_geteuid(), "\n";
echo "uri=", $_SERVER['REQUEST_URI'], "\n";
echo "qs=", $_SERVER['QUERY_STRING'], "\n";
echo "script=", $_SERVER['SCRIPT_NAME'], "\n";
`

// configPHP is a script whose source holds a password: it may run (and
// says so), its source is never served.
const configPHP = "<?php $db_password = 'SECRET-' . 'pw'; echo \"config ran\\n\";\n"

// evilJPG is an "image" a visitor uploaded with PHP code in it: it must
// never run.
const evilJPG = "\xff\xd8\xff\xe0<?php echo 'EVIL-' . 'RAN'; ?>\n"

// putFiles logs in over SFTP as a and uploads files (path → content),
// making their directories.
func putFiles(t *testing.T, e *hostingtest.Env, a acct, files map[string]string) {
	t.Helper()
	c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for p, content := range files {
		if err := c.MkdirAll(path.Dir(p)); err != nil {
			t.Fatal(err)
		}
		if err := hostenv.Put(c, p, content); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsNode starts a hosting node and sshd (hostingtest) with the site TLS
// server block in mode on a free loopback port, tlsAddr; the listener is
// closed when the test ends.
func tlsNode(t *testing.T, mode sitetls.Mode) (e *hostingtest.Env, tn *sitetls.Node, tlsAddr string) {
	t.Helper()
	e = hostingtest.Config(t)
	tlsAddr = framework.FreeAddr(t, "tcp")
	tn, err := sitetls.Setup(hosting.Layout{Root: e.Root}, sitetls.Options{Listen: tlsAddr, Mode: mode, WebUser: e.Cfg.WebUser})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	e.Start(t)
	return e, tn, tlsAddr
}

// A path that is no file goes to the site's own /index.php (a front
// controller: WordPress's pretty permalinks, /wp-json/, Laravel's routes),
// which sees the path asked for as REQUEST_URI and the query string, under
// its account's pool, on HTTP and over TLS; a file is still served as it is
// (by nginx, not PHP), a directory runs its own index.php; a site without
// index.php answers 404; an uploaded image with PHP in it never runs, with
// a .php path after it or not.
func TestFrontControllerFallback(t *testing.T) {
	e, tn, tlsAddr := tlsNode(t, sitetls.ModeVariable)

	a, b, plain := newAcct(e, "fa"), newAcct(e, "fb"), newAcct(e, "fc")
	const css = "body { color: red; } /* <?php echo 'CSS-' . 'RAN'; ?> */\n"
	createPlan(t, e, a, func(*hosting.CreateInput) {}, nil)
	putFiles(t, e, a, map[string]string{
		"/public/index.php":      frontPHP,
		"/public/style.css":      css,
		"/public/sub/index.php":  `<?php echo "sub index\n";`,
		"/public/uploads/x.jpg":  evilJPG,
		"/public/uploads/y.php":  `<?php echo "y ran\n";`,
		"/public/emptydir/a.txt": "a\n",
		// Hidden files: never served, run or given to the front controller.
		"/public/.env":                     "DB_PASSWORD=SECRET\n",
		"/public/.git/config":              "[core] SECRET\n",
		"/public/.git/hook.php":            `<?php echo "SECRET ran\n";`,
		"/public/.user.ini":                "; SECRET\n",
		"/public/.htaccess":                "# SECRET\n",
		"/public/sub/.htpasswd":            "u:SECRET\n",
		"/public/.well-known/security.txt": "Contact: mailto:security@example.test\n",
		// PHP source under names PHP-FPM does not run: never served as text.
		"/public/config.php":      configPHP,
		"/public/config.PHP":      configPHP,
		"/public/config.Php":      configPHP,
		"/public/config.pHp":      configPHP,
		"/public/Upper.PHP":       configPHP,
		"/public/old.php5":        configPHP,
		"/public/old.PHP7":        configPHP,
		"/public/page.phtml":      configPHP,
		"/public/page.pHtml":      configPHP,
		"/public/lib.phar":        configPHP,
		"/public/inc.pht":         configPHP,
		"/public/show.phps":       configPHP,
		"/public/config.php~":     configPHP,
		"/public/config.php.bak":  configPHP,
		"/public/config.PHP.save": configPHP,
		"/public/config.php.orig": configPHP,
	})
	createPlan(t, e, b, func(*hosting.CreateInput) {}, nil)
	putFiles(t, e, b, map[string]string{"/public/index.php": frontPHP})
	createPlan(t, e, plain, func(*hosting.CreateInput) {}, nil)
	putFiles(t, e, plain, map[string]string{"/public/index.html": "plain site\n"})
	for _, x := range []acct{a, plain} {
		if err := e.Node.L.SetHost("www."+x.domain, x.user); err != nil { // a custom domain
			t.Fatal(err)
		}
	}
	for _, h := range []string{"www." + a.domain, "www." + plain.domain} {
		c, k, err := sitetls.SelfSigned(h, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := tn.Store.Attach(hostenv.Ctx(t), h, c, k); err != nil {
			t.Fatal(err)
		}
	}

	type get func(host, p string) (int, string, string)
	plainGet := func(host, p string) (int, string, string) {
		return fetch(t, &http.Client{Timeout: 30 * time.Second}, "http://"+e.HTTPAddr, host, p)
	}
	tlsGet := func(host, p string) (int, string, string) {
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
		return fetch(t, hc, "https://"+tlsAddr, host, p)
	}
	uid := func(x acct) string {
		u, err := user.Lookup(x.user)
		if err != nil {
			t.Fatal(err)
		}
		return u.Uid
	}
	uids := map[string]string{a.user: uid(a), b.user: uid(b)}
	front := func(x acct, uri, qs, script string) string {
		return "front=" + x.user + " uid=" + uids[x.user] + "\nuri=" + uri + "\nqs=" + qs + "\nscript=" + script + "\n"
	}
	for _, v := range []struct {
		name string
		get  get
		a, p string // hosts of a and plain
	}{
		{"http primary", plainGet, a.domain, plain.domain},
		{"http custom", plainGet, "www." + a.domain, "www." + plain.domain},
		{"https custom", tlsGet, "www." + a.domain, "www." + plain.domain},
	} {
		t.Run(v.name, func(t *testing.T) {
			for _, c := range []struct {
				host, path string
				code       int
				body       string
			}{
				// Pretty paths reach the front controller with the path asked for.
				{v.a, "/2026/12/hello-world/?a=1", 200, front(a, "/2026/12/hello-world/?a=1", "a=1", "/index.php")},
				{v.a, "/2026/12/hello-world/", 200, front(a, "/2026/12/hello-world/", "", "/index.php")},
				{v.a, "/wp-json/wp/v2/posts?per_page=2&x=%2F", 200, front(a, "/wp-json/wp/v2/posts?per_page=2&x=%2F", "per_page=2&x=%2F", "/index.php")},
				{v.a, "/users/42", 200, front(a, "/users/42", "", "/index.php")},
				{v.a, "/", 200, front(a, "/", "", "/index.php")},
				{v.a, "/index.php?p=7", 200, front(a, "/index.php?p=7", "p=7", "/index.php")},
				// Files are what they were: static by nginx, PHP scripts run.
				{v.a, "/style.css", 200, css},
				{v.a, "/uploads/y.php?q=1", 200, "y ran\n"},
				{v.a, "/sub/", 200, "sub index\n"},
				// A .php path that is no file is a 404, not the front controller.
				{v.a, "/missing.php", 404, ""},
				// The uploaded image: served as it is, never run.
				{v.a, "/uploads/x.jpg", 200, evilJPG},
				{v.a, "/uploads/x.jpg/y.php", 404, ""},
				{v.a, "/uploads/x.jpg/y", 200, front(a, "/uploads/x.jpg/y", "", "/index.php")},
				{v.a, "/uploads/x.jpg/.php", 404, ""},
				{v.a, "/uploads/x.jpg%00.php", 0, ""},
				// Hidden files and directories are 404s, existing or not, encoded or
				// not; /.well-known/ is served.
				{v.a, "/.env", 404, ""},
				{v.a, "/%2eenv", 404, ""},
				{v.a, "/.git/config", 404, ""},
				{v.a, "/.git/", 404, ""},
				{v.a, "/.git/hook.php", 404, ""},
				{v.a, "/.user.ini", 404, ""},
				{v.a, "/.htaccess", 404, ""},
				{v.a, "/sub/.htpasswd", 404, ""},
				{v.a, "/sub/.nothere/x", 404, ""},
				{v.a, "/.well-known/security.txt", 200, "Contact: mailto:security@example.test\n"},
				{v.a, "/.well-known/change-password", 200, front(a, "/.well-known/change-password", "", "/index.php")},
				// PHP source is run (config.php, however its path is spelt) or a
				// 404 (another case, PHP's other extensions, backup copies),
				// never served as text; tricks from other systems' file names
				// (a trailing dot or slash, a NUL, an NTFS stream) reach no file
				// here and go to the front controller, or are nginx's 400.
				{v.a, "/config.php", 200, "config ran\n"},
				{v.a, "/config.ph%70", 200, "config ran\n"},
				{v.a, "/./sub/../config.php", 200, "config ran\n"},
				{v.a, "/config.PHP", 404, ""},
				{v.a, "/config.Php", 404, ""},
				{v.a, "/config.pHp", 404, ""},
				{v.a, "/config.P%48P", 404, ""},
				{v.a, "/Upper.PHP", 404, ""},
				{v.a, "/UPPER.PHP", 404, ""},
				{v.a, "/old.php5", 404, ""},
				{v.a, "/old.PHP7", 404, ""},
				{v.a, "/page.phtml", 404, ""},
				{v.a, "/page.pHtml", 404, ""},
				{v.a, "/lib.phar", 404, ""},
				{v.a, "/inc.pht", 404, ""},
				{v.a, "/show.phps", 404, ""},
				{v.a, "/config.php~", 404, ""},
				{v.a, "/config.php.bak", 404, ""},
				{v.a, "/config.PHP.save", 404, ""},
				{v.a, "/config.php.orig", 404, ""},
				{v.a, "/config.php/", 0, ""},
				{v.a, "/config.PHP/", 0, ""},
				{v.a, "/config.php.", 0, ""},
				{v.a, "/config.PHP.", 0, ""},
				{v.a, "/config.php%00", 0, ""},
				{v.a, "/config.PHP%00.txt", 0, ""},
				{v.a, "/config.php::$DATA", 0, ""},
				{v.a, "/config.PHP::$DATA", 0, ""},
				{v.a, "/config.php%20", 0, ""},
				{v.a, "/config.php%2f", 0, ""},
				// A site without index.php: unknown paths are 404s.
				{v.p, "/", 200, "plain site\n"},
				{v.p, "/2026/12/hello-world/?a=1", 404, ""},
				{v.p, "/wp-json/", 404, ""},
				{v.p, "/index.php", 404, ""},
			} {
				code, ctype, body := v.get(c.host, c.path)
				if strings.Contains(body, "EVIL-RAN") || strings.Contains(body, "CSS-RAN") || strings.Contains(body, "SECRET") {
					t.Errorf("%s %s: %d ran a file that is not a .php script, served a hidden one or PHP source: %q", c.host, c.path, code, body)
				}
				switch {
				case c.code == 0: // anything but running it
				case c.code == 404:
					if code != 404 || strings.Contains(body, "front=") {
						t.Errorf("%s %s: %d %q, want 404", c.host, c.path, code, body)
					}
				case code != c.code || body != c.body:
					t.Errorf("%s %s: %d %q, want %d %q", c.host, c.path, code, body, c.code, c.body)
				}
				if c.path == "/style.css" && code == 200 && !strings.HasPrefix(ctype, "text/css") {
					t.Errorf("%s %s: Content-Type %q, want nginx's text/css", c.host, c.path, ctype)
				}
			}
		})
	}
	// The other account's front controller is its own, under its own pool.
	for _, p := range []string{"/2026/12/hello-world/?a=1", "/style.css", "/sub/"} {
		want := front(b, p, "", "/index.php")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			want = front(b, p, p[i+1:], "/index.php")
		}
		if code, _, body := plainGet(b.domain, p); code != 200 || body != want {
			t.Errorf("%s %s: %d %q, want %q", b.domain, p, code, body, want)
		}
	}
}

// fetch GETs base+p with Host host and returns the status, Content-Type and
// body (status 0 and the error if the request failed).
func fetch(t testing.TB, c *http.Client, base, host, p string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+p, nil)
	if err != nil {
		return 0, "", err.Error()
	}
	req.Host = host
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(body)
}
