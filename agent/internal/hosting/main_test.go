package hosting_test

import (
	"os"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestMain removes the binaries the tests built (the agent for the shipped
// logrotate file's postrotate): without it each run left its run directory
// in /tmp until the next test process swept it.
func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }
