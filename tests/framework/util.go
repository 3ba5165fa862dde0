package framework

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
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

// terminate stops a child started in its own process group: SIGTERM, then
// SIGKILL to the group after grace; it returns once done is closed (the
// child was waited for).
func terminate(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
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
