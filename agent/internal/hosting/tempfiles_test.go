package hosting

import (
	"os"
	"path/filepath"
	"testing"
)

// removeOwnedEntries removes what the uid owns at the top of a temporary
// directory (a directory with its contents, a symbolic link but not its
// target) and nothing of anyone else's.
func TestRemoveOwnedEntries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chown): run the hosting tests as root")
	}
	const uid = 54321
	tmp, keep := t.TempDir(), t.TempDir()
	target := filepath.Join(keep, "target")
	mk := func(p string, dir bool, owner int) {
		t.Helper()
		var err error
		if dir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("x"), 0o600)
		}
		if err == nil {
			err = os.Lchown(p, owner, owner)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(target, false, 0)
	mk(filepath.Join(tmp, "mine"), false, uid)
	mk(filepath.Join(tmp, "mydir"), true, uid)
	mk(filepath.Join(tmp, "mydir", "inner"), false, uid)
	mk(filepath.Join(tmp, "theirs"), false, uid+1)
	mk(filepath.Join(tmp, "theirdir"), true, uid+1)
	mk(filepath.Join(tmp, "theirdir", "mine-inside"), false, uid)
	if err := os.Symlink(target, filepath.Join(tmp, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(tmp, "link"), uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := removeOwnedEntries([]string{tmp, filepath.Join(tmp, "absent")}, uid); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mine", "mydir", "link"} {
		if _, err := os.Lstat(filepath.Join(tmp, p)); err == nil {
			t.Errorf("%s left", p)
		}
	}
	for _, p := range []string{filepath.Join(tmp, "theirs"), filepath.Join(tmp, "theirdir", "mine-inside"), target} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
