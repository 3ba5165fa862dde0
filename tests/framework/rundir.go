package framework

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// The temporary directories the rigs make (cluster data directories, the
// built binaries, the registry's, PowerDNS's and the agent's files) live in
// one directory per test process, its run directory: os.TempDir()/
// hptest-<pid>-<start> (os.TempDir() as the process started), start being the process's start time in clock ticks
// since boot (/proc/<pid>/stat), so that a pid the kernel gave again to
// another process does not make a dead owner look alive. A test binary that
// is killed (the CI's timeout, SIGKILL) runs no cleanup and leaves its run
// directory behind; the next test process that makes one (MkdirTemp) first
// removes every run directory whose owner is gone, and never one whose owner
// still runs.
const runDirPrefix = "hptest-"

// runParent holds the run directories: os.TempDir() when the process
// started, before a test's t.Setenv("TMPDIR", …) could change it.
var runParent = os.TempDir()

var run struct {
	mu    sync.Mutex
	dir   string // this process's run directory ("" until the first MkdirTemp)
	swept bool
}

// MkdirTemp is os.MkdirTemp in this process's run directory (made on first
// use, the run directories of dead owners removed before): a directory a
// killed test binary leaves is removed by the next test run. Remove it with
// RemoveTemp.
func MkdirTemp(pattern string) (string, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.dir == "" {
		start, err := procStart(os.Getpid())
		if err != nil {
			return "", fmt.Errorf("the run directory's name: %w", err)
		}
		run.dir = filepath.Join(runParent, fmt.Sprintf("%s%d-%d", runDirPrefix, os.Getpid(), start))
	}
	if !run.swept {
		run.swept = true
		SweepRunDirs(runParent)
	}
	// 0711 as /tmp lets every user through (without listing): a daemon a test
	// runs as another user reaches the files it was given, as before.
	if err := os.Mkdir(run.dir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	} else if err == nil {
		_ = os.Chmod(run.dir, 0o711) // not narrowed by the umask
	}
	return os.MkdirTemp(run.dir, pattern)
}

// RemoveTemp removes dir (made by MkdirTemp) and then the run directory if
// that left it empty, so a test binary that ends normally leaves nothing.
func RemoveTemp(dir string) error {
	run.mu.Lock()
	defer run.mu.Unlock()
	err := os.RemoveAll(dir)
	if run.dir != "" {
		_ = os.Remove(run.dir) // fails while another directory is in it
	}
	return err
}

// keepTemp moves dir (made by MkdirTemp) out of the run directory, to
// os.TempDir(), where no sweep removes it (HOSTPLANE_TEST_KEEP), and returns
// its new path; it returns dir when it cannot.
func keepTemp(dir string) string {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.dir == "" || filepath.Dir(dir) != run.dir {
		return dir
	}
	kept := filepath.Join(runParent, filepath.Base(dir))
	if err := os.Rename(dir, kept); err != nil {
		return dir
	}
	_ = os.Remove(run.dir)
	return kept
}

// SweepRunDirs removes the run directories in parent whose owner process is
// gone and returns them; a run directory whose owner runs, and anything
// not named as a run directory, stays.
func SweepRunDirs(parent string) []string {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		pid, start, ok := parseRunDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		if now, err := procStart(pid); err == nil && now == start && alive(pid) {
			continue // its owner runs (a zombie, killed and not yet reaped, does not)
		}
		p := filepath.Join(parent, e.Name())
		if os.RemoveAll(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// parseRunDir reads the owner's pid and start time from a run directory's
// name.
func parseRunDir(name string) (pid int, start uint64, ok bool) {
	rest, found := strings.CutPrefix(name, runDirPrefix)
	if !found {
		return 0, 0, false
	}
	p, s, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// procStart is process pid's start time in clock ticks since boot (field 22
// of /proc/<pid>/stat); an error when there is no such process.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it follow the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields after the name start at field 3
	if len(f) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	return strconv.ParseUint(f[startField], 10, 64)
}
