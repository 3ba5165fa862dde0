package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hostplane/hostplane/tests/framework/testenv"
)

// The packages of the binaries tests run.
const (
	PkgCoordinator = "./coordinator/cmd/hostplane-coordinator"
	PkgCtl         = "./coordinator/cmd/hostplanectl"
	PkgAgent       = "./agent/cmd/hostplane-agent"
	PkgAgentSim    = "./agent/cmd/hostplane-agent-sim"
	// PkgTestAgent is the agent session with scripted hooks for the
	// coordinator's session tests (see its package comment).
	PkgTestAgent = "./agent/internal/session/testdata/testagent"
)

// BuildOptions select a variant of a binary.
type BuildOptions struct {
	// Version is stamped into pkg/version.Version with -ldflags -X (empty: the
	// default), to run two builds that report different versions side by side.
	Version string
	// Race builds with the race detector.
	Race bool
}

var builds struct {
	mu   sync.Mutex
	dir  string
	done map[string]*built
}

type built struct {
	once sync.Once
	path string
	err  error
}

// SharedBinDirEnv names a directory of this tree's binaries built once for
// every test binary of a run (scripts/run-tests.sh sets it): BuildBinary
// takes a default build (no Version, no Race) of a package from there when
// it holds one, named as go build names it, instead of building its own.
const SharedBinDirEnv = "HOSTPLANE_TEST_BIN_DIR"

// BuildBinary builds the package (one of the Pkg constants, relative to the
// repository root) once per test binary and variant and returns the binary's
// path (or the shared one, SharedBinDirEnv). The binaries live in one
// temporary directory (MkdirTemp) that Main removes.
func BuildBinary(pkg string, o BuildOptions) (string, error) {
	key := fmt.Sprintf("%s|%s|%v", pkg, o.Version, o.Race)
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[string]*built{}
	}
	b := builds.done[key]
	if b == nil {
		b = &built{}
		builds.done[key] = b
	}
	if builds.dir == "" {
		dir, err := MkdirTemp("hpfw-bin")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	dir := builds.dir
	builds.mu.Unlock()
	b.once.Do(func() {
		if shared := os.Getenv(SharedBinDirEnv); shared != "" && o == (BuildOptions{}) {
			if p := filepath.Join(shared, filepath.Base(pkg)); isExecutable(p) {
				b.path = p
				return
			}
		}
		root, err := testenv.Root()
		if err != nil {
			b.err = err
			return
		}
		name := filepath.Base(pkg)
		if o.Version != "" {
			name += "-" + strings.Map(func(r rune) rune {
				if r == '/' || r == ' ' {
					return '_'
				}
				return r
			}, o.Version)
		}
		if o.Race {
			name += "-race"
		}
		out := filepath.Join(dir, name)
		args := []string{"build", "-o", out}
		if o.Race {
			args = append(args, "-race")
		}
		if o.Version != "" {
			args = append(args, "-ldflags", "-X github.com/hostplane/hostplane/pkg/version.Version="+o.Version)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		// go build's own work directory (go-build*) beside the binaries: a
		// build killed with the test binary leaves it to the next run's sweep.
		cmd.Env = append(os.Environ(), "GOTMPDIR="+dir)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
			return
		}
		b.path = out
	})
	return b.path, b.err
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Binary is BuildBinary failing the test when the build fails.
func Binary(t testing.TB, pkg string, o BuildOptions) string {
	t.Helper()
	p, err := BuildBinary(pkg, o)
	if err != nil {
		t.Fatalf("building %s failed: %v", pkg, err)
	}
	return p
}

// Coordinator is the hostplane-coordinator binary of this tree.
func Coordinator(t testing.TB) string { return Binary(t, PkgCoordinator, BuildOptions{}) }

// CoordinatorVersion is hostplane-coordinator built to report version v (a
// rolling upgrade replaces one build by another with RestartWith).
func CoordinatorVersion(t testing.TB, v string) string {
	return Binary(t, PkgCoordinator, BuildOptions{Version: v})
}

// Ctl is the hostplanectl binary of this tree.
func Ctl(t testing.TB) string { return Binary(t, PkgCtl, BuildOptions{}) }

// AgentBinary is the hostplane-agent binary of this tree.
func AgentBinary(t testing.TB) string { return Binary(t, PkgAgent, BuildOptions{}) }

// AgentSim is the hostplane-agent-sim binary of this tree.
func AgentSim(t testing.TB) string { return Binary(t, PkgAgentSim, BuildOptions{}) }

// Main runs a test binary's tests and removes the binaries built for them:
// call it from TestMain as os.Exit(framework.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		_ = RemoveTemp(builds.dir)
	}
	builds.mu.Unlock()
	return code
}

var helps sync.Map // binary → `run --help` output

// HasFlag reports whether `bin run --help` lists --flag (a test needing a flag
// a given build lacks fails saying so, rather than a confusing start failure).
func HasFlag(bin, flag string) bool {
	h, ok := helps.Load(bin)
	if !ok {
		out, _ := exec.Command(bin, "run", "--help").CombinedOutput()
		h, _ = helps.LoadOrStore(bin, string(out))
	}
	return strings.Contains(h.(string), "--"+flag+" ")
}
