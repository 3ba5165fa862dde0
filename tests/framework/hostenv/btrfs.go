package hostenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LoopBtrfs mounts a fresh 320 MiB btrfs (a loop device on a sparse file
// in the test's temp dir) at dir, with quotas enabled if quotas is set.
// The mount is unmounted and the loop device detached when the test ends.
func LoopBtrfs(t *testing.T, dir string, quotas bool) {
	t.Helper()
	MountBtrfs(t, LoopDevice(t), dir)
	if quotas {
		Run(t, "btrfs", "quota", "enable", dir)
	}
}

// LoopDevice is a loop device on a fresh 320 MiB btrfs image in the
// test's temp dir, detached when the test ends (after its mounts, made
// later, are gone).
func LoopDevice(t *testing.T) string {
	t.Helper()
	Need(t, "mkfs.btrfs", "btrfs", "losetup", "mount", "umount")
	img := filepath.Join(t.TempDir(), "sites.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(320 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	Run(t, "mkfs.btrfs", "-q", img)
	dev := strings.TrimSpace(Run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// MountBtrfs mounts dev at dir (made if missing, mode 0755 once mounted)
// with the mount options opts, unmounted when the test ends.
func MountBtrfs(t *testing.T, dev, dir string, opts ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "mount", append(opts, dev, dir)...)
	t.Cleanup(func() {
		// A process of the test may still be leaving the mount (sshd's
		// sessions): try for a while.
		var out []byte
		var err error
		for i := 0; i < 50; i++ {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = exec.Command("umount", "--lazy", dir).Run()
		t.Errorf("umount %s: %v %s (unmounted lazily)", dir, err, out)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
