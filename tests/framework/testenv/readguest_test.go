package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestReadGuestFile reads a file of an ext2 file system in a qcow2 image, as
// the guest tests read /bootcount from a guest's disk.
func TestReadGuestFile(t *testing.T) {
	for _, tool := range []string{"mke2fs", "qemu-img", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run scripts/install-test-deps.sh (e2fsprogs, qemu-utils)", tool)
		}
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bootcount"), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, qcow := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("mke2fs", "-q", "-t", "ext2", "-d", root, raw, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v %s", err, out)
	}
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	if got := ReadGuestFile(t, qcow, "/bootcount"); got != "3" {
		t.Fatalf("ReadGuestFile /bootcount = %q, want 3", got)
	}
}
