package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// authSuite is the pre-release suite that has the authorization-server
// scenarios (scripts/install-mcp-conformance.sh installs it beside the
// stable one).
func authSuite(t *testing.T) (node, cli string) {
	t.Helper()
	node, _ = suite(t)
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	cli = filepath.Join(root, ".cache", "mcp-conformance", "suite-auth", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("MCP conformance suite (authorization scenarios) missing (%v): %s", err, installHint)
	}
	return node, cli
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestAuthorizationServerConformance runs the suite's authorization-server
// scenarios (`conformance authorization`: the RFC 8414 metadata document,
// and the authorization-code grant with PKCE and a resource indicator, the
// way an MCP client signs in) against a coordinator's OAuth server. The
// suite prints the authorization URL and waits on its own loopback callback
// for the code, as a user's browser would bring it: here the consent form
// is approved with an API key of the account, and its redirect is followed
// to the suite. Every check must pass.
func TestAuthorizationServerConformance(t *testing.T) {
	node, cli := authSuite(t)
	c := testcluster.New(t, 1)
	_, key := c.NewAccount("conformance-as@example.com", api.AllScopes...)
	base := c.URL(0)

	// The suite's callback listens on a port it is told; take a free one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	clientID := c.RegisterOAuthClient(0, map[string]any{"client_name": "MCP conformance", "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none"})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, cli, "authorization", "--url", base, "--client-id", clientID,
		"--resource", base+"/mcp", "-p", fmt.Sprint(port), "-o", t.TempDir())
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(node)+":"+os.Getenv("PATH"), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	approved := make(chan error, 1)
	started := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if strings.HasPrefix(line, base+"/oauth/authorize?") && !started {
			started = true
			// The suite starts its callback server after printing the URL.
			go func() {
				err := approve(line, base, key)
				if err != nil {
					cancel() // the suite would wait for its callback 5 minutes
				}
				approved <- err
			}()
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	t.Logf("conformance authorization output:\n%s%s", out.String(), errBuf.String())
	if !started {
		t.Fatalf("the suite printed no authorization URL of %s", base)
	}
	if aerr := <-approved; aerr != nil {
		t.Fatalf("approving the suite's authorization request: %v", aerr)
	}
	if err != nil {
		t.Fatalf("conformance authorization: %v (a check failed: see the output)", err)
	}
	m := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindStringSubmatch(out.String())
	if n := 0; m == nil || m[2] != "0" || func() bool { _, _ = fmt.Sscan(m[1], &n); return n < 3 }() {
		t.Fatalf("conformance authorization: summary %v; want at least 3 checks passed, none failed", m)
	}
}

// approve is the user's part of the authorization-code grant: the consent
// page of authURL, approved with key, and its redirect followed to the
// client's callback.
func approve(authURL, base, key string) error {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(page))
	if resp.StatusCode != 200 || m == nil {
		return fmt.Errorf("consent page: %d %.300s", resp.StatusCode, page)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	form := u.Query()
	form.Set("csrf", m[1])
	form.Set("api_key", key)
	form.Set("decision", "approve")
	resp, err = hc.PostForm(base+"/oauth/authorize", form)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc == "" {
		return fmt.Errorf("approve: %d %q", resp.StatusCode, loc)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err = hc.Get(loc) // the suite's callback, once it listens
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}
