package framework

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClock makes a clock file for coordinators started with
// --test-clock-file FILE (tests only: it sets HOSTPLANE_TEST_CLOCK_OPT_IN,
// the coordinator's server.TestClockOptIn, for the test) at offset 0, and
// returns it with set, which moves their clock to the wall clock plus off
// (the file is replaced atomically; coordinators read it again when it
// changes).
func TestClock(t *testing.T) (file string, set func(off time.Duration)) {
	t.Helper()
	t.Setenv("HOSTPLANE_TEST_CLOCK_OPT_IN", "this-is-a-test")
	file = filepath.Join(t.TempDir(), "clock")
	set = func(off time.Duration) {
		t.Helper()
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(off.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	set(0)
	return file, set
}
