// Package packagetest checks the .deb and .rpm packages and the systemd units
// on this machine (make test, serially): lintian and rpmlint clean,
// systemd-analyze verify and security, dpkg -i / -r / --purge of the real
// packages, and the installed daemons' sd_notify protocol (READY=1, WATCHDOG=1,
// STOPPING=1) against a test datagram socket. It installs packages on the host
// it runs on, as root, and purges them again whatever happens: it stops itself
// stopMargin before go test's -timeout so that its purge still runs, and a run
// killed anyway is cleaned up by the next (purgeOwnLeftovers).
package packagetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

var (
	root      string // the repository
	buildOnce sync.Once
	buildErr  error
	debs      = map[string]string{} // package name → file
	rpms      = map[string]string{}
)

const installHint = "run scripts/install-packaging-tools.sh (as root) first"

func need(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: %s", c, installHint)
		}
	}
}

func run(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runEnv(t, nil, name, args...)
}

// runEnv runs name in the repository with env added to the environment. A
// command still running at the test's stop time (stopBeforeTimeout) is killed
// and its error says so.
func runEnv(t *testing.T, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runUntil(stopTime(), env, name, args...)
}

// runUntil runs name in the repository with env added to the environment:
// not started at or after stop (zero: no stop), and killed at stop unless it
// is dpkg, which is left to finish (seconds): a dpkg killed while it unpacks
// leaves its database refusing the next dpkg command until `dpkg
// --configure -a`, the purge in the cleanups included.
func runUntil(stop time.Time, env []string, name string, args ...string) (stdout, stderr string, err error) {
	stopped := func() error {
		return fmt.Errorf("%s (%v before go test's -timeout) passed: the test stops here so that its cleanups (dpkg --purge) still run", stopWhat, stopMarginOf())
	}
	ctx := context.Background()
	if !stop.IsZero() {
		if !time.Now().Before(stop) {
			return "", "", fmt.Errorf("%s not started: %w", name, stopped())
		}
		if name != "dpkg" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, stop)
			defer cancel()
		}
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s killed (%v): %w", name, err, stopped())
	}
	return o.String(), e.String(), err
}

// stopMargin is how long before go test's -timeout deadline
// TestInstallRemovePurge stops itself: go test's timeout panics without
// running a test's cleanups, so the purge of the installed packages would
// never happen, and the next run would refuse to start ("already installed").
// Its cleanups (two dpkg --purge, a few seconds here; much longer under a
// load of 19) need this much left.
const stopMargin = 2 * time.Minute

// stopWhat names the stop time in the errors of commands it killed.
const stopWhat = "the test's stop time"

var (
	stopMu sync.Mutex
	stopAt time.Time     // when commands are killed and waits give up (zero: never)
	stopBy time.Duration // how long before go test's deadline stopAt is
)

func stopTime() time.Time {
	stopMu.Lock()
	defer stopMu.Unlock()
	return stopAt
}

func stopMarginOf() time.Duration {
	stopMu.Lock()
	defer stopMu.Unlock()
	return stopBy
}

// stopBeforeTimeout makes t stop margin before go test's -timeout deadline
// (t.Deadline): from then on every command run, runEnv or mustRun runs is
// killed (a command started after it at once) and notifySocket.expect gives
// up, so t fails with t.Fatal and its cleanups run within margin, instead of
// go test's panic that runs none. (The package's tests run one at a time:
// one stop time for all.) The stop is lifted when t ends, and by liftStop
// for a cleanup's own commands.
func stopBeforeTimeout(t *testing.T, margin time.Duration) {
	t.Helper()
	deadline, ok := t.Deadline()
	if !ok {
		return // -timeout 0: no deadline
	}
	at := deadline.Add(-margin)
	if !time.Now().Before(at) {
		t.Fatalf("go test's -timeout leaves %v, not even the %v kept for this test's cleanups: give a longer -timeout", time.Until(deadline).Round(time.Second), margin)
	}
	stopMu.Lock()
	stopAt, stopBy = at, margin
	stopMu.Unlock()
	t.Cleanup(liftStop)
}

// liftStop lets commands run past the stop time again: a cleanup that must
// run (the purge) calls it first.
func liftStop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	stopAt, stopBy = time.Time{}, 0
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	o, e, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, o, e)
	}
	return o
}

// packages builds dist/ once with `make packages`' script.
func packages(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		wd, _ := os.Getwd()
		root = filepath.Clean(filepath.Join(wd, "..", ".."))
		cmd := exec.Command("scripts/build-packages.sh")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("scripts/build-packages.sh: %v\n%s", err, out)
			return
		}
		for _, name := range []string{"hostplane-coordinator", "hostplane-agent"} {
			d, _ := filepath.Glob(filepath.Join(root, "dist", name+"_*_amd64.deb"))
			r, _ := filepath.Glob(filepath.Join(root, "dist", name+"-[0-9]*.x86_64.rpm"))
			if len(d) != 1 || len(r) != 1 {
				buildErr = fmt.Errorf("dist/: want one .deb and one .rpm of %s, got %v %v", name, d, r)
				return
			}
			debs[name], rpms[name] = d[0], r[0]
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func TestPackageSizes(t *testing.T) {
	packages(t)
	for _, m := range []map[string]string{debs, rpms} {
		for _, f := range m {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes (%.1f MiB)", filepath.Base(f), st.Size(), float64(st.Size())/(1<<20))
		}
	}
}

// lintianOneUnused is lintian's summary of its overrides when exactly one
// override went unused.
var lintianOneUnused = regexp.MustCompile(`^N: \d+ hints? overridden; 1 unused override$`)

func TestLintianClean(t *testing.T) {
	need(t, "lintian")
	packages(t)
	for name, f := range debs {
		o, e, err := runEnv(t, []string{"TMPDIR=" + t.TempDir()}, "lintian", "--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic", f)
		e = strings.ReplaceAll(e, "running with root privileges is not recommended!\n", "")
		// The spelling override covers byte runs that come and go from build
		// to build (packaging/lintian): a build without any is not a finding.
		var kept []string
		dropped := false
		for _, l := range strings.Split(o, "\n") {
			if strings.Contains(l, "unused-override spelling-error-in-binary") {
				dropped = true
				continue
			}
			kept = append(kept, l)
		}
		if dropped {
			// With --display-info lintian then also sums up its overrides
			// ("N: 0 hints overridden; 1 unused override", seen in CI):
			// that one unused override is the spelling one left out above.
			kept = slices.DeleteFunc(kept, func(l string) bool { return lintianOneUnused.MatchString(l) })
		}
		o = strings.Join(kept, "\n")
		if err != nil && dropped && strings.TrimSpace(o+e) == "" {
			err = nil // lintian's exit status came from the line left out
		}
		if err != nil || strings.TrimSpace(o+e) != "" {
			t.Errorf("lintian %s: %v\n%s%s", name, err, o, e)
		}
	}
}

func TestRpmlintClean(t *testing.T) {
	need(t, "rpmlint", "rpm")
	packages(t)
	// rpmlint unpacks with `rpm2cpio | cpio -id` in a temporary directory, and
	// nfpm's payloads hold absolute names (/usr/sbin/…), which GNU cpio writes
	// to the host's root. A cpio that drops the leading / keeps them in the
	// temporary directory.
	shim := t.TempDir()
	if err := os.WriteFile(filepath.Join(shim, "cpio"), []byte("#!/bin/sh\nexec /usr/bin/cpio --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pathEnv := []string{"PATH=" + shim + ":" + os.Getenv("PATH")}
	_, statErr := os.Lstat("/usr/sbin/hostplane-coordinator")
	for name, f := range rpms {
		o, e, err := runEnv(t, pathEnv, "rpmlint", "-c", "packaging/rpmlint.toml", f)
		if err != nil || !strings.Contains(o, "0 errors, 0 warnings") {
			t.Errorf("rpmlint %s: %v\n%s%s", name, err, o, e)
		}
		mustRun(t, "rpm", "-K", "--nosignature", f) // digests intact
	}
	if _, err := os.Lstat("/usr/sbin/hostplane-coordinator"); err == nil && statErr != nil {
		t.Error("rpmlint unpacked the package onto the host's root (/usr/sbin/hostplane-coordinator appeared)")
	}
	req := mustRun(t, "rpm", "-qp", "--requires", rpms["hostplane-agent"])
	for _, dep := range []string{"libvirt-daemon", "libvirt-daemon-driver-qemu", "qemu-kvm", "qemu-img"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dep) + `$`).MatchString(req) {
			t.Errorf("hostplane-agent.rpm does not require %s:\n%s", dep, req)
		}
	}
	files := mustRun(t, "rpm", "-qlp", rpms["hostplane-coordinator"])
	for _, f := range []string{"/usr/sbin/hostplane-coordinator", "/usr/bin/hostplanectl", "/etc/hostplane/coordinator.json",
		"/usr/lib/systemd/system/hostplane-coordinator.service", "/usr/share/man/man1/hostplanectl.1.gz",
		"/usr/share/bash-completion/completions/hostplanectl", "/usr/share/zsh/site-functions/_hostplanectl",
		"/usr/share/fish/vendor_completions.d/hostplanectl.fish"} {
		if !strings.Contains(files, f+"\n") {
			t.Errorf("hostplane-coordinator.rpm lacks %s", f)
		}
	}
	afiles := mustRun(t, "rpm", "-qlp", rpms["hostplane-agent"])
	for _, f := range []string{"/etc/logrotate.d/hostplane-agent", "/usr/lib/systemd/system/hostplane-agent-logrotate.timer",
		"/usr/lib/systemd/system/hostplane-agent-logrotate.service"} {
		if !strings.Contains(afiles, f+"\n") {
			t.Errorf("hostplane-agent.rpm lacks %s", f)
		}
	}
	conf := mustRun(t, "rpm", "-qcp", rpms["hostplane-coordinator"])
	if strings.TrimSpace(conf) != "/etc/hostplane/coordinator.json" {
		t.Errorf("rpm config files: %q", conf)
	}
}

// TestRpmInstallErase installs both RPMs into an empty root with rpm itself
// (--nodeps: the root has no libvirt; --noscripts: it has no shell to run
// scriptlets, which dpkg exercises in TestInstallRemovePurge), checks every listed
// file, and erases them again.
func TestRpmInstallErase(t *testing.T) {
	need(t, "rpm")
	packages(t)
	r := t.TempDir()
	mustRun(t, "rpm", "--root", r, "--initdb")
	for name, f := range rpms {
		mustRun(t, "rpm", "-i", "--root", r, "--nodeps", "--noscripts", f)
		listed := strings.Fields(mustRun(t, "rpm", "-qlp", f))
		for _, p := range listed {
			if _, err := os.Lstat(filepath.Join(r, p)); err != nil {
				t.Errorf("%s: %s not installed: %v", name, p, err)
			}
		}
		if st, err := os.Stat(filepath.Join(r, "etc/hostplane/agent.json")); name == "hostplane-agent" && (err != nil || st.Mode().Perm() != 0o600) {
			t.Errorf("agent.json from the RPM: %v %v (want 0600)", st, err)
		}
		mustRun(t, "rpm", "-e", "--root", r, "--noscripts", name)
		for _, p := range listed {
			if _, err := os.Lstat(filepath.Join(r, p)); err == nil {
				t.Errorf("%s: %s left after rpm -e", name, p)
			}
		}
	}
}

// TestConfigFilesNotWorldReadable: neither package lets every local user read
// a configuration file that may hold a secret (coordinator.json takes
// "cluster-secret", as every flag name; agent.json the join token), in the
// .deb and the .rpm, and the coordinator's postinst gives its file to the
// hostplane group (the service reads it as that user; the group does not
// exist yet when the package is unpacked). Nothing in either package is
// world-writable.
func TestConfigFilesNotWorldReadable(t *testing.T) {
	need(t, "dpkg-deb", "rpm")
	packages(t)
	modes := map[string]string{}
	for _, f := range debs {
		for _, l := range strings.Split(mustRun(t, "dpkg-deb", "--contents", f), "\n") {
			if fs := strings.Fields(l); len(fs) >= 6 {
				modes["deb "+strings.TrimPrefix(fs[5], ".")] = fs[0]
			}
		}
	}
	for _, f := range rpms {
		for _, l := range strings.Split(mustRun(t, "rpm", "-qlvp", f), "\n") {
			if fs := strings.Fields(l); len(fs) >= 9 {
				modes["rpm "+fs[len(fs)-1]] = fs[0]
			}
		}
	}
	for _, conf := range []string{"/etc/hostplane/coordinator.json", "/etc/hostplane/agent.json"} {
		for _, pk := range []string{"deb", "rpm"} {
			m, ok := modes[pk+" "+conf]
			if !ok || len(m) != 10 || m[7:] != "---" {
				t.Errorf("%s in the .%s: mode %q, want no access for others", conf, pk, m)
			}
		}
	}
	for f, m := range modes {
		if len(m) == 10 && m[0] != 'l' && m[8] == 'w' {
			t.Errorf("%s is world-writable (%s)", f, m)
		}
	}
	postinst := filepath.Join(root, "build/pkg/scripts/coordinator-postinst.sh")
	if b, err := os.ReadFile(postinst); err != nil || !strings.Contains(string(b), "chgrp hostplane \"$conf\"") {
		t.Errorf("%s does not give coordinator.json to group hostplane: %v", postinst, err)
	}
}

// exposure runs systemd-analyze security --offline=true on a unit file.
func exposure(t *testing.T, unit string) float64 {
	t.Helper()
	o, e, err := run(t, "systemd-analyze", "security", "--offline=true", "--no-pager", unit)
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(o)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s%s", unit, err, o, e)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestSecurityExposure(t *testing.T) {
	need(t, "systemd-analyze")
	wd, _ := os.Getwd()
	root = filepath.Clean(filepath.Join(wd, "..", ".."))
	c := exposure(t, "systemd/hostplane-coordinator.service")
	a := exposure(t, "systemd/hostplane-agent.service")
	t.Logf("systemd-analyze security --offline=true: hostplane-coordinator.service %.1f, hostplane-agent.service %.1f", c, a)
	if c > 3.0 {
		t.Errorf("coordinator exposure %.1f > 3.0", c)
	}
}

// debFiles lists the regular files and symlinks a .deb installs.
func debFiles(t *testing.T, deb string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(mustRun(t, "dpkg-deb", "--contents", deb), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		out = append(out, strings.TrimPrefix(f[5], "."))
	}
	return out
}

func installed(t *testing.T, pkg string) bool {
	o, _, _ := run(t, "dpkg-query", "-W", "-f=${Status}", pkg)
	return strings.Contains(o, "installed") || strings.Contains(o, "config-files")
}

var leftovers = []string{"/etc/hostplane", "/var/lib/hostplane", "/run/hostplane/coordinator", "/run/hostplane/agent.sock"}

// TestInstallRemovePurge installs both .debs on this machine, checks every file,
// the user and the units, runs the installed daemons under a fake systemd notify
// socket, removes them (configuration and state stay) and purges them (nothing
// stays). The packages are purged at the end whatever happens: the test stops
// itself stopMargin before go test's -timeout to do it, and the packages a
// killed run left are purged by the next run's setup (ownMarker).
func TestInstallRemovePurge(t *testing.T) {
	need(t, "dpkg", "dpkg-deb", "systemd-analyze", "getent")
	if os.Geteuid() != 0 {
		t.Fatal("dpkg -i needs root: run make test as root")
	}
	packages(t)
	// One install test per host at a time (other worktrees run it too): wait for
	// the host-wide lock rather than fail on their packages or purge them.
	lock, err := os.OpenFile("/run/lock/hostplane-packaging-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // registered first: released after the purge below
	stopBeforeTimeout(t, stopMargin)

	purgeOwnLeftovers(t)
	for _, p := range []string{"hostplane-coordinator", "hostplane-agent"} {
		if installed(t, p) {
			t.Fatalf("%s is already installed on this machine; this test installs and purges it: dpkg --purge it first", p)
		}
	}
	for _, p := range leftovers {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists before the test; the purge check needs a host without it (remove it by hand)", p)
		}
	}
	if _, err := user.Lookup("hostplane"); err == nil {
		t.Fatal("a hostplane user exists before the test; the install check needs a host without it")
	}
	t.Cleanup(func() {
		liftStop() // the purge runs whatever the time
		purgeTestPackages(t)
	})

	coord, agent := debs["hostplane-coordinator"], debs["hostplane-agent"]
	dpkgInstall(t, coord)
	// The agent depends on libvirt-daemon-system, which pulls a newer systemd
	// into this shared test machine; everything else it needs must be here.
	unmet := unmetDeps(t, agent)
	if len(unmet) > 0 && !(len(unmet) == 1 && unmet[0] == "libvirt-daemon-system") {
		t.Fatalf("hostplane-agent: unmet dependencies %v (only libvirt-daemon-system may be missing here)", unmet)
	}
	dpkgInstall(t, agent, "--force-depends")
	// Maintainer scripts are idempotent: installing the same packages again works.
	dpkgInstall(t, coord)
	dpkgInstall(t, agent, "--force-depends")

	files := map[string][]string{"hostplane-coordinator": debFiles(t, coord), "hostplane-agent": debFiles(t, agent)}
	for p, fs := range files {
		if len(fs) < 6 {
			t.Fatalf("%s lists only %v", p, fs)
		}
		for _, f := range fs {
			if _, err := os.Lstat(f); err != nil {
				t.Errorf("%s: %s not installed: %v", p, f, err)
			}
		}
	}
	u, err := user.Lookup("hostplane")
	if err != nil {
		t.Fatalf("no hostplane user after dpkg -i: %v", err)
	}
	if sh := mustRun(t, "getent", "passwd", "hostplane"); !strings.HasSuffix(strings.TrimSpace(sh), ":/usr/sbin/nologin") {
		t.Errorf("hostplane user: %s", sh)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid >= 1000 || uid == 0 {
		t.Errorf("hostplane uid %s is not a system uid", u.Uid)
	}
	st, err := os.Stat("/var/lib/hostplane/coordinator")
	if err != nil || st.Mode().Perm() != 0o700 || fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid) != u.Uid {
		t.Errorf("/var/lib/hostplane/coordinator: %v %v (want 0700, owned by hostplane)", st, err)
	}
	if st, err := os.Stat("/etc/hostplane/agent.json"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("/etc/hostplane/agent.json: %v %v (want 0600)", st, err)
	}
	if st, err := os.Stat("/etc/hostplane/coordinator.json"); err != nil || st.Mode().Perm() != 0o640 ||
		fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid) != "0" || fmt.Sprint(st.Sys().(*syscall.Stat_t).Gid) != u.Gid {
		t.Errorf("/etc/hostplane/coordinator.json: %v %v (want 0640 root:hostplane)", st, err)
	}
	for _, bin := range []string{"/usr/sbin/hostplane-coordinator", "/usr/bin/hostplanectl"} {
		want := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(coord), "hostplane-coordinator_"), "_amd64.deb")
		var got string
		if strings.HasSuffix(bin, "ctl") {
			got = mustRun(t, bin, "--help") // hostplanectl has no version command; it must at least run
			want = "hostplanectl"
		} else {
			got = mustRun(t, bin, "version")
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", bin, got, want)
		}
	}

	t.Run("verify units", func(t *testing.T) {
		for _, u := range []string{"/lib/systemd/system/hostplane-coordinator.service", "/lib/systemd/system/hostplane-agent.service"} {
			o, e, err := run(t, "systemd-analyze", "verify", u)
			if err != nil || strings.TrimSpace(e) != "" {
				t.Errorf("systemd-analyze verify %s: %v\nstdout: %s\nstderr: %s", u, err, o, e)
			}
			t.Logf("systemd-analyze security --offline=true %s: %.1f", filepath.Base(u), exposure(t, u))
		}
		hourlyLogrotate(t, "/lib/systemd/system")
	})
	t.Run("coordinator notify", func(t *testing.T) { coordinatorNotify(t) })
	t.Run("agent notify", func(t *testing.T) { agentNotify(t) })
	t.Run("package upgrade", func(t *testing.T) { packageUpgrade(t, coord, agent, u.Uid) })

	// remove keeps configuration, state and the user.
	mustRun(t, "dpkg", "-r", "hostplane-agent", "hostplane-coordinator")
	for _, f := range []string{"/usr/sbin/hostplane-coordinator", "/usr/bin/hostplanectl", "/usr/sbin/hostplane-agent",
		"/lib/systemd/system/hostplane-coordinator.service"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s still there after dpkg -r", f)
		}
	}
	for _, f := range []string{"/etc/hostplane/coordinator.json", "/etc/hostplane/agent.json", "/var/lib/hostplane/coordinator", "/var/lib/hostplane/agent"} {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("%s gone after dpkg -r (remove keeps configuration and state): %v", f, err)
		}
	}
	if _, err := user.Lookup("hostplane"); err != nil {
		t.Errorf("hostplane user gone after dpkg -r: %v", err)
	}

	// purge leaves nothing.
	mustRun(t, "dpkg", "--purge", "hostplane-agent", "hostplane-coordinator")
	for p, fs := range files {
		if installed(t, p) {
			t.Errorf("%s still known to dpkg after --purge", p)
		}
		for _, f := range fs {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("%s: %s left after purge", p, f)
			}
		}
	}
	for _, f := range leftovers {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left after purge", f)
		}
	}
	if _, err := user.Lookup("hostplane"); err == nil {
		t.Error("hostplane user left after purge")
	}
	if o, _, _ := run(t, "getent", "group", "hostplane"); o != "" {
		t.Errorf("hostplane group left after purge: %s", o)
	}
}

// packageUpgrade installs a newer build over the installed one, as an operator
// upgrades: the binaries report the new version, an edited conffile is kept, the
// state directory and the user stay.
func packageUpgrade(t *testing.T, coord, agent, uid string) {
	old := mustRun(t, "dpkg-query", "-W", "-f=${Version}", "hostplane-coordinator")
	newVersion := old + ".1" // sorts after old for dpkg
	edited := `{"data-dir": "/var/lib/hostplane/coordinator", "admin-socket": "/run/hostplane/coordinator/admin.sock",
 "bootstrap-account": false, "log-level": "debug"}
`
	if err := os.WriteFile("/etc/hostplane/coordinator.json", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/var/lib/hostplane/coordinator/marker", []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	// The .debs only: dpkg installs them, and the .rpm's nfpm runs would be
	// most of this build's CPU after its links.
	o, e, err := runEnv(t, []string{"HOSTPLANE_VERSION=" + newVersion, "DIST=" + dist, "PACKAGERS=deb"}, "scripts/build-packages.sh")
	if err != nil {
		t.Fatalf("build %s: %v\n%s%s", newVersion, err, o, e)
	}
	nc, _ := filepath.Glob(filepath.Join(dist, "hostplane-coordinator_*_amd64.deb"))
	na, _ := filepath.Glob(filepath.Join(dist, "hostplane-agent_*_amd64.deb"))
	if len(nc) != 1 || len(na) != 1 {
		t.Fatalf("upgrade build: %v %v", nc, na)
	}
	dpkgInstall(t, nc[0])
	dpkgInstall(t, na[0], "--force-depends")
	for _, p := range []string{"hostplane-coordinator", "hostplane-agent"} {
		if v := mustRun(t, "dpkg-query", "-W", "-f=${Version}", p); v != newVersion {
			t.Errorf("%s at %q after the upgrade, want %q", p, v, newVersion)
		}
	}
	if v := strings.TrimSpace(mustRun(t, "/usr/sbin/hostplane-coordinator", "version")); v != newVersion {
		t.Errorf("upgraded hostplane-coordinator reports %q, want %q", v, newVersion)
	}
	if b, _ := os.ReadFile("/etc/hostplane/coordinator.json"); string(b) != edited {
		t.Errorf("the edited conffile was replaced on upgrade:\n%s", b)
	}
	if b, _ := os.ReadFile("/var/lib/hostplane/coordinator/marker"); string(b) != "state" {
		t.Error("coordinator state lost on upgrade")
	}
	if u, err := user.Lookup("hostplane"); err != nil || u.Uid != uid {
		t.Errorf("hostplane user after the upgrade: %v %v (uid was %s)", u, err, uid)
	}
	// Downgrading back keeps the files list checks below meaningful.
	dpkgInstall(t, coord)
	dpkgInstall(t, agent, "--force-depends")
}

// testPackages are the packages TestInstallRemovePurge installs, in the order
// they are purged.
var testPackages = []string{"hostplane-agent", "hostplane-coordinator"}

// ownMarker records each package and version TestInstallRemovePurge installs
// ("NAME VERSION" lines), written before its dpkg -i and removed once the
// test's purge leaves neither package known to dpkg. A run killed before its
// cleanups (SIGKILL, or a go test -timeout the stop time did not prevent)
// leaves it behind with the packages, and the next run purges them
// (purgeOwnLeftovers). It lives outside every path the packages own, so the
// purge checks do not see it.
const ownMarker = "/var/lib/hostplane-packagetest/installed"

// dpkgInstall records deb's package and version in ownMarker, then installs
// it with dpkg -i and flags.
func dpkgInstall(t *testing.T, deb string, flags ...string) {
	t.Helper()
	name := strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", deb, "Package"))
	version := strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", deb, "Version"))
	if err := os.MkdirAll(filepath.Dir(ownMarker), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(ownMarker, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "%s %s\n", name, version)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("%s: %v", ownMarker, err)
	}
	mustRun(t, "dpkg", append(append([]string{"-i"}, flags...), deb)...)
}

// purgeTestPackages purges whichever of testPackages dpkg knows, and removes
// ownMarker when none is left.
func purgeTestPackages(t *testing.T) {
	t.Helper()
	left := false
	for _, p := range testPackages {
		if installed(t, p) {
			if o, e, err := run(t, "dpkg", "--purge", p); err != nil {
				t.Errorf("dpkg --purge %s: %v\n%s%s", p, err, o, e)
			}
			left = left || installed(t, p)
		}
	}
	if !left {
		if err := os.RemoveAll(filepath.Dir(ownMarker)); err != nil {
			t.Error(err)
		}
	}
}

// purgeOwnLeftovers purges the packages an earlier run of this test
// installed and did not purge (killed before its cleanups): those ownMarker
// records, at the version it records. Nothing else is touched: without the
// marker, or with a package at a version the marker does not record (an
// operator's installation, or an upgrade after the test's), the test refuses
// to start as before and says why.
func purgeOwnLeftovers(t *testing.T) {
	t.Helper()
	marker, err := os.ReadFile(ownMarker)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, p := range testPackages {
		if installed(t, p) {
			have[p] = mustRun(t, "dpkg-query", "-W", "-f=${Version}", p)
		}
	}
	purge, err := leftoversToPurge(string(marker), have)
	if err != nil {
		t.Fatalf("%v: dpkg --purge it by hand if an earlier run of this test left it, and remove %s", err, ownMarker)
	}
	if len(purge) > 0 {
		t.Logf("an earlier run of this test left %v installed (%s records installing them): purging them", purge, ownMarker)
	}
	purgeTestPackages(t)
	if _, err := os.Stat(ownMarker); err == nil {
		t.Fatalf("the leftovers of an earlier run are still installed after dpkg --purge; %s kept", ownMarker)
	}
}

// leftoversToPurge is which of the installed packages have (name → version)
// may be purged as an earlier run's leftovers, by marker (ownMarker's text):
// all of them when the marker records each at its version; none, and an
// error naming the first it does not, otherwise.
func leftoversToPurge(marker string, have map[string]string) ([]string, error) {
	recorded := map[string]bool{}
	for _, l := range strings.Split(marker, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			recorded[f[0]+" "+f[1]] = true
		}
	}
	var out []string
	for _, p := range testPackages {
		v, ok := have[p]
		if !ok {
			continue
		}
		if !recorded[p+" "+v] {
			return nil, fmt.Errorf("%s %s is installed on this machine and %s does not record this test installing that version: it is not this test's to purge", p, v, ownMarker)
		}
		out = append(out, p)
	}
	return out, nil
}

// unmetDeps lists the .deb's Depends that are not installed.
func unmetDeps(t *testing.T, deb string) []string {
	var out []string
	for _, d := range strings.Split(mustRun(t, "dpkg-deb", "-f", deb, "Depends"), ",") {
		name := strings.Fields(d)[0]
		if !installed(t, name) {
			out = append(out, name)
		}
	}
	return out
}

// notifySocket is a datagram socket standing in for systemd's.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ns := &notifySocket{path: path, conn: c, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return ns
}

// expect waits for a datagram containing want and returns what came before it.
func (ns *notifySocket) expect(t *testing.T, want string, within time.Duration) []string {
	t.Helper()
	var before []string
	deadline := time.After(within)
	var stop <-chan time.Time
	if at := stopTime(); !at.IsZero() {
		stop = time.After(time.Until(at))
	}
	for {
		select {
		case m, ok := <-ns.msgs:
			if !ok {
				t.Fatalf("notify socket closed waiting for %q (got %q)", want, before)
			}
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return before
				}
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("no %q within %v (got %q)", want, within, before)
		case <-stop:
			t.Fatalf("waiting for %q: %s, %v before go test's -timeout, passed: the test stops here so that its cleanups (dpkg --purge) still run (got %q)", want, stopWhat, stopMarginOf(), before)
		}
	}
}

// daemon starts an installed binary with NOTIFY_SOCKET and a 900ms watchdog.
func daemon(t *testing.T, ns *notifySocket, name string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=900000")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	return cmd, &log
}

// notifyLifecycle checks READY=1, then watchdog pings, then STOPPING=1 on
// SIGTERM and a clean exit. (Pings while starting are fine: they pass the same
// progress check, and keep a member that waits long for a leader alive.)
func notifyLifecycle(t *testing.T, ns *notifySocket, cmd *exec.Cmd) {
	t.Helper()
	start := time.Now()
	before := ns.expect(t, "READY=1", 30*time.Second)
	t.Logf("READY=1 after %v (before it: %q)", time.Since(start).Round(time.Millisecond), before)
	for i := 0; i < 3; i++ {
		ns.expect(t, "WATCHDOG=1", 3*time.Second)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ns.expect(t, "STOPPING=1", 10*time.Second)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("no exit within 20s of SIGTERM")
	}
}

func coordinatorNotify(t *testing.T) {
	ns := newNotifySocket(t)
	dir := t.TempDir()
	cmd, _ := daemon(t, ns, "/usr/sbin/hostplane-coordinator", "run", "--config", "/etc/hostplane/coordinator.json",
		"--node-id", "pkgtest", "--data-dir", dir, "--admin-socket", filepath.Join(dir, "admin.sock"),
		"--api-addr", framework.FreeAddr(t, "tcp"), "--raft-addr", framework.FreeAddr(t, "tcp"))
	notifyLifecycle(t, ns, cmd)
}

func agentNotify(t *testing.T) {
	if _, err := os.Stat("/var/run/libvirt/libvirt-sock"); err != nil {
		t.Fatal("libvirtd is not running: run scripts/install-libvirt.sh and scripts/start-libvirt.sh")
	}
	ns := newNotifySocket(t)
	dir := t.TempDir()
	pool := fmt.Sprintf("hpkgtest-%d", os.Getpid())
	t.Cleanup(func() {
		_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "pool-destroy", pool).Run()
		_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "pool-undefine", pool).Run()
	})
	cmd, _ := daemon(t, ns, "/usr/sbin/hostplane-agent", "-config", "/etc/hostplane/agent.json",
		"-data-dir", filepath.Join(dir, "data"), "-socket", filepath.Join(dir, "agent.sock"),
		"-pool-name", pool, "-pool-path", filepath.Join(dir, "pool"))
	notifyLifecycle(t, ns, cmd)
}

// hourlyLogrotate checks the agent's hourly log rotation as installed in
// dir: the timer and its service verify, the timer fires every hour, the
// service runs logrotate on the installed /etc/logrotate.d/hostplane-agent
// with logrotate's default state file (the daily run's: no second daily
// rotation), and the agent's unit starts the timer.
func hourlyLogrotate(t *testing.T, dir string) {
	t.Helper()
	timer, svc := filepath.Join(dir, "hostplane-agent-logrotate.timer"), filepath.Join(dir, "hostplane-agent-logrotate.service")
	o, e, err := run(t, "systemd-analyze", "verify", timer, svc)
	if err != nil || strings.TrimSpace(e) != "" {
		t.Errorf("systemd-analyze verify %s %s: %v\nstdout: %s\nstderr: %s", timer, svc, err, o, e)
	}
	read := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if tm := read(timer); !regexp.MustCompile(`(?m)^OnCalendar=hourly$`).MatchString(tm) {
		t.Errorf("%s does not fire every hour:\n%s", timer, tm)
	}
	if sv := read(svc); !regexp.MustCompile(`(?m)^ExecStart=/usr/sbin/logrotate /etc/logrotate.d/hostplane-agent$`).MatchString(sv) {
		t.Errorf("%s does not run logrotate on /etc/logrotate.d/hostplane-agent with the default state file:\n%s", svc, sv)
	}
	if _, err := os.Stat("/etc/logrotate.d/hostplane-agent"); err != nil {
		t.Errorf("the file the hourly service rotates: %v", err)
	}
	if a := read(filepath.Join(dir, "hostplane-agent.service")); !regexp.MustCompile(`(?m)^Wants=hostplane-agent-logrotate\.timer$`).MatchString(a) {
		t.Errorf("hostplane-agent.service does not start hostplane-agent-logrotate.timer:\n%s", a)
	}
}
