package packagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopChildEnv, when set (to a directory), makes TestStopsBeforeGoTestTimeout
// the child it runs: a test that stops itself before go test's -timeout.
const stopChildEnv = "HOSTPLANE_PACKAGETEST_STOP_CHILD"

// TestStopsBeforeGoTestTimeout: a test that stops itself with
// stopBeforeTimeout fails at its stop time, inside go test's -timeout, with
// its cleanups run (where TestInstallRemovePurge purges the packages it
// installed), instead of go test's timeout panic, which runs none. The test
// runs this test binary again under go test -timeout 15s as a child whose
// step (sleep 600, through mustRun as every step of the install test) would
// outlast it, with a margin of 7 s instead of stopMargin's minutes; the
// child's cleanup runs a command (lifting the stop, as the purge does) that
// writes a file.
func TestStopsBeforeGoTestTimeout(t *testing.T) {
	if dir := os.Getenv(stopChildEnv); dir != "" {
		stopChild(t, dir)
		return
	}
	dir := t.TempDir()
	const timeout = 15 * time.Second
	cmd := exec.Command(os.Args[0], "-test.run=^TestStopsBeforeGoTestTimeout$", "-test.count=1", "-test.v",
		"-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), stopChildEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a step a timed-out child left running
	}
	t.Logf("child (go test -timeout %v) ended after %v: %v\n%s", timeout, took.Round(time.Millisecond), err, out)
	if strings.Contains(string(out), "panic: test timed out") {
		t.Fatalf("the child was ended by go test's timeout panic, not by its stop time")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("child: %v, want a failed test (exit status 1)", err)
	}
	if !strings.Contains(string(out), "sleep killed") || !strings.Contains(string(out), stopWhat+" (7s before go test's -timeout) passed") {
		t.Errorf("the child's failure does not say its step was killed at the stop time")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cleanup")); err != nil || string(b) != "ran\n" {
		t.Errorf("the child's cleanup did not run its command: %q %v", b, err)
	}
	if took > timeout-3*time.Second {
		t.Errorf("the child took %v, want it stopped about 7 s before its %v timeout", took, timeout)
	}
}

// stopChild is the child of TestStopsBeforeGoTestTimeout.
func stopChild(t *testing.T, dir string) {
	stopBeforeTimeout(t, 7*time.Second)
	t.Cleanup(func() {
		liftStop()
		mustRun(t, "sh", "-c", "echo ran >"+filepath.Join(dir, "cleanup"))
	})
	mustRun(t, "sleep", "600")
	t.Error("sleep 600 returned before go test's timeout")
}

// TestLeftoversToPurge: the next run purges the packages an earlier run left
// installed only when ownMarker records each at the version installed; a
// package without the marker's record (an operator's installation, or one
// upgraded since) makes it purge nothing and say which.
func TestLeftoversToPurge(t *testing.T) {
	const marker = "hostplane-coordinator 1.2+git1.g1\nhostplane-agent 1.2+git1.g1\nhostplane-coordinator 1.2+git1.g1.1\n"
	for _, tc := range []struct {
		name   string
		marker string
		have   map[string]string
		want   []string
		err    string
	}{
		{"nothing installed", marker, map[string]string{}, nil, ""},
		{"both at recorded versions", marker, map[string]string{"hostplane-coordinator": "1.2+git1.g1", "hostplane-agent": "1.2+git1.g1"},
			[]string{"hostplane-agent", "hostplane-coordinator"}, ""},
		{"left mid-upgrade", marker, map[string]string{"hostplane-coordinator": "1.2+git1.g1.1"}, []string{"hostplane-coordinator"}, ""},
		{"an operator's version", marker, map[string]string{"hostplane-coordinator": "1.2+git1.g1", "hostplane-agent": "1.3"},
			nil, "hostplane-agent 1.3 is installed"},
		{"the version of the other package", "hostplane-coordinator 1.3\n", map[string]string{"hostplane-agent": "1.3"},
			nil, "hostplane-agent 1.3 is installed"},
		{"an empty marker", "", map[string]string{"hostplane-coordinator": "1.2+git1.g1"}, nil, "hostplane-coordinator 1.2+git1.g1 is installed"},
	} {
		got, err := leftoversToPurge(tc.marker, tc.have)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), ownMarker) || got != nil {
				t.Errorf("%s: %v %v, want nothing to purge and an error naming %q and the marker", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}
