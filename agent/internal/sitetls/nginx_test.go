package sitetls

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// testNginx is a real nginx (Debian's) serving one rendered TLS block from a
// directory of the test's own; stopped in cleanup.
type testNginx struct {
	dir, conf string
	addr      string // the TLS listener
	store     *Store
	mode      Mode
}

func nginxBin(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		tb.Fatal("nginx is not installed: run scripts/install-acme-test-deps.sh (apt-get install nginx libnginx-mod-http-lua)")
	}
	return p
}

func wwwDataGID(tb testing.TB) int {
	tb.Helper()
	g, err := user.LookupGroup("www-data")
	if err != nil {
		tb.Fatalf("group www-data: %v (it comes with Debian's base-passwd)", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// freePort is a free loopback address (freeport.Addr).
func freePort(tb testing.TB) string { return freeport.Addr(tb, "tcp") }

// openDir makes dir and its parents up to the temp root traversable by the
// nginx workers (www-data): t.TempDir is 0700.
func openDir(tb testing.TB, dir string) {
	tb.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
}

// nginxMain is the top of a test nginx.conf: one worker, paths under dir,
// then http{} with the given includes.
func nginxMain(mode Mode, dir, http string) string {
	main := ""
	if mode == ModeLua {
		main = MainConf
	}
	return fmt.Sprintf(`%suser www-data;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log notice;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[2]s/tmp/body; fastcgi_temp_path %[2]s/tmp/fastcgi;
  proxy_temp_path %[2]s/tmp/proxy; scgi_temp_path %[2]s/tmp/scgi; uwsgi_temp_path %[2]s/tmp/uwsgi;
  %[3]s
}
`, main, dir, http)
}

func needLua(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_http_lua_module.so"); err != nil {
		tb.Fatal("nginx's lua module is not installed: run scripts/install-acme-test-deps.sh (apt-get install libnginx-mod-http-lua)")
	}
}

// launch checks conf with nginx -t, starts nginx on it and waits until addr
// accepts connections. The caller stops it (stop).
func launch(dir, conf, addr string) (*testNginx, error) {
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	n := &testNginx{dir: dir, conf: filepath.Join(dir, "nginx.conf"), addr: addr}
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if out, err := n.cmd("-t", "-q").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
	if out, err := n.cmd().CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start nginx: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("nginx does not listen on %s: %s", addr, n.errorLog())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startNginx(tb testing.TB, mode Mode, extraHTTP string) *testNginx {
	tb.Helper()
	return startNginxCache(tb, mode, extraHTTP, 0)
}

// startNginxCache is startNginx with the lua cache's size (0: the default).
func startNginxCache(tb testing.TB, mode Mode, extraHTTP string, cacheSize int) *testNginx {
	tb.Helper()
	nginxBin(tb)
	if mode == ModeLua {
		needLua(tb)
	}
	dir := tb.TempDir()
	openDir(tb, dir)
	addr := freePort(tb)
	store := &Store{CertsDir: filepath.Join(dir, "certs"), GID: wwwDataGID(tb), CheckAddr: addr, CheckTimeout: 3 * time.Second}
	if err := store.Prepare(); err != nil {
		tb.Fatal(err)
	}
	block, err := Render(Conf{Mode: mode, Listen: addr, CertsDir: store.CertsDir, Body: "sni=$ssl_server_name host=$host", CacheSize: cacheSize})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.conf"), block, 0o644); err != nil {
		tb.Fatal(err)
	}
	n, err := launch(dir, nginxMain(mode, dir, "include "+dir+"/tls.conf;\n"+extraHTTP), addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.stop)
	n.store, n.mode = store, mode
	return n
}

func (n *testNginx) cmd(args ...string) *exec.Cmd {
	a := append([]string{"-e", filepath.Join(n.dir, "logs", "error.log"), "-c", n.conf, "-p", n.dir + "/"}, args...)
	return exec.Command("nginx", a...)
}

func (n *testNginx) pid() int {
	b, err := os.ReadFile(filepath.Join(n.dir, "nginx.pid"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func (n *testNginx) stop() {
	p := n.pid()
	if p <= 0 {
		return
	}
	_ = syscall.Kill(p, syscall.SIGQUIT)
	for range 300 {
		if syscall.Kill(p, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(p, syscall.SIGKILL)
}

func (n *testNginx) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "logs", "error.log"))
	return string(b)
}

// workers lists the pids of the master's children (a reload replaces
// them), once the master has started its worker.
func (n *testNginx) workers(tb testing.TB) string {
	tb.Helper()
	for range 500 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.pid(), n.pid()))
		if err != nil {
			tb.Fatal(err)
		}
		if w := strings.TrimSpace(string(b)); w != "" {
			return w
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("nginx started no worker in 5 s")
	return ""
}

// reloads counts the reconfigurations nginx logged (a HUP logs "reconfiguring").
func (n *testNginx) reloads() int { return strings.Count(n.errorLog(), "(SIGHUP) received") }

func (n *testNginx) served(tb testing.TB, sni string) string {
	tb.Helper()
	leaf, err := ServedLeaf(context.Background(), n.addr, sni, 3*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	return leaf.Subject.CommonName
}

func selfSigned(tb testing.TB, name string) (chain, key []byte) {
	tb.Helper()
	c, k, err := SelfSigned(name, time.Now(), 24*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return c, k
}
