// Package scripts holds tests of the shell scripts beside them.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// notInUnion are the packages a step installs on a condition the union
// cannot have: each with why.
var notInUnion = map[string]string{
	// Only where no npm is on PATH: a nodejs from elsewhere (NodeSource's)
	// ships its own, which Debian's npm would not replace but sit beside.
	"install-mcp-conformance.sh npm": "installed only when no npm is on PATH",
}

// declRE is the line install-test-deps.sh reads a script's packages from
// (its apt_packages: sed, at the start of a line, double quotes).
var declRE = regexp.MustCompile(`^APT_PACKAGES="([^"]*)"`)

// assignRE: any line that sets APT_PACKAGES.
var assignRE = regexp.MustCompile(`^\s*(export\s+|local\s+|readonly\s+|declare\s+\S*\s*)?APT_PACKAGES(\+?=|$|\s)`)

// TestInstallTestDepsUnion: every Debian package that a step of
// install-test-deps.sh hands to apt is in the union it installs in one
// apt-get run first (--apt-packages prints it), and every install-*.sh
// script is one of its steps. The scripts are read as text: each apt-get
// install and apt-install-missing.sh call's arguments, with $APT_PACKAGES
// taken from the script's own APT_PACKAGES="..." line.
func TestInstallTestDepsUnion(t *testing.T) {
	union := strings.Fields(runScript(t, "install-test-deps.sh", "--apt-packages"))
	steps := strings.Fields(runScript(t, "install-test-deps.sh", "--steps"))
	if len(union) == 0 || len(steps) == 0 {
		t.Fatalf("install-test-deps.sh prints %d packages and %d steps", len(union), len(steps))
	}
	installers, err := filepath.Glob("install-*.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range installers {
		if f != "install-test-deps.sh" && !slices.Contains(steps, f) {
			t.Errorf("scripts/%s is not one of install-test-deps.sh's STEPS: what it installs is not in the union", f)
		}
	}
	for _, f := range append(steps, "install-test-deps.sh") {
		for _, c := range aptCalls(t, f) {
			for _, p := range c.pkgs {
				if _, ok := notInUnion[f+" "+p]; ok || slices.Contains(union, p) {
					continue
				}
				t.Errorf("scripts/%s:%d hands %s to apt and the union (install-test-deps.sh --apt-packages) lacks it: name it on the script's APT_PACKAGES line", f, c.line, p)
			}
		}
	}
}

func runScript(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{name}, args...)...).Output()
	if err != nil {
		t.Fatalf("bash %s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

type aptCall struct {
	line int
	pkgs []string
}

var (
	// dirnameRE: "$(dirname "$0")/x.sh", how some scripts call their neighbours.
	dirnameRE = regexp.MustCompile(`"\$\(dirname "\$0"\)/([^"]*)"`)
	// commentRE: a comment to the end of the line.
	commentRE = regexp.MustCompile(`(^|\s)#.*$`)
	// splitRE: what ends a simple command.
	splitRE = regexp.MustCompile(`\|\||&&|[;|{}()]`)
)

// aptCalls reads the packages each apt-get install and apt-install-missing.sh
// call of scripts/file names, $APT_PACKAGES taken from the file's line.
func aptCalls(t *testing.T, file string) []aptCall {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var declared []string
	ndecl := 0
	for i, l := range lines {
		if !assignRE.MatchString(l) {
			continue
		}
		m := declRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("scripts/%s:%d: install-test-deps.sh reads only APT_PACKAGES=\"...\" on one line, at its start: %q", file, i+1, l)
			continue
		}
		declared = strings.Fields(m[1])
		ndecl++
	}
	if ndecl > 1 {
		t.Errorf("scripts/%s declares APT_PACKAGES %d times (install-test-deps.sh reads them all; the script installs the last)", file, ndecl)
	}
	var calls []aptCall
	used := false
	defer func() {
		if declared != nil && !used {
			t.Errorf("scripts/%s has an APT_PACKAGES line and hands no $APT_PACKAGES to apt (as this test reads it)", file)
		}
	}()
	for i := 0; i < len(lines); i++ {
		start, l := i+1, lines[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + lines[i]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		l = commentRE.ReplaceAllString(dirnameRE.ReplaceAllString(l, "scripts/$1"), "")
		for _, cmd := range splitRE.Split(l, -1) {
			args, ok := aptArgs(strings.Fields(cmd))
			if !ok {
				continue
			}
			c := aptCall{line: start}
			for _, a := range args {
				switch v := strings.Trim(a, `"`); {
				case v == "$APT_PACKAGES" || v == "${APT_PACKAGES}":
					if declared == nil {
						t.Errorf("scripts/%s:%d installs $APT_PACKAGES and has no APT_PACKAGES=\"...\" line", file, start)
					}
					c.pkgs, used = append(c.pkgs, declared...), true
				case v == "$ALL_APT_PACKAGES" && file == "install-test-deps.sh":
					// the union itself
				case strings.HasPrefix(v, "$"):
					t.Errorf("scripts/%s:%d hands %s to apt: name the packages on the script's APT_PACKAGES line", file, start, a)
				default:
					c.pkgs = append(c.pkgs, v)
				}
			}
			calls = append(calls, c)
		}
	}
	return calls
}

// aptArgs: the package arguments of a simple command, ok when it is an
// apt-get install or an apt-install-missing.sh.
func aptArgs(w []string) (args []string, ok bool) {
	for len(w) > 0 && (w[0] == "if" || w[0] == "!" || w[0] == "then" || w[0] == "else" || w[0] == "exec" ||
		strings.Contains(w[0], "=") && !strings.HasPrefix(w[0], "-")) {
		w = w[1:] // keywords and the command's environment
	}
	switch {
	case len(w) == 0:
		return nil, false
	case strings.HasSuffix(w[0], "apt-install-missing.sh"):
		w = w[1:]
	case w[0] == "apt-get":
		w = skipOptions(w[1:])
		if len(w) == 0 || w[0] != "install" {
			return nil, false
		}
		w = w[1:]
	default:
		return nil, false
	}
	for w = skipOptions(w); len(w) > 0; w = skipOptions(w[1:]) {
		if strings.HasPrefix(w[0], ">") || strings.HasPrefix(w[0], "2>") || strings.HasPrefix(w[0], "<") {
			break
		}
		args = append(args, w[0])
	}
	return args, true
}

// skipOptions drops leading options (-o takes a value).
func skipOptions(w []string) []string {
	for len(w) > 0 && strings.HasPrefix(w[0], "-") {
		if w[0] == "-o" && len(w) > 1 {
			w = w[1:]
		}
		w = w[1:]
	}
	return w
}
