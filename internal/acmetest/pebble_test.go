package acmetest

import (
	"os/exec"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestPebbleDiesWithTheTest: pebble (started by startPebble) is killed when
// the test binary that started it dies without running its Cleanup.
func TestPebbleDiesWithTheTest(t *testing.T) {
	framework.DiesWithTheTest(t, func(cmd *exec.Cmd, _ string) error { return startPebble(cmd) })
}
