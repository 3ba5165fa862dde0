package hostenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testPrefix(t *testing.T) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "hpt" + hex.EncodeToString(b)
}

// exited reports whether cmd ends within d.
func exited(cmd *exec.Cmd, d time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return false
	}
}

func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func inUserDB(name string) bool {
	return slices.Contains(namesWithPrefix("/etc/passwd", name), name) ||
		slices.Contains(namesWithPrefix("/etc/group", name), name)
}

// A killed test's leftovers (its root with an owner that no longer runs, a
// process naming the root, a process of its user, a mount under the root,
// its users and groups; and users of a prefix whose root is gone) are
// removed by the next Root; a live test's root and a root just made (no
// owner file yet) are left alone.
func TestRootSweepsWhatAKilledTestLeft(t *testing.T) {
	Need(t, "useradd", "userdel", "groupadd", "groupdel", "setpriv", "tail", "mount", "umount")
	live, _ := Root(t)

	// A root whose owner ran and ended.
	dead := testPrefix(t)
	stale := filepath.Join(Base, dead)
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("umount", "--lazy", filepath.Join(stale, "mnt")).Run()
		_ = os.RemoveAll(stale)
	})
	t.Cleanup(func() { removeUsersNow(dead) })
	gone := start(t, "sleep", "30")
	owner := strconv.Itoa(gone.Process.Pid) + " " + procStart(gone.Process.Pid) + "\n"
	_ = gone.Process.Kill()
	_ = gone.Wait()
	if err := os.WriteFile(filepath.Join(stale, ownerFile), []byte(owner), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	naming := start(t, "tail", "-f", filepath.Join(stale, "log"))
	Run(t, "groupadd", dead+"sftp")
	Run(t, "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", dead+"sftp", dead+"c1")
	asUser := start(t, "setpriv", "--reuid="+dead+"c1", "--regid="+dead+"c1", "--clear-groups", "sleep", "300")
	if err := os.Mkdir(filepath.Join(stale, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "mount", "-t", "tmpfs", "tmpfs", filepath.Join(stale, "mnt"))

	// Users of a prefix whose root is gone.
	orphan := testPrefix(t)
	t.Cleanup(func() { removeUsersNow(orphan) })
	Run(t, "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", orphan+"c1")

	// A root just made by a test that has not written its owner yet.
	fresh := filepath.Join(Base, testPrefix(t))
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(fresh) })

	next, _ := Root(t)

	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed test's root %s is still there (%v)", stale, err)
	}
	if !exited(naming, 5*time.Second) {
		t.Error("a process naming the killed test's root still runs")
	}
	if !exited(asUser, 5*time.Second) {
		t.Error("a process of the killed test's user still runs")
	}
	for _, n := range []string{dead + "c1", dead + "sftp", orphan + "c1"} {
		if inUserDB(n) {
			t.Errorf("%s is still in the user database", n)
		}
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), stale) {
		t.Errorf("a mount under %s is still there", stale)
	}
	for _, keep := range []string{live, fresh, next} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s was removed: %v", keep, err)
		}
	}
	if _, err := os.Stat(filepath.Join(live, ownerFile)); err != nil {
		t.Errorf("the live root lost its owner file: %v", err)
	}
}
