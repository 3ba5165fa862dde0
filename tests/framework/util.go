package framework

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a free 127.0.0.1 address for network ("tcp" or "udp").
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	a, err := freeAddr(network)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Ports handed out to child processes come from below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range). A port taken from ":0" and closed
// again is free only for a moment: any outgoing connection on the machine may
// get it as its source port before the child binds it, which failed a rolling
// upgrade test with "bind: address already in use". Below the ephemeral range
// only explicit binds compete, and the ones from this process never repeat.
var ports struct {
	sync.Mutex
	next, lo, hi int
	given        map[int]bool
}

func freeAddr(network string) (string, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.lo, ports.hi = 10000, ephemeralLow()-1
		ports.given = map[int]bool{}
		ports.next = ports.lo + rand.IntN(ports.hi-ports.lo)
	}
	for tries := 0; tries < ports.hi-ports.lo; tries++ {
		p := ports.next
		ports.next++
		if ports.next > ports.hi {
			ports.next = ports.lo
		}
		if ports.given[p] || !portFree(p) {
			continue
		}
		ports.given[p] = true
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
	}
	return "", fmt.Errorf("no free %s port on 127.0.0.1 in %d-%d", network, ports.lo, ports.hi)
}

// portFree reports whether both TCP and UDP port p can be bound on loopback.
func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when
// it cannot be read, Linux's default).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
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
// how many files it read; it stops at the first error walking or reading.
// Tests use it to look for plaintext secrets in what a daemon stores.
func ScanFiles(root string, fn func(path string, raw []byte)) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		fn(p, raw)
		return nil
	})
	return n, err
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

// StartInGroup starts cmd in a process group of its own with its output
// appended to logPath; the channel is closed once it has exited (and the log
// file closed).
func StartInGroup(cmd *exec.Cmd, logPath string) (chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
// the tail of the daemon's log at logPath is shown and its directory dir kept,
// else dir is removed. what names the daemon in the messages.
func stopThenClean(t testing.TB, what, dir, logPath string, stop func()) {
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("--- tail of %s log (%s):\n%s", what, logPath, Tail(logPath, 40))
			t.Logf("%s files kept in %s", what, dir)
			return
		}
		os.RemoveAll(dir)
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
