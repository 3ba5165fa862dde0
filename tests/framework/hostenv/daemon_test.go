package hostenv

import (
	"os/exec"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestDaemonsDieWithTheTest: MariaDB and sshd (started by startDaemon) are
// killed when the test binary dies without running its Cleanup.
func TestDaemonsDieWithTheTest(t *testing.T) {
	framework.DiesWithTheTest(t, func(cmd *exec.Cmd, _ string) error {
		startDaemon(t, cmd, nil, time.Second)
		return nil
	})
}
