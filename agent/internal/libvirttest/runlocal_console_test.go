package libvirttest

import (
	"crypto/tls"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
)

// TestRunLocalConsolePortTaken is `make run` with the packaged agent's
// console port, 127.0.0.1:8423, held by another program (or a second make
// run): the run's agent serves the browser console on a free port instead.
func TestRunLocalConsolePortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the coordinator and the agent")
	}
	testenv.RequireLibvirt(t)
	held, err := net.Listen("tcp", "127.0.0.1:8423")
	switch {
	case err == nil:
		defer held.Close()
	case !errors.Is(err, syscall.EADDRINUSE):
		t.Fatal(err) // in use already is as good
	}
	bin := buildAll(t)
	dir := t.TempDir()
	testenv.Cleanup(t, testenv.Prefix(), localPool(dir))
	r, _ := startRunLocalAgent(t, bin, dir)
	var addr string
	// The listener comes up once the agent is enrolled.
	waitFor(t, r, 60*time.Second, "the agent's console listener", func() bool {
		if strings.Contains(r.output(), "browser console disabled") {
			t.Fatalf("the console did not start:\n%s", r.output())
		}
		addr = agentListener(t, r.cmd.Process.Pid)
		return addr != ""
	})
	if strings.HasSuffix(addr, ":8423") {
		t.Fatalf("the agent listens on %s, held by this test", addr)
	}
	// The agent listens once it is enrolled (it serves the node's
	// certificate): the first handshake must succeed.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true}) // the node's certificate; only the handshake matters
	if err != nil {
		t.Fatalf("console listener %s: %v", addr, err)
	}
	conn.Close()
	r.stop(t)
}

// agentListener is the TCP address the hostplane-agent of process group pgid
// listens on ("" if none yet).
func agentListener(t *testing.T, pgid int) string {
	out, err := exec.Command("ss", "-ltnpH").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	re := regexp.MustCompile(`(\S+)\s+\S+\s+users:\(\("hostplane-agent",pid=(\d+),`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		pid, _ := strconv.Atoi(m[2])
		if pgid2, err := syscall.Getpgid(pid); err == nil && pgid2 == pgid {
			return m[1]
		}
	}
	return ""
}
