package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bins are the binaries built once by TestMain.
var bins struct {
	dir, coordinator, ctl, agent string
	err                          error // build failure, reported by every test
	help                         string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hostplane-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.err = build(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./coordinator/cmd/hostplane-coordinator", "./coordinator/cmd/hostplanectl", "./agent/cmd/hostplane-agent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	bins.coordinator = filepath.Join(dir, "hostplane-coordinator")
	bins.ctl = filepath.Join(dir, "hostplanectl")
	bins.agent = filepath.Join(dir, "hostplane-agent")
	out, _ := exec.Command(bins.coordinator, "run", "--help").CombinedOutput()
	bins.help = string(out)
	return nil
}

// repoRoot is testenv.RepoRoot without a testing.TB (TestMain has none).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found above " + dir)
		}
		dir = parent
	}
}

// requireBins fails the test when TestMain could not build the binaries.
func requireBins(t testing.TB) {
	t.Helper()
	if bins.err != nil {
		t.Fatalf("building the binaries failed: %v", bins.err)
	}
}

// coordinatorHasFlag reports whether `hostplane-coordinator run --help` lists flag.
func coordinatorHasFlag(flag string) bool {
	return strings.Contains(bins.help, "--"+flag+" ")
}
