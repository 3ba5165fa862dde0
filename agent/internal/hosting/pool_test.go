package hosting_test

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
)

// parsePool reads a pool file the way php-fpm's ini parser splits it: ';'
// starts a comment, "[name]" a section, "key = value" a setting. It fails on
// anything else, a second section, or a key given twice.
func parsePool(t testing.TB, conf string) (section string, kv map[string]string) {
	t.Helper()
	kv = map[string]string{}
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			if section != "" || !strings.HasSuffix(line, "]") {
				t.Fatalf("second or malformed section %q in\n%s", line, conf)
			}
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, " = ")
			if !ok || strings.ContainsAny(v, ";[]=\"'$\\ \t\r") || kv[k] != "" {
				t.Fatalf("line %q is not one plain setting in\n%s", line, conf)
			}
			kv[k] = v
		}
	}
	return section, kv
}

var goodPool = hosting.PoolParams{User: "hpa", Group: "hpa", WebGroup: "www-data",
	Socket: "/var/lib/hostplane/hosting/sites/hpa/run/php-fpm.sock", Site: "/var/lib/hostplane/hosting/sites/hpa",
	DBSocket: "/srv/mariadb/mysqld.sock", MaxChildren: 4, MemoryMiB: 128, MaxExecutionSeconds: 30, UploadMiB: 32, RequestTerminateSecond: 35}

// The isolation settings are in every pool, as admin values (a site's
// .user.ini or ini_set cannot change them).
func TestRenderPoolIsolation(t *testing.T) {
	conf, err := hosting.RenderPool(goodPool)
	if err != nil {
		t.Fatal(err)
	}
	sec, kv := parsePool(t, string(conf))
	s := goodPool.Site
	want := map[string]string{
		"user": "hpa", "listen": goodPool.Socket, "pm.max_children": "4", "request_terminate_timeout": "35s",
		"rlimit_files": "1024", "rlimit_core": "0",
		"php_admin_value[open_basedir]":               s + "/public:" + s + "/private:" + s + "/tmp",
		"php_admin_value[upload_tmp_dir]":             s + "/tmp",
		"php_admin_value[session.save_path]":          s + "/tmp",
		"php_admin_value[sys_temp_dir]":               s + "/tmp",
		"php_admin_value[memory_limit]":               "128M",
		"php_admin_value[max_execution_time]":         "30",
		"php_admin_flag[opcache.validate_permission]": "on",
		// "localhost" (the db_host customers are given) is the node's MariaDB.
		"php_admin_value[mysqli.default_socket]":    goodPool.DBSocket,
		"php_admin_value[pdo_mysql.default_socket]": goodPool.DBSocket,
	}
	if sec != "hpa" {
		t.Fatalf("section %q", sec)
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	dis := strings.Split(kv["php_admin_value[disable_functions]"], ",")
	for _, f := range []string{"exec", "shell_exec", "system", "passthru", "proc_open", "popen", "pcntl_exec", "pcntl_fork",
		"putenv", "posix_getpwuid", "opcache_get_status"} {
		if !strings.Contains(","+strings.Join(dis, ",")+",", ","+f+",") {
			t.Errorf("%s is not disabled: %v", f, dis)
		}
	}
}

// Values that would break out of their line are refused.
func TestRenderPoolRefusesInjection(t *testing.T) {
	for name, mod := range map[string]func(*hosting.PoolParams){
		"user newline":   func(p *hosting.PoolParams) { p.User = "hpa\nuser = root" },
		"user section":   func(p *hosting.PoolParams) { p.User = "hpa]\n[x" },
		"group comment":  func(p *hosting.PoolParams) { p.Group = "hpa;x" },
		"site semicolon": func(p *hosting.PoolParams) { p.Site = "/srv/a;/" },
		"site colon":     func(p *hosting.PoolParams) { p.Site = "/srv/a:/" },
		"site newline":   func(p *hosting.PoolParams) { p.Site = "/srv/a\nphp_admin_value[open_basedir] = /" },
		"site dotdot":    func(p *hosting.PoolParams) { p.Site = "/srv/a/../.." },
		"site relative":  func(p *hosting.PoolParams) { p.Site = "srv/a" },
		"site variable":  func(p *hosting.PoolParams) { p.Site = "/srv/${HOME}" },
		"socket space":   func(p *hosting.PoolParams) { p.Socket = "/srv/a b.sock" },
		"db socket line": func(p *hosting.PoolParams) { p.DBSocket = "/a.sock\nphp_admin_value[open_basedir] = /" },
		"db socket rel":  func(p *hosting.PoolParams) { p.DBSocket = "run/mysqld.sock" },
		"zero memory":    func(p *hosting.PoolParams) { p.MemoryMiB = 0 },
		"negative time":  func(p *hosting.PoolParams) { p.RequestTerminateSecond = -1 },
	} {
		p := goodPool
		mod(&p)
		if conf, err := hosting.RenderPool(p); err == nil {
			t.Errorf("%s: rendered\n%s", name, conf)
		}
	}
}

// Whatever names, paths and numbers a pool gets, the file is either refused
// or holds one section of that user with exactly the template's settings,
// each a single plain value, the paths as given.
func FuzzRenderPool(f *testing.F) {
	f.Add("hpa", "www-data", "/var/lib/h/sites/hpa", "/var/lib/h/sites/hpa/run/php-fpm.sock", 4, 128)
	f.Add("hpa\nuser = root", "www-data", "/a;b", "/a[b]", 0, -1)
	f.Add("a]", "x=y", "/a/../b", "/a/./b", 1, 1)
	f.Add("a", "b", "/a:/", "/${X}", 1, 1)
	keys := func() map[string]bool {
		_, kv := parsePool(f, mustRender(f, goodPool))
		m := map[string]bool{}
		for k := range kv {
			m[k] = true
		}
		return m
	}()
	f.Fuzz(func(t *testing.T, user, group, site, socket string, children, mem int) {
		p := goodPool
		p.User, p.Group, p.WebGroup, p.Site, p.Socket, p.MaxChildren, p.MemoryMiB = user, user, group, site, socket, children, mem
		conf, err := hosting.RenderPool(p)
		if err != nil {
			return
		}
		sec, kv := parsePool(t, string(conf))
		if sec != user || kv["user"] != user || kv["listen.group"] != group || kv["listen"] != socket ||
			kv["php_admin_value[sys_temp_dir]"] != site+"/tmp" ||
			kv["php_admin_value[open_basedir]"] != site+"/public:"+site+"/private:"+site+"/tmp" {
			t.Fatalf("values changed on the way:\n%s", conf)
		}
		if strings.Count(kv["php_admin_value[open_basedir]"], ":") != 2 {
			t.Fatalf("open_basedir has more than three directories:\n%s", conf)
		}
		if len(kv) != len(keys) {
			t.Fatalf("%d settings, want %d:\n%s", len(kv), len(keys), conf)
		}
		for k := range kv {
			if !keys[k] {
				t.Fatalf("setting %q is not the template's:\n%s", k, conf)
			}
		}
	})
}

func mustRender(f *testing.F, p hosting.PoolParams) string {
	conf, err := hosting.RenderPool(p)
	if err != nil {
		f.Fatal(err)
	}
	return string(conf)
}

// A MariaDB socket that no pool could name stops the hosting role at New,
// naming it, rather than at the first pool rendered; the default is taken.
// A pool without one leaves PHP's default (no setting).
func TestNewRefusesAMariaDBSocketNoPoolCanHold(t *testing.T) {
	for _, sock := range []string{"run/mysqld.sock", "/run/my sql.sock", "/run/../x.sock", "/run/x.sock\nuser = root"} {
		cfg := hosting.DefaultConfig()
		cfg.MariaDBSocket = sock
		if _, err := hosting.New(cfg); err == nil || !strings.Contains(err.Error(), "mariadb socket") {
			t.Errorf("socket %q: %v", sock, err)
		}
	}
	if _, err := hosting.New(hosting.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	p := goodPool
	p.DBSocket = ""
	conf, err := hosting.RenderPool(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, kv := parsePool(t, string(conf)); kv["php_admin_value[mysqli.default_socket]"] != "" {
		t.Fatalf("a pool without a MariaDB socket sets one:\n%s", conf)
	}
}
