package libvirttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/testenv"
)

// TestRunCleanRemovesOnlyItsRun is `make run-clean` on a data directory
// whose run left two domains (one running, one with a managed save image)
// with disks in its pool, and the pool: those go, and nothing else does — a domain with its disk in a sibling
// directory whose path starts the same (<dir>/pool2), one elsewhere, another
// pool. While a coordinator holds the data directory it removes nothing; run
// again it finds nothing to remove; and a pool of its name at another path is
// left alone.
func TestRunCleanRemovesOnlyItsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("defines libvirt domains and pools")
	}
	testenv.RequireLibvirt(t)
	prefix := testenv.Prefix()
	dir := t.TempDir()
	pool := localPool(dir)
	other := prefix + "-other-pool"
	testenv.Cleanup(t, prefix, pool)
	testenv.Cleanup(t, prefix, other)
	virsh := func(args ...string) (string, error) {
		out, err := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := virsh(args...); err != nil {
			t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	definePool := func(name, path string) {
		t.Helper()
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		must("pool-define-as", name, "dir", "--target", path)
		must("pool-start", name)
	}
	defineDomain := func(name, disk string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(disk), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		xml := filepath.Join(t.TempDir(), name+".xml")
		if err := os.WriteFile(xml, []byte(`<domain type='qemu'><name>`+name+`</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>
<source file='`+disk+`'/><target dev='vda' bus='virtio'/></disk><graphics type='vnc' autoport='yes' listen='127.0.0.1'/></devices></domain>`), 0o644); err != nil {
			t.Fatal(err)
		}
		must("define", xml)
	}
	definePool(pool, filepath.Join(dir, "pool"))
	definePool(other, filepath.Join(t.TempDir(), "pool"))
	mine := []string{prefix + "-mine-off", prefix + "-mine-on"}
	defineDomain(mine[0], filepath.Join(dir, "pool", "a.img"))
	defineDomain(mine[1], filepath.Join(dir, "pool", "b.img"))
	must("start", mine[1]) // no bootable disk: the firmware waits, running
	// A run's server the host saved (libvirt-guests' default ON_SHUTDOWN=suspend
	// is a managed save): undefine refuses it unless told to drop the image.
	must("start", mine[0])
	must("managedsave", mine[0])
	notMine := []string{prefix + "-sibling", prefix + "-elsewhere"}
	defineDomain(notMine[0], filepath.Join(dir, "pool2", "a.img"))
	defineDomain(notMine[1], filepath.Join(t.TempDir(), "a.img"))

	runClean := func(dir string) (string, error) {
		cmd := exec.Command("make", "--no-print-directory", "run-clean")
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(os.Environ(), "HOSTPLANE_DATA_DIR="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	defined := func(name string) bool { _, err := virsh("dominfo", name); return err == nil }
	poolDefined := func(name string) bool { _, err := virsh("pool-info", name); return err == nil }

	// A coordinator holds the data directory (make run is running): nothing goes.
	lock, err := os.OpenFile(filepath.Join(dir, "coordinator.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	out, err := runClean(dir)
	if err == nil || !strings.Contains(out, "a coordinator is running on "+dir) || !defined(mine[0]) || !poolDefined(pool) {
		t.Fatalf("run-clean while a coordinator holds %s: %v\n%s\nwant a refusal and nothing removed", dir, err, out)
	}
	lock.Close()

	out, err = runClean(dir)
	if err != nil {
		t.Fatalf("run-clean: %v\n%s", err, out)
	}
	for _, d := range mine {
		if defined(d) {
			t.Errorf("domain %s (disk in %s/pool) is still defined:\n%s", d, dir, out)
		}
		if !strings.Contains(out, "domain "+d+" removed") {
			t.Errorf("run-clean did not say it removed %s:\n%s", d, out)
		}
	}
	if poolDefined(pool) {
		t.Errorf("pool %s is still defined:\n%s", pool, out)
	}
	for _, d := range notMine {
		if !defined(d) {
			t.Errorf("domain %s, not of this run, was removed:\n%s", d, out)
		}
	}
	if !poolDefined(other) {
		t.Errorf("pool %s, not of this run, was removed:\n%s", other, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "pool", "a.img")); err != nil {
		t.Errorf("the data directory's files went with the pool: %v", err)
	}

	// Again: nothing left to remove.
	if out, err = runClean(dir); err != nil || !strings.Contains(out, "nothing of "+dir+" in libvirt") {
		t.Fatalf("run-clean again: %v\n%s", err, out)
	}

	// The pool name of a data directory, defined at another path.
	dir2 := t.TempDir()
	pool2 := localPool(dir2)
	testenv.Cleanup(t, prefix, pool2)
	definePool(pool2, filepath.Join(t.TempDir(), "elsewhere"))
	if out, err = runClean(dir2); err != nil || !strings.Contains(out, "defined at another path") || !poolDefined(pool2) {
		t.Fatalf("run-clean with its pool name at another path: %v\n%s\nwant it left alone, saying so", err, out)
	}
}
