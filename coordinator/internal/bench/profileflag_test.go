package bench

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestEnableProfiling: --profile DIR makes a profiling run into DIR (created)
// with a pprof base port whose next three ports are free, and keeps a base
// port already set.
func TestEnableProfiling(t *testing.T) {
	t.Setenv("BENCH_PPROF_BASE_PORT", "")
	t.Setenv("BENCH_PROFILE_DIR", "")
	os.Unsetenv("BENCH_PPROF_BASE_PORT")
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := EnableProfiling(dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("profile directory: %v", err)
	}
	if got := os.Getenv("BENCH_PROFILE_DIR"); got != dir {
		t.Errorf("BENCH_PROFILE_DIR = %q, want %q", got, dir)
	}
	base, err := strconv.Atoi(os.Getenv("BENCH_PPROF_BASE_PORT"))
	if err != nil {
		t.Fatalf("BENCH_PPROF_BASE_PORT = %q: %v", os.Getenv("BENCH_PPROF_BASE_PORT"), err)
	}
	for i := range 3 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i+1))
		if err != nil {
			t.Errorf("node %d's pprof port %d: %v", i, base+i+1, err)
			continue
		}
		ln.Close()
	}

	t.Setenv("BENCH_PPROF_BASE_PORT", "47000")
	if err := EnableProfiling(dir); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("BENCH_PPROF_BASE_PORT"); got != "47000" {
		t.Errorf("a base port set was replaced: %q", got)
	}
}
