package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// FreeAddr returns a free 127.0.0.1 address for network ("tcp" or "udp"):
// freeport.Addr, below the kernel's ephemeral range.
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	return freeport.Addr(t, network)
}

// ReadFile returns the content of the file at path (a log, a console),
// failing t when it cannot be read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ScanFiles calls fn with the path and content of every file under root (a
// directory or one file), passing over directories and sockets, and returns
// how many files it read; it stops at the first error walking or reading,
// but for a file or directory gone between being listed and being read (a
// running daemon renames and removes its files), which it passes over too.
// Tests use it to look for plaintext secrets in what a daemon stores.
func ScanFiles(root string, fn func(path string, raw []byte)) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return unlessVanished(err, p != root)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return unlessVanished(err, true)
		}
		n++
		fn(p, raw)
		return nil
	})
	return n, err
}

// unlessVanished is err, or nil when below (not the root) is set and err
// says the file is no longer there.
func unlessVanished(err error, below bool) error {
	if below && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// AcceptEach serves every connection ln accepts with serve, each in a
// goroutine of its own, until ln is closed; serve closes its connection. It
// returns at once.
func AcceptEach(ln net.Listener, serve func(net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
}

// Tail returns the last n lines of a file (a log), or the error reading it.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLogged waits until the file at path (a log) contains s, failing t
// with the file's last 20 lines when it does not within timeout.
func WaitLogged(t testing.TB, path, s string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not log %q within %v; tail:\n%s", path, s, timeout, Tail(path, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// terminate stops a child started in its own process group: SIGTERM (to the
// child, or to its whole group when group is set), then SIGKILL to the group
// after grace; it returns once done is closed (the child was waited for).
func terminate(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration, group bool) {
	if group {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	} else {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// WaitFor polls ok every interval until it holds, failing t ("WHAT: not
// within D") when it still does not after within.
func WaitFor(t testing.TB, what string, within, interval time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(interval)
	}
}

// Metrics reads the Prometheus text page of a /metrics listener (base: its
// URL without the path) into series → value, a series being the name and
// labels as printed (name{a="b"}); comments are left out. The page is asked
// for uncompressed, which costs a coordinator under measurement less. A
// request that fails, or a page that is not 200, fails t.
func Metrics(t testing.TB, base string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, body := Fetch(t, nil, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s", base, resp.Status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && i > 0 {
			out[line[:i]] = v
		}
	}
	return out
}

// Parallel calls call(i) for every i in [0, n) from workers goroutines, each
// taking the next i until none is left, and returns once all have stopped. A
// worker stops at its first error; the first error of all is returned (the
// other workers go on with the remaining calls). Benchmarks use it to load a
// cluster with n requests from a fixed number of clients.
func Parallel(n, workers int, call func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := call(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// waitUp calls probe every interval until it returns nil, the daemon a test
// started exits (exited is closed) or timeout has passed: the one start-up
// wait of the framework's launchers. It returns whether the daemon exited and
// probe's last error (nil once it answered).
func waitUp(exited <-chan struct{}, timeout, interval time.Duration, probe func() error) (gone bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		if err = probe(); err == nil {
			return false, nil
		}
		select {
		case <-exited:
			return true, err
		case <-time.After(interval):
		}
		if time.Now().After(deadline) {
			return false, err
		}
	}
}

// answers200 GETs url with hc (with the header key: value when key is set):
// nil when it answers 200, else the transport error or the status ("503
// Service Unavailable").
func answers200(hc *http.Client, url, key, value string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if key != "" {
		req.Header.Set(key, value)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// Send sends one plain request with hc (nil: http.DefaultClient), outside
// pkg/client (nothing validated against /openapi.json, nothing sent again):
// body, when not nil, is sent with Content-Type application/json; hdr sets
// headers, after that one. It returns the status and the whole answer's
// body; err is a request that could not be made or sent (status 0), or an
// answer whose body could not be read (its status and what was read are
// returned with it).
func Send(ctx context.Context, hc *http.Client, method, url string, body []byte, hdr map[string]string) (int, []byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// Fetch sends req with hc (nil: http.DefaultClient) and returns the answer
// with its whole body, read and closed; a request that fails or a body that
// cannot be read fails t.
func Fetch(t testing.TB, hc *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// GetHTTPS GETs https://addr/ with name as the TLS server name (SNI) and
// the Host header, the certificate verified against roots (nil: not verified,
// for a self-signed one the test checks itself), and returns the answer with
// its body read and closed (resp.TLS holds the chain served). A failed
// request, a certificate that does not verify included, fails t.
func GetHTTPS(t testing.TB, addr, name string, roots *x509.CertPool) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := TryHTTPS(addr, name, roots)
	if err != nil {
		how := "verified against the test's roots"
		if roots == nil {
			how = "not verified"
		}
		t.Fatalf("HTTPS %s at %s (certificate %s): %v", name, addr, how, err)
	}
	return resp, body
}

// TryHTTPS is GetHTTPS returning the error instead of failing a test, for a
// test that polls until a certificate is served: each call is a new
// connection (a new TLS handshake), closed after the answer.
func TryHTTPS(addr, name string, roots *x509.CertPool) (*http.Response, []byte, error) {
	cfg := &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: roots == nil} //nolint:gosec // nil roots: self-signed, checked by the test
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	req, err := http.NewRequest("GET", "https://"+addr+"/", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Host = name
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp, body, nil
}

// StartInGroup starts cmd in a process group of its own with its output
// appended to logPath; the channel is closed once it has exited (and the log
// file closed). The process is SIGKILLed by the kernel when the test binary
// dies (Pdeathsig), so a test killed by go test's -timeout, which runs no
// cleanup, does not leave its coordinators and daemons running and holding
// ports while the rest of the suite runs. (Pdeathsig fires when the thread
// that started the process exits: the Go runtime ends threads only for
// goroutines that exit locked to theirs, which nothing here does.)
func StartInGroup(cmd *exec.Cmd, logPath string) (chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	return done, nil
}

// KillGroup SIGKILLs the process group of cmd (started by StartInGroup) and
// waits until done is closed.
func KillGroup(cmd *exec.Cmd, done <-chan struct{}) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// stopThenClean has stop run when the test ends; then, when the test failed,
// the tail of the daemon's log at logPath is shown; dir is removed, also then
// (a run leaves nothing behind), unless HOSTPLANE_TEST_KEEP is set and the
// test failed (dir, made by MkdirTemp, is then moved out of the run
// directory, which a later run's sweep would remove). what names the daemon
// in the messages.
func stopThenClean(t testing.TB, what, dir, logPath string, stop func()) {
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("--- tail of %s log (%s):\n%s", what, logPath, Tail(logPath, 40))
			if os.Getenv("HOSTPLANE_TEST_KEEP") != "" {
				t.Logf("%s files kept in %s (HOSTPLANE_TEST_KEEP)", what, keepTemp(dir))
				return
			}
			t.Logf("%s files removed (HOSTPLANE_TEST_KEEP=1 keeps them when a test fails)", what)
		}
		_ = RemoveTemp(dir)
	})
}

// Child is a daemon a test starts, stops and restarts: a process run in a
// process group of its own by StartInGroup. The zero Child is not running.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd in its own process group with its output appended to
// logPath.
func (c *Child) Start(cmd *exec.Cmd, logPath string) error {
	done, err := StartInGroup(cmd, logPath)
	if err != nil {
		return err
	}
	c.cmd, c.done = cmd, done
	return nil
}

// Started reports whether the process was started and not stopped, killed
// or seen to exit since (it may have exited by itself meanwhile).
func (c *Child) Started() bool { return c.cmd != nil }

// Exited is closed when the current process exits (nil before the first
// start).
func (c *Child) Exited() <-chan struct{} { return c.done }

// Forget records that the process was seen to exit.
func (c *Child) Forget() { c.cmd = nil }

// Stop sends the process SIGTERM and waits for it, SIGKILLing its group
// after grace.
func (c *Child) Stop(grace time.Duration) {
	if c.cmd != nil {
		terminate(c.cmd, c.done, grace, false)
		c.cmd = nil
	}
}

// StopGroup is Stop with SIGTERM sent to the whole process group.
func (c *Child) StopGroup(grace time.Duration) {
	if c.cmd != nil {
		terminate(c.cmd, c.done, grace, true)
		c.cmd = nil
	}
}

// Kill SIGKILLs the process group and waits for the process.
func (c *Child) Kill() {
	if c.cmd != nil {
		KillGroup(c.cmd, c.done)
		c.cmd = nil
	}
}

// WaitExit waits up to timeout for the process to exit by itself (at a
// failpoint); false if it still runs.
func (c *Child) WaitExit(timeout time.Duration) bool {
	select {
	case <-c.done:
		c.cmd = nil
		return true
	case <-time.After(timeout):
		return false
	}
}

// DiesWithTheTest checks that a process start starts is killed when the test
// binary that started it dies without cleaning up (as go test's -timeout
// kills it). The test binary runs t's test again as a helper in which start
// starts `sleep 300` (dir is for its files: the helper's own t.TempDir would
// outlive it) and which prints the sleep's pid and waits; the helper is
// SIGKILLed, and the sleep must be gone (or a zombie) within 30 s. t's test
// must do nothing before DiesWithTheTest that the helper should not.
func DiesWithTheTest(t *testing.T, start func(cmd *exec.Cmd, dir string) error) {
	t.Helper()
	if dir := os.Getenv("HOSTPLANE_FW_PDEATH_HELPER"); dir != "" {
		cmd := exec.Command("sleep", "300")
		if err := start(cmd, dir); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid", cmd.Process.Pid)
		select {}
	}
	helper := exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$")
	helper.Env = append(os.Environ(), "HOSTPLANE_FW_PDEATH_HELPER="+t.TempDir())
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	var word string
	var pid int
	if _, err := fmt.Fscan(out, &word, &pid); err != nil || word != "pid" {
		t.Fatalf("the helper said %q %d (%v), want its child's pid", word, pid, err)
	}
	// The child runs until its parent dies.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the helper's child %d is not running before the helper dies: %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d of a SIGKILLed test binary still runs 30 s later", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid names a process that has not exited (a zombie
// waiting for its reaper counts as exited).
func alive(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
