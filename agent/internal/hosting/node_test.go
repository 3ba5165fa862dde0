package hosting_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/agent/internal/seed"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

var testPlan = api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 64, MaxExecutionSeconds: 30, UploadMiB: 8, DiskMiB: 100}

func noStep(string) error { return nil }

type acct struct {
	user, domain, sftpPW, dbPW string
}

func newAcct(e *hostingtest.Env, name string) acct {
	return acct{user: e.Prefix + name, domain: name + "-" + e.Prefix + ".test",
		sftpPW: "Sftp" + name + "Pw1234567890", dbPW: "Db" + name + "Pw12345678901"}
}

func (a acct) input(t *testing.T) hosting.CreateInput {
	h, err := seed.HashPassword(a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	return hosting.CreateInput{Username: a.user, Domain: a.domain, Plan: testPlan, PHPVersion: "8.2",
		SFTPHash: h, DBHash: hosting.MySQLNativeHash(a.dbPW)}
}

func create(t *testing.T, e *hostingtest.Env, a acct) {
	t.Helper()
	ctx := hostenv.Ctx(t)
	if err := e.Node.Precheck(ctx, a.input(t)); err != nil {
		t.Fatal(err)
	}
	v, err := e.Node.Create(ctx, a.input(t), noStep)
	if err != nil {
		t.Fatal(err)
	}
	if v.Username != a.user || v.Domain != a.domain || v.PHPVersion != "8.2" || v.Suspended || v.Database != a.user {
		t.Fatalf("created account: %+v", v)
	}
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "/index.php?" + v.Encode()
}

// The whole life of an account on real nginx, PHP-FPM, MariaDB and sshd:
// create → upload over SFTP → PHP runs as the account's user → isolation
// from a second account → PHP version refusal → suspend → unsuspend → delete.
func TestHostingAccountLifecycle(t *testing.T) {
	e := hostingtest.NewNode(t)
	ctx := hostenv.Ctx(t)
	a, b := newAcct(e, "a"), newAcct(e, "b")
	create(t, e, a)
	create(t, e, b)

	// Upload over SFTP into the chroot.
	for _, x := range []acct{a, b} {
		c, err := hostenv.SFTP(e.SSHAddr, x.user, x.sftpPW)
		if err != nil {
			t.Fatalf("sftp %s: %v", x.user, err)
		}
		if err := hostenv.Put(c, "/public/index.php", hostenv.ProbePHP); err != nil {
			t.Fatal(err)
		}
		if err := hostenv.Put(c, "/private/secret.txt", "secret of "+x.user); err != nil {
			t.Fatal(err)
		}
		if err := hostenv.Put(c, "/public/page.txt", "page of "+x.user); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create("/evil.txt"); err == nil {
			t.Fatal("sftp could write into the chroot's root")
		}
		if _, err := c.Stat("/etc/passwd"); err == nil {
			t.Fatal("sftp sees /etc/passwd: not chrooted")
		}
		c.Close()
	}
	// PHP runs as the account's user.
	code, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/")
	if code != 200 || !strings.Contains(body, "user="+a.user+"\n") || !strings.Contains(body, "php=8.2") {
		t.Fatalf("GET / of %s: %d %q", a.domain, code, body)
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, b.domain, "/page.txt"); code != 200 || body != "page of "+b.user {
		t.Fatalf("static file of b: %d %q", code, body)
	}

	// Isolation: a's PHP reads its own private file, not b's; nor does a
	// program run as a (the pools disable PHP's program functions, so the
	// test runs it itself: the file modes must hold without open_basedir).
	own := filepath.Join(e.Node.L.Site(a.user), "private", "secret.txt")
	other := filepath.Join(e.Node.L.Site(b.user), "private", "secret.txt")
	otherPub := filepath.Join(e.Node.L.Site(b.user), "public", "page.txt")
	if _, body := hostenv.Get(t, e.HTTPAddr, a.domain, q("read", own)); !strings.Contains(body, "read=OK:secret of "+a.user) {
		t.Fatalf("a reading its own file: %q", body)
	}
	if out, err := hostenv.RunAs(t, a.user, "cat "+own); err != nil || out != "secret of "+a.user {
		t.Fatalf("a program of a reading a's file: %q %v", out, err)
	}
	for _, f := range []string{other, otherPub, "/etc/shadow"} {
		_, body := hostenv.Get(t, e.HTTPAddr, a.domain, q("read", f))
		if !strings.Contains(body, "read=DENIED") || strings.Contains(body, "secret of") || strings.Contains(body, "page of") ||
			strings.Contains(body, "root:") {
			t.Fatalf("a reading %s: %q", f, body)
		}
		out, err := hostenv.RunAs(t, a.user, "cat "+f)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("a program of a reading %s: %q %v", f, out, err)
		}
	}
	// Isolation: a's PHP reaches its own database, not b's.
	port := strconv.Itoa(e.DBPort)
	if _, body := hostenv.Get(t, e.HTTPAddr, a.domain, q("db", a.user, "u", a.user, "p", a.dbPW, "port", port)); !strings.Contains(body, "db=OK") {
		t.Fatalf("a's own database: %q", body)
	}
	if _, body := hostenv.Get(t, e.HTTPAddr, a.domain, q("db", b.user, "u", a.user, "p", a.dbPW, "port", port)); !strings.Contains(body, "db=DENIED") {
		t.Fatalf("a reaching b's database: %q", body)
	}
	// Symlinks uploaded over SFTP to /etc/passwd or to b's file are not served
	// (nginx refuses them: the request goes on to a's own index.php, the
	// front controller, as a path that is no file does).
	c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"/public/pw.txt": "/etc/passwd", "/public/b.txt": otherPub} {
		if err := c.Symlink(target, name); err != nil {
			t.Fatalf("symlink %s: %v", name, err)
		}
		code, body := hostenv.Get(t, e.HTTPAddr, a.domain, strings.TrimPrefix(name, "/public"))
		if strings.Contains(body, "root:") || strings.Contains(body, "page of") || code == 200 && body != "user="+a.user+"\nphp=8.2\n" {
			t.Fatalf("symlink %s → %s served: %d %q", name, target, code, body)
		}
	}
	c.Close()

	// PHP versions: an uninstalled one is refused with the installed listed.
	_, err = e.Node.SetPHP(ctx, a.user, "7.4", noStep)
	if !errors.Is(err, validate.ErrInvalid) || !strings.Contains(err.Error(), "installed: 8.2") {
		t.Fatalf("SetPHP 7.4: %v", err)
	}
	if v, err := e.Node.SetPHP(ctx, a.user, "8.2", noStep); err != nil || v.PHPVersion != "8.2" {
		t.Fatalf("SetPHP 8.2: %+v %v", v, err)
	}

	// Suspend: site, SFTP and database refused; an open DB session ends.
	if _, err := hostenv.DBLogin(e.DBPort, a.user, a.dbPW, a.user, "SELECT CURRENT_USER()"); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("mariadb", "--no-defaults", "-h127.0.0.1", "-P"+port, "-u"+a.user, "-p"+a.dbPW, a.user, "-e", "SELECT SLEEP(60)")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	sleepDone := make(chan error, 1)
	go func() { sleepDone <- sleeper.Wait() }()
	defer sleeper.Process.Kill()
	waitFor(t, "the sleeping session", func() bool {
		out, _ := exec.Command("mariadb", "--no-defaults", "--socket="+e.Cfg.MariaDBSocket, "-uroot", "-N", "-B", "-e",
			"SELECT COUNT(*) FROM information_schema.processlist WHERE user='"+a.user+"'").Output()
		return strings.TrimSpace(string(out)) == "1"
	})
	sc, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW) // an open SFTP session
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var steps []string
	record := func(name string) error { steps = append(steps, name); return nil }
	v, err := e.Node.Suspend(ctx, a.user, record)
	if err != nil || !v.Suspended {
		t.Fatalf("suspend: %+v %v", v, err)
	}
	if got := strings.Join(steps, " "); got != "site sftp pool database" {
		t.Fatalf("suspend's steps: %q", got)
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/"); code != 503 || !strings.Contains(body, "suspended") {
		t.Fatalf("suspended site: %d %q", code, body)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, a.domain, "/page.txt"); code != 503 {
		t.Fatalf("suspended static file: %d", code)
	}
	if _, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW); err == nil {
		t.Fatal("sftp login of a suspended account succeeded")
	}
	if _, err := sc.Getwd(); err == nil {
		t.Fatal("the open sftp session survived the suspension")
	}
	if out, err := hostenv.DBLogin(e.DBPort, a.user, a.dbPW, a.user, "SELECT 1"); err == nil || !strings.Contains(out, "locked") {
		t.Fatalf("database login of a suspended account: %q %v", out, err)
	}
	select {
	case <-sleepDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the open database session survived the suspension")
	}
	if _, err := os.Stat(e.Node.L.Socket(a.user)); err == nil {
		t.Fatal("the pool's socket is still there")
	}
	// b is untouched.
	if code, _ := hostenv.Get(t, e.HTTPAddr, b.domain, "/"); code != 200 {
		t.Fatalf("b while a is suspended: %d", code)
	}

	// Unsuspend restores all.
	steps = nil
	if v, err := e.Node.Unsuspend(ctx, a.user, record); err != nil || v.Suspended {
		t.Fatalf("unsuspend: %+v %v", v, err)
	}
	if got := strings.Join(steps, " "); got != "database pool sftp site" {
		t.Fatalf("unsuspend's steps: %q", got)
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/"); code != 200 || !strings.Contains(body, "user="+a.user) {
		t.Fatalf("unsuspended site: %d %q", code, body)
	}
	if c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW); err != nil {
		t.Fatalf("sftp after unsuspend: %v", err)
	} else {
		c.Close()
	}
	if _, err := hostenv.DBLogin(e.DBPort, a.user, a.dbPW, a.user, "SELECT 1"); err != nil {
		t.Fatalf("database after unsuspend: %v", err)
	}

	// Delete: nothing left, and the username is free again.
	if err := os.MkdirAll(e.Cfg.MailSpool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Cfg.MailSpool, a.user), []byte("mail"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := e.Node.Delete(ctx, a.user, noStep); err != nil || !v.Deleted {
		t.Fatalf("delete: %+v %v", v, err)
	}
	assertGone(t, e, a)
	if code, _ := hostenv.Get(t, e.HTTPAddr, b.domain, "/"); code != 200 {
		t.Fatalf("b after a's delete: %d", code)
	}
	// A second delete (or one of an account whose create made nothing)
	// succeeds and touches nothing, not even a system user of that name.
	if v, err := e.Node.Delete(ctx, a.user, noStep); err != nil || !v.Deleted {
		t.Fatalf("second delete: %+v %v", v, err)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, b.domain, "/"); code != 200 {
		t.Fatalf("b after a second delete of a: %d", code)
	}
	sys := e.Prefix + "sys"
	hostenv.Run(t, "useradd", "--system", "--no-create-home", sys)
	if _, err := e.Node.Delete(ctx, sys, noStep); err != nil {
		t.Fatalf("delete of a name that is a system user: %v", err)
	}
	if _, err := exec.Command("getent", "passwd", sys).Output(); err != nil {
		t.Fatal("the system user was removed")
	}
	if err := e.Node.Precheck(ctx, hosting.CreateInput{Username: sys, Domain: "sys-" + e.Prefix + ".test"}); !errors.Is(err, hosting.ErrExists) {
		t.Fatalf("create over a system user: %v", err)
	}
	create(t, e, a) // the username is reusable
	if _, err := e.Node.Delete(ctx, a.user, noStep); err != nil {
		t.Fatal(err)
	}
	// After a host reboot (nginx and the PHP-FPM masters gone), Start brings
	// the sites back.
	e.Node.Stop()
	if err := e.Node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hostenv.WantSite(t, e.HTTPAddr, b.domain, b.user, "b after a restart of nginx and PHP-FPM")
	if _, err := e.Node.Delete(ctx, b.user, noStep); err != nil {
		t.Fatal(err)
	}
	assertGone(t, e, b)
	if m, _ := filepath.Glob(filepath.Join(e.Cfg.Root, "fpm", "*", "pool.d", "*.conf")); len(m) != 0 {
		t.Fatalf("pools left: %v", m)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	framework.WaitFor(t, what, 10*time.Second, 50*time.Millisecond, f)
}

// assertGone checks that nothing of the account is left on the node.
func assertGone(t *testing.T, e *hostingtest.Env, a acct) {
	t.Helper()
	if out, err := exec.Command("getent", "passwd", a.user).CombinedOutput(); err == nil {
		t.Fatalf("user left: %s", out)
	}
	if out, err := exec.Command("getent", "group", a.user).CombinedOutput(); err == nil {
		t.Fatalf("group left: %s", out)
	}
	for _, p := range []string{e.Node.L.Site(a.user), e.Node.L.Host(a.domain), e.Node.L.Account(a.user),
		filepath.Join(e.Cfg.MailSpool, a.user), filepath.Join(e.Node.L.CertsDir(), a.domain+".pem")} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s left", p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(e.Cfg.Root, "fpm", "*", "pool.d", a.user+".conf")); len(m) != 0 {
		t.Fatalf("pool left: %v", m)
	}
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+e.Cfg.MariaDBSocket, "-uroot", "-N", "-B", "-e",
		fmt.Sprintf("SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name='%s') + (SELECT COUNT(*) FROM mysql.user WHERE user='%s')", a.user, a.user)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("database or database user left: %q %v", out, err)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, a.domain, "/"); code != 404 {
		t.Fatalf("deleted site answers %d", code)
	}
	if _, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW); err == nil {
		t.Fatal("sftp login of a deleted account")
	}
}

// A create that fails part-way (here: PHP-FPM refuses the pool) undoes what
// it did in reverse: no user, files, database or account record is left.
func TestHostingCreateUndoneOnFailure(t *testing.T) {
	e := hostingtest.NewNode(t)
	fake := filepath.Join(e.Root, "fakebin")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	// An "installed" PHP 9.9 whose php-fpm refuses every configuration.
	if err := os.WriteFile(filepath.Join(fake, "php-fpm9.9"), []byte("#!/bin/sh\necho 'ERROR: refused by the test' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := fpmNode(t, e, fake)
	a := newAcct(e, "u")
	in := a.input(t)
	in.PHPVersion = "9.9"
	ctx := hostenv.Ctx(t)
	if err := n.Precheck(ctx, in); err != nil {
		t.Fatal(err)
	}
	var steps []string
	_, err := n.Create(ctx, in, func(s string) error { steps = append(steps, s); return nil })
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("create with a refusing php-fpm: %v", err)
	}
	if strings.Join(steps, ",") != "user,files,database,pool" {
		t.Fatalf("steps %v: the failure was not at the pool", steps)
	}
	assertGone(t, e, a)
}

// fpmNode is a node of e whose installed PHP-FPM binaries are dir's
// php-fpm* (fakes or links a test puts there).
func fpmNode(t *testing.T, e *hostingtest.Env, dir string) *hosting.Node {
	t.Helper()
	cfg := e.Cfg
	cfg.FPMGlob = filepath.Join(dir, "php-fpm*")
	n, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// PUT php moves the pool between masters: with a second version installed
// (here Debian's php-fpm8.2 also offered as "8.3"), the pool leaves the old
// master (which stops, having no pool left) for the new one, and the site
// keeps answering as the account's user.
func TestHostingPHPMove(t *testing.T) {
	e := hostingtest.NewNode(t)
	bin := filepath.Join(e.Root, "phpbin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"8.2", "8.3"} {
		if err := os.Symlink("/usr/sbin/php-fpm8.2", filepath.Join(bin, "php-fpm"+v)); err != nil {
			t.Fatal(err)
		}
	}
	n := fpmNode(t, e, bin)
	ctx := hostenv.Ctx(t)
	if vs := n.PHPVersions(); strings.Join(vs, ",") != "8.2,8.3" {
		t.Fatalf("versions %v", vs)
	}
	a := newAcct(e, "m")
	if _, err := n.Create(ctx, a.input(t), noStep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = n.Delete(context.Background(), a.user, noStep) })
	hostenv.PutProbe(t, e.SSHAddr, a.user, a.sftpPW, "sftp")
	pid := func(v string) string {
		b, _ := os.ReadFile(filepath.Join(e.Root, "fpm", v, "php-fpm.pid"))
		return strings.TrimSpace(string(b))
	}
	alive := func(v string) bool {
		p := pid(v)
		return p != "" && exec.Command("kill", "-0", p).Run() == nil
	}
	if !alive("8.2") || alive("8.3") {
		t.Fatalf("before: 8.2 master alive %v, 8.3 alive %v", alive("8.2"), alive("8.3"))
	}
	v, err := n.SetPHP(ctx, a.user, "8.3", noStep)
	if err != nil || v.PHPVersion != "8.3" {
		t.Fatalf("SetPHP 8.3: %+v %v", v, err)
	}
	hostenv.WantSite(t, e.HTTPAddr, a.domain, a.user, "site on 8.3")
	if alive("8.2") || !alive("8.3") {
		t.Fatalf("after: 8.2 master alive %v (it has no pool), 8.3 alive %v", alive("8.2"), alive("8.3"))
	}
	if m, _ := filepath.Glob(filepath.Join(e.Root, "fpm", "*", "pool.d", a.user+".conf")); len(m) != 1 || !strings.Contains(m[0], "/8.3/") {
		t.Fatalf("pool files %v", m)
	}
}
