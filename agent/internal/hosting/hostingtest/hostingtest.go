// Package hostingtest starts the real servers of a hosting node for tests
// (nginx through the hosting package, MariaDB, sshd) without systemd, each in
// a per-test directory with per-test ports and name prefixes, and removes
// everything afterwards. A missing program fails the test saying how to
// install it.
package hostingtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Install is how to install what these tests need.
const Install = "run scripts/install-hosting.sh as root (or make test)"

// Need fails the test unless every program is found and the test runs as root.
func Need(tb testing.TB, progs ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("hosting tests run as root (they create users and start servers); %s", Install)
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			tb.Fatalf("%s not found: %s", p, Install)
		}
	}
}

// Base is where test roots live: not under /tmp, since every component of an
// SFTP chroot must be root-owned and not world-writable.
const Base = "/var/lib/hostplane-test"

// Root makes a fresh hosting root for the test (root:root 0755 all the way
// down) and a short random prefix for its user and group names; both are
// removed when the test ends.
func Root(tb testing.TB) (root, prefix string) {
	tb.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	prefix = "hpt" + hex.EncodeToString(b)
	if err := os.MkdirAll(Base, 0o755); err != nil {
		tb.Fatal(err)
	}
	_ = os.Chmod(Base, 0o755)
	root = filepath.Join(Base, prefix)
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = os.RemoveAll(root)
		_ = os.Remove(Base) // only if empty: other tests may run
	})
	return root, prefix
}

// Run runs a command and fails the test with its output on error.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WaitFile waits up to d for a file to exist.
func WaitFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within %s", path, d)
}

// Ctx is a context ending with the test.
func Ctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}
