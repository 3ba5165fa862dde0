package hosting_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

func startNginx(t *testing.T) (*hosting.Nginx, string) {
	hostenv.Need(t, "nginx")
	root, _ := hostenv.Root(t)
	addr := framework.FreeAddr(t, "tcp")
	return hostingtest.StartNginx(t, root, addr), addr
}

// A site attached by a symlink rename is served at once, without a reload;
// hosts nginx must not map to a path get 421 or 400; a suspended site answers
// 503 with the suspension page.
func TestNginxLayoutRoutesByHostWithoutReload(t *testing.T) {
	n, addr := startNginx(t)
	pid := n.PID()
	l := n.L
	site := l.Site("siteone")
	for _, d := range []string{site, l.Docroot("siteone")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.Docroot("siteone"), "index.html"), []byte("hello one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := hostenv.Get(t, addr, "one.example.test", "/"); code != 404 {
		t.Fatalf("before attach: %d, want 404", code)
	}
	if err := l.SetHost("one.example.test", "siteone"); err != nil {
		t.Fatal(err)
	}
	if code, body := hostenv.Get(t, addr, "one.example.test", "/"); code != 200 || body != "hello one\n" {
		t.Fatalf("after attach: %d %q", code, body)
	}
	// nginx lower-cases the Host and strips the port and a trailing dot.
	if code, _ := hostenv.Get(t, addr, "ONE.example.test.", "/"); code != 200 {
		t.Fatalf("upper case host: %d", code)
	}
	for _, h := range []string{"x", "_", "one_example.test", "-a.test", "%2e%2e"} {
		if code, _ := hostenv.Get(t, addr, h, "/"); code != 421 {
			t.Errorf("Host %q: %d, want 421", h, code)
		}
	}
	for _, h := range []string{"..", "../../etc", "one.example.test/../x"} {
		if code, _ := hostenv.Get(t, addr, h, "/"); code != 400 {
			t.Errorf("Host %q: %d, want 400", h, code)
		}
	}
	// A symlink owned by someone else than its target is not followed.
	link := filepath.Join(l.Docroot("siteone"), "pw.txt")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if code, body := hostenv.Get(t, addr, "one.example.test", "/pw.txt"); code == 200 || strings.Contains(body, "root:") {
		t.Fatalf("symlink to /etc/passwd: %d %q", code, body)
	}
	if err := os.WriteFile(filepath.Join(site, "suspended"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := hostenv.Get(t, addr, "one.example.test", "/"); code != 503 || !strings.Contains(body, "suspended") {
		t.Fatalf("suspended: %d %q", code, body)
	}
	if code, _ := hostenv.Get(t, addr, "one.example.test", "/x.php"); code != 503 {
		t.Fatalf("suspended php: %d", code)
	}
	if err := l.RemoveHost("one.example.test"); err != nil {
		t.Fatal(err)
	}
	if code, _ := hostenv.Get(t, addr, "one.example.test", "/"); code != 404 {
		t.Fatalf("after detach: %d, want 404", code)
	}
	if n.PID() != pid {
		t.Fatalf("nginx master changed: %d → %d", pid, n.PID())
	}
	if b, _ := os.ReadFile(filepath.Join(l.NginxDir(), "logs", "error.log")); strings.Contains(string(b), "reconfiguring") {
		t.Fatalf("nginx was reloaded:\n%s", b)
	}
}

// A template change that nginx -t refuses is not installed, and nginx keeps
// serving; a good one is swapped in and reloaded.
func TestNginxApplyChecksAndKeepsOldConfig(t *testing.T) {
	n, addr := startNginx(t)
	old, _ := os.ReadFile(n.L.NginxConf())
	bad := strings.Replace(string(old), "server_tokens off;", "server_tokens off; no_such_directive on;", 1)
	if err := n.Apply(hostenv.Ctx(t), []byte(bad), nil); err == nil || !strings.Contains(err.Error(), "nginx -t") {
		t.Fatalf("bad config: %v", err)
	}
	if now, _ := os.ReadFile(n.L.NginxConf()); string(now) != string(old) {
		t.Fatal("refused configuration was installed")
	}
	if code, _ := hostenv.Get(t, addr, "x", "/"); code != 421 {
		t.Fatalf("nginx not serving after a refused change: %d", code)
	}
	good := strings.Replace(string(old), "server_tokens off;", "server_tokens off; keepalive_timeout 30s;", 1)
	if err := n.Apply(hostenv.Ctx(t), []byte(good), nil); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(n.L.NginxConf()); string(now) != good {
		t.Fatal("good configuration not installed")
	}
	if code, _ := hostenv.Get(t, addr, "x", "/"); code != 421 {
		t.Fatalf("nginx not serving after a reload: %d", code)
	}
	if m, _ := filepath.Glob(filepath.Join(n.L.NginxDir(), "*.new")); len(m) != 0 {
		t.Fatalf("candidates left: %v", m)
	}
}

func TestNginxParamsRefuseUnsafeValues(t *testing.T) {
	for _, p := range []hosting.NginxParams{
		{Root: "/srv/a b", User: "www-data", Listen: "127.0.0.1:80", ConfDir: "/etc/nginx"},
		{Root: "/srv/a;b", User: "www-data", Listen: "127.0.0.1:80", ConfDir: "/etc/nginx"},
		{Root: "/srv/../etc", User: "www-data", Listen: "127.0.0.1:80", ConfDir: "/etc/nginx"},
		{Root: "/srv/a", User: "www data", Listen: "127.0.0.1:80", ConfDir: "/etc/nginx"},
		{Root: "/srv/a", User: "www-data", Listen: "127.0.0.1:80; include /x", ConfDir: "/etc/nginx"},
		{Root: "/srv/a", User: "www-data", Listen: "127.0.0.1:80", ConfDir: "/etc/$x"},
	} {
		n := &hosting.Nginx{L: hosting.Layout{Root: p.Root}, Bin: "nginx", Params: p}
		if err := n.Ensure(hostenv.Ctx(t)); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// A reload the master refuses (here: a listener on a port another process
// holds, which nginx -s reload's own parse does not bind) leaves the old
// workers serving; Reload says so at once with nginx's own reason, not
// after a wait with a bare count of workers.
func TestNginxReloadRefusedByMasterSaysWhy(t *testing.T) {
	n, addr := startNginx(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.WriteFile(filepath.Join(n.L.TLSDir(), "held.conf"), []byte("server { listen "+held.Addr().String()+"; return 204; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = n.Reload(hostenv.Ctx(t))
	if err == nil || !strings.Contains(err.Error(), "Address already in use") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("reload onto a held port: %v, want the master's refusal with nginx's reason", err)
	}
	if code, _ := hostenv.Get(t, addr, "x", "/"); code != 421 {
		t.Fatalf("nginx not serving its previous configuration: %d", code)
	}
}

// A master that does not take the reload (stopped here, as a starved one
// is) fails Reload with the tail of nginx's error log, escaped: what the
// master did last (here: nothing after the signaller's start), so the
// failure says why.
func TestNginxReloadTimeoutCarriesErrorLog(t *testing.T) {
	n, addr := startNginx(t)
	master := n.PID()
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(master, syscall.SIGCONT) })
	err := n.Reload(hostenv.Ctx(t))
	if err == nil || !strings.Contains(err.Error(), "error log ends") || !strings.Contains(err.Error(), `signal process started"`) {
		t.Fatalf("reload under a stopped master: %v, want the error log's tail", err)
	}
	_ = syscall.Kill(master, syscall.SIGCONT)
	if code, _ := hostenv.Get(t, addr, "x", "/"); code != 421 {
		t.Fatalf("nginx not serving after SIGCONT: %d", code)
	}
}
