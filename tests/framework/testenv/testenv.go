// Package testenv finds the real libvirtd and the test guest for tests that drive
// real guests (the agent's own tests and the whole-system tests under tests/),
// and gives each test its own names and cleanup. Connecting the agent's
// hypervisor driver to it is agent/internal/testenv's job (it may import the
// agent's internal packages; this package may not).
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Setup is the command that prepares a machine for these tests.
const Setup = "scripts/install-libvirt.sh && scripts/start-libvirt.sh && scripts/build-test-guest.sh"

// LibvirtSocket is libvirtd's socket (env HOSTPLANE_TEST_LIBVIRT_SOCK overrides).
func LibvirtSocket() string {
	if s := os.Getenv("HOSTPLANE_TEST_LIBVIRT_SOCK"); s != "" {
		return s
	}
	return "/var/run/libvirt/libvirt-sock"
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(tb testing.TB) string {
	dir, err := Root()
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Root returns the repository root (the directory holding go.mod) found from
// this source file, without a testing.TB (for TestMain and tools).
func Root() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: repository root (go.mod) not found above " + file)
		}
		dir = parent
	}
}

// Guest is the test guest's files.
type Guest struct {
	Dir, Kernel, Initrd, InitrdNoACPI, Disk, DiskAlt, Cmdline string
	// InitrdGA is Initrd plus the real qemu-ga on org.qemu.guest_agent.0.
	InitrdGA string
}

// RequireGuest returns the test guest or fails the test with the setup command.
func RequireGuest(tb testing.TB) Guest {
	tb.Helper()
	dir := os.Getenv("HOSTPLANE_TEST_GUEST_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(tb), ".cache", "test-guest")
	}
	g := Guest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"),
		InitrdNoACPI: filepath.Join(dir, "initrd-noacpi.img"), Disk: filepath.Join(dir, "disk.qcow2"),
		DiskAlt: filepath.Join(dir, "disk-alt.qcow2"), InitrdGA: filepath.Join(dir, "initrd-ga.img")}
	for _, f := range []string{g.Kernel, g.Initrd, g.InitrdNoACPI, g.Disk, g.DiskAlt, g.InitrdGA} {
		if _, err := os.Stat(f); err != nil {
			tb.Fatalf("test guest missing (%v): run %s", err, Setup)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		tb.Fatalf("test guest cmdline missing: run %s", Setup)
	}
	g.Cmdline = strings.TrimSpace(string(b))
	return g
}

// BalloonGuestVersion is the first test guest (scripts/build-test-guest.sh,
// VERSION) whose initrds load virtio_balloon, so its VMs report their memory
// use through the domain's memory balloon.
const BalloonGuestVersion = 5

// RequireGuestVersion fails the test unless g is at least version v (an older
// cached guest lacks what the test needs), naming the command that rebuilds it.
func RequireGuestVersion(tb testing.TB, g Guest, v int) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(g.Dir, "VERSION"))
	got, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || got < v {
		tb.Fatalf("test guest %s is version %q (%v), this test needs %d or later: run scripts/build-test-guest.sh (it rebuilds an older guest)", g.Dir, strings.TrimSpace(string(b)), err, v)
	}
}

// NetGuestVersion is the networked test guest this tree uses: its files are
// in <guest dir>/net-v3 (scripts/build-test-guest.sh, NET_VERSION). Since
// net-3 its initrd loads virtio_balloon, as BalloonGuestVersion's do.
const NetGuestVersion = "net-3"

// NetGuest is the networked test guest: the test guest with qemu-ga that also
// applies its seed's network-config (virtio-net) and prints
// "GUEST-NET <if> inet|inet6 ADDR", "GUEST-NET <if> route4|route6 via GW",
// "GUEST-NET resolvers A,B" and "GUEST-NET-READY" before GUEST-READY.
type NetGuest struct {
	Dir, Kernel, Initrd, Disk, Cmdline string
}

// RequireNetGuest returns the networked test guest or fails the test with the
// setup command.
func RequireNetGuest(tb testing.TB) NetGuest {
	tb.Helper()
	dir := filepath.Join(RequireGuest(tb).Dir, "net-v3")
	b, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil || strings.TrimSpace(string(b)) != NetGuestVersion {
		tb.Fatalf("networked test guest %s missing or not %s (%v): run %s", dir, NetGuestVersion, err, Setup)
	}
	g := NetGuest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"), Disk: filepath.Join(dir, "disk.qcow2")}
	for _, f := range []string{g.Kernel, g.Initrd, g.Disk} {
		if _, err := os.Stat(f); err != nil {
			tb.Fatalf("networked test guest incomplete (%v): run %s", err, Setup)
		}
	}
	if b, err = os.ReadFile(filepath.Join(dir, "cmdline")); err != nil {
		tb.Fatalf("networked test guest cmdline missing: run %s", Setup)
	}
	g.Cmdline = strings.TrimSpace(string(b))
	return g
}

// RequireLibvirt fails the test unless libvirtd answers on its socket.
func RequireLibvirt(tb testing.TB) {
	tb.Helper()
	c, err := net.DialTimeout("unix", LibvirtSocket(), 2*time.Second)
	if err != nil {
		tb.Fatalf("libvirtd not reachable at %s (%v): run %s", LibvirtSocket(), err, Setup)
	}
	c.Close()
}

// Prefix returns a short unique name prefix for one test's domains and pool.
func Prefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// Logger logs through t.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Cleanup removes every domain whose name starts with prefix, and the pool, on test end.
// It talks to libvirt with virsh so it works even when the code under test is broken.
func Cleanup(tb testing.TB, prefix, pool string) {
	tb.Cleanup(func() {
		out, _ := exec.Command("virsh", "-q", "-c", "qemu:///system", "list", "--all", "--name").Output()
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, prefix) {
				_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "destroy", name).Run()
				_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "undefine", name, "--snapshots-metadata", "--nvram", "--managed-save", "--checkpoints-metadata").Run()
			}
		}
		if pool != "" {
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "pool-destroy", pool).Run()
			_ = exec.Command("virsh", "-q", "-c", "qemu:///system", "pool-undefine", pool).Run()
		}
	})
}

// WaitForLog waits until the file contains n occurrences of substr.
func WaitForLog(ctx context.Context, path, substr string, n int) (string, error) {
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), substr) >= n {
			return string(b), nil
		}
		select {
		case <-ctx.Done():
			return string(b), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readyRE is the test guest's ready line (scripts/build-test-guest.sh) up to
// its last field, uptime=: a line still being written does not match.
var readyRE = regexp.MustCompile(`GUEST-READY bootcount=(\d+) install-id=(\S*) uptime=`)

// Boot is one GUEST-READY line of a test guest's console: its boot counter
// (1 after an install) and the install-id of its disk.
type Boot struct{ Count, InstallID string }

// Boots lists the complete GUEST-READY lines of a console log, oldest first.
func Boots(log string) []Boot {
	var out []Boot
	for _, m := range readyRE.FindAllStringSubmatch(log, -1) {
		out = append(out, Boot{m[1], m[2]})
	}
	return out
}

// LastReady returns the bootcount and install-id of the last complete
// GUEST-READY line ("" and "" if none).
func LastReady(log string) (bootcount, installID string) {
	bs := Boots(log)
	if len(bs) == 0 {
		return "", ""
	}
	return bs[len(bs)-1].Count, bs[len(bs)-1].InstallID
}

// SHA256File is the hex SHA-256 of a file.
func SHA256File(tb testing.TB, p string) string {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReadGuestFile reads a file from a guest's qcow2 disk (works while it runs).
// The copy is taken without a lock (-U) while QEMU may be writing, so a copy
// in which debugfs cannot read the file (it says why on stderr and exits 0:
// once seen as an empty bootcount in tests/e2e) is taken again, up to three
// times a second apart; then the test fails with what debugfs said.
func ReadGuestFile(tb testing.TB, disk, path string) string {
	tb.Helper()
	raw := filepath.Join(tb.TempDir(), "disk.raw")
	defer os.Remove(raw)
	var complaint string
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(time.Second)
		}
		if out, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", disk, raw).CombinedOutput(); err != nil {
			tb.Fatalf("qemu-img convert: %v %s", err, out)
		}
		var stderr strings.Builder
		cmd := exec.Command("debugfs", "-R", "cat "+path, raw)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tb.Fatalf("debugfs: %v %s", err, stderr.String())
		}
		// debugfs prints its version banner on stderr; anything else is
		// why it could not read the file.
		complaint = strings.TrimSpace(dropBanner(stderr.String()))
		if complaint == "" {
			return strings.TrimSpace(string(out))
		}
	}
	tb.Fatalf("debugfs cat %s of a copy of %s, three tries: %s", path, disk, complaint)
	return ""
}

// dropBanner removes debugfs's "debugfs 1.47.0 (5-Feb-2023)" line.
func dropBanner(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// QEMUPID is the pid of the domain's QEMU process, from libvirt's pid file,
// checked against /proc (its command line names guest=dom).
func QEMUPID(tb testing.TB, dom string) int {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", dom+".pid"))
	if err != nil {
		tb.Fatalf("qemu pid of %s: %v", dom, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		tb.Fatalf("qemu pid file of %s: %q", dom, b)
	}
	cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmd), "guest="+dom) {
		tb.Fatalf("pid %d is not the QEMU of %s: %q %v", pid, dom, cmd, err)
	}
	return pid
}

// QEMURSS is the resident set of the domain's QEMU process (QEMUPID, then
// /proc/PID/status).
func QEMURSS(tb testing.TB, dom string) uint64 {
	tb.Helper()
	st, err := os.ReadFile("/proc/" + strconv.Itoa(QEMUPID(tb, dom)) + "/status")
	if err != nil {
		tb.Fatalf("qemu of %s: %v", dom, err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v << 10
		}
	}
	tb.Fatalf("no VmRSS for the QEMU of %s", dom)
	return 0
}
