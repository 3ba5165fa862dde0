package fsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSnapshotRefusesCutShort: a backup cut anywhere after its header
// (a copy that ran out of disk, a download cut short) is an error from
// CheckSnapshot, never a fault that kills the coordinator (bbolt maps the
// file: a page past its end was a SIGBUS in the leader serving `hostplanectl
// cluster restore`); the whole backup passes.
func TestCheckSnapshotRefusesCutShort(t *testing.T) {
	dir, full := emptyBackup(t)
	path := filepath.Join(dir, "backup.snap")
	if err := os.WriteFile(path, full, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckSnapshot(path); err != nil {
		t.Fatalf("the whole backup: %v", err)
	}
	for _, n := range []int{len(snapshotMagic) + 100, len(snapshotMagic) + 4096, len(snapshotMagic) + 8192, len(full) / 2, len(full) - 4096, len(full) - 1} {
		if err := os.WriteFile(path, full[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CheckSnapshot(path); err == nil || !strings.Contains(err.Error(), "backup") {
			t.Errorf("a backup cut to %d of %d bytes: %v", n, len(full), err)
		}
	}
}

// TestBackupWithoutHeaderRefused: a stream that is not a hostplane backup
// (its first bytes are not the snapshot header: a bare database, another
// program's file) is refused by CheckSnapshot and by MarkRestore alike,
// and MarkRestore writes nothing.
func TestBackupWithoutHeaderRefused(t *testing.T) {
	dir, full := emptyBackup(t)
	for name, b := range map[string][]byte{
		"bare database":  full[len(snapshotMagic):],
		"header changed": append([]byte{full[0] ^ 1}, full[1:]...),
		"empty":          nil,
	} {
		path, dst := filepath.Join(dir, "backup.snap"), filepath.Join(dir, "marked")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CheckSnapshot(path); err == nil || !strings.Contains(err.Error(), "bad header") {
			t.Errorf("%s: CheckSnapshot: %v, want bad header", name, err)
		}
		if err := MarkRestore(path, dst); err == nil || !strings.Contains(err.Error(), "bad header") {
			t.Errorf("%s: MarkRestore: %v, want bad header", name, err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s: MarkRestore wrote %s (%v)", name, dst, err)
		}
	}
}

// emptyBackup is a temporary directory and the backup of an empty state
// opened in it.
func emptyBackup(t *testing.T) (dir string, full []byte) {
	t.Helper()
	dir = t.TempDir()
	f, err := Open(filepath.Join(dir, "fsm.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return dir, backup(t, f)
}
