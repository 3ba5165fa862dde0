package framework

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSweepRemovesOnlyDeadOwnersRunDirs: a test binary SIGKILLed after
// MkdirTemp (as go test's -timeout kills it) leaves its run directory; a
// sweep keeps it while that process runs and removes it once the process is
// gone; the sweeping process's own run directory stays.
func TestSweepRemovesOnlyDeadOwnersRunDirs(t *testing.T) {
	if os.Getenv("HOSTPLANE_FW_RUNDIR_HELPER") != "" {
		dir, err := MkdirTemp("hpc")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(dir)
		select {} // until killed
	}
	parent := t.TempDir()
	helper, dir := startDirHelper(t, parent)
	runDir := filepath.Dir(dir)
	start, err := procStart(helper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(parent, fmt.Sprintf("hptest-%d-%d", helper.Process.Pid, start)); runDir != want {
		t.Fatalf("the helper's directory %s, want it in %s", dir, want)
	}
	// This process's own run directory, in the same parent.
	ownStart, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(parent, fmt.Sprintf("hptest-%d-%d", os.Getpid(), ownStart))
	if err := os.Mkdir(own, 0o700); err != nil {
		t.Fatal(err)
	}

	if removed := SweepRunDirs(parent); len(removed) != 0 {
		t.Fatalf("a sweep while every owner runs removed %q", removed)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory of a running owner after a sweep: %v", err)
	}

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a SIGKILLed test binary's directory is gone before any sweep (%v): this test shows nothing", err)
	}
	if removed := SweepRunDirs(parent); !slices.Equal(removed, []string{runDir}) {
		t.Fatalf("a sweep after the owner was killed removed %q, want only %s", removed, runDir)
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Fatalf("the killed owner's run directory after the sweep: %v", err)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatalf("the sweeping process's own run directory after the sweep: %v", err)
	}
}

// TestSweepKeepsWhatItDoesNotOwn: a run directory named for a running pid
// with another start time (the pid given again to a new process) is a dead
// owner's and goes; anything not named as a run directory stays.
func TestSweepKeepsWhatItDoesNotOwn(t *testing.T) {
	parent := t.TempDir()
	start, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	reused := filepath.Join(parent, fmt.Sprintf("hptest-%d-%d", os.Getpid(), start+1))
	keep := []string{"hptest-x-1", "hptest-1", "hpc12345", fmt.Sprintf("hptest-%d-%d", os.Getpid(), start)}
	for _, d := range append(keep, filepath.Base(reused)) {
		if err := os.Mkdir(filepath.Join(parent, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(parent, "hptest-1-1") // not a directory
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if removed := SweepRunDirs(parent); !slices.Equal(removed, []string{reused}) {
		t.Fatalf("the sweep removed %q, want only %s", removed, reused)
	}
	for _, d := range append(keep, "hptest-1-1") {
		if _, err := os.Stat(filepath.Join(parent, d)); err != nil {
			t.Errorf("%s after the sweep: %v", d, err)
		}
	}
}

// TestRemoveTempLeavesNothing: a process whose temporary directories were
// all removed (RemoveTemp) leaves no run directory either.
func TestRemoveTempLeavesNothing(t *testing.T) {
	if os.Getenv("HOSTPLANE_FW_RUNDIR_HELPER") != "" {
		a, errA := MkdirTemp("a")
		b, errB := MkdirTemp("b")
		if errA != nil || errB != nil {
			fmt.Println("error", errA, errB)
			os.Exit(1)
		}
		_ = RemoveTemp(a)
		if _, err := os.Stat(filepath.Dir(b)); err != nil {
			fmt.Println("error: the run directory went while b was in it:", err)
			os.Exit(1)
		}
		_ = RemoveTemp(b)
		fmt.Println("ok")
		os.Exit(0)
	}
	parent := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$")
	helper.Env = append(os.Environ(), "HOSTPLANE_FW_RUNDIR_HELPER=1", "TMPDIR="+parent)
	if out, err := helper.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("helper: %v: %s", err, out)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Fatalf("after RemoveTemp of every directory, %s holds %v", parent, left)
	}
}

// TestSweepRemovesAZombieOwnersRunDir: a test binary killed and not yet
// reaped (a zombie: its /proc entry and start time stay until its parent
// waits for it) owns nothing any more; a sweep then removes its run
// directory.
func TestSweepRemovesAZombieOwnersRunDir(t *testing.T) {
	parent := t.TempDir()
	helper, dir := startDirHelper(t, parent)
	runDir := filepath.Dir(dir)
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped (no Wait yet): the helper is a zombie once the kill is
	// delivered.
	stat := fmt.Sprintf("/proc/%d/stat", helper.Process.Pid)
	WaitFor(t, "the killed helper is a zombie", time.Minute, 10*time.Millisecond, func() bool {
		b, err := os.ReadFile(stat)
		i := strings.LastIndexByte(string(b), ')')
		return err == nil && i > 0 && i+2 < len(b) && b[i+2] == 'Z'
	})
	if removed := SweepRunDirs(parent); !slices.Equal(removed, []string{runDir}) {
		t.Fatalf("a sweep while the owner is a zombie removed %q, want %s", removed, runDir)
	}
}

// startDirHelper starts TestSweepRemovesOnlyDeadOwnersRunDirs's helper, a
// test process with parent as its TMPDIR that makes a directory with
// MkdirTemp, prints it and waits to be killed; it returns the process and
// that directory. The helper is killed and reaped when t ends.
func startDirHelper(t *testing.T, parent string) (*exec.Cmd, string) {
	t.Helper()
	helper := exec.Command(os.Args[0], "-test.run", "^TestSweepRemovesOnlyDeadOwnersRunDirs$")
	helper.Env = append(os.Environ(), "HOSTPLANE_FW_RUNDIR_HELPER=1", "TMPDIR="+parent)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the helper said %q (%v), want its directory", line, err)
	}
	return helper, strings.TrimSpace(line)
}
