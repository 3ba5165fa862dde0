package libvirttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestConsoleListensOnceEnrolled is a browser (or a port check) reaching a
// new hypervisor's console port before and after its agent is enrolled.
// The console speaks TLS with the node's certificate, which the agent only
// has once enrolled: before, nothing may listen there (a listener that ends
// every handshake in a TLS alert looks like a broken node); once the
// coordinators list the node as connected, where they send browsers, the
// first handshake must succeed and present the node's certificate.
func TestConsoleListensOnceEnrolled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a coordinator and the agent")
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t),
		Secret: "console-enrol-secret-0123456789", RaftTimeout: framework.RaftTimeout, Agents: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := c.Admin(0).CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: "console"})
	if err != nil {
		t.Fatalf("create join token: %v", err)
	}
	// The coordinator stopped (SIGSTOP): the agent starts, but its
	// enrolment cannot complete until the coordinator goes on.
	c.Nodes[0].Pause()
	resumed := false
	defer func() {
		if !resumed {
			c.Nodes[0].Resume()
		}
	}()
	a := framework.NewAgentProcess(t, framework.AgentBinary(t), c.AgentAddrs(), tok.Token)
	a.Start("") // returns once the local API answers: the agent is up
	framework.PollFor(t, "the agent's first enrolment attempt", 30*time.Second, 100*time.Millisecond,
		func(context.Context) ([]byte, error) { return os.ReadFile(a.LogPath()) },
		func(log []byte) bool { return bytes.Contains(log, []byte("enrolment attempt failed")) })
	conn, err := net.DialTimeout("tcp", a.ConsoleListen, 5*time.Second)
	if err == nil {
		// What a browser would see there.
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // only the handshake matters
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		herr := tc.Handshake()
		tc.Close()
		t.Fatalf("before enrolment the agent listens on its console port %s (TLS handshake: %v); want nothing listening", a.ConsoleListen, herr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("console port %s before enrolment: %v; want the connection refused", a.ConsoleListen, err)
	}

	c.Nodes[0].Resume()
	resumed = true
	c.WaitNode(a.ID, time.Minute, "ready and connected", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected
	})
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a.ConsoleListen,
		&tls.Config{InsecureSkipVerify: true}) // the node's certificate: checked below by name
	if err != nil {
		t.Fatalf("console %s of the connected node: %v", a.ConsoleListen, err)
	}
	defer tc.Close()
	if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != a.ID {
		t.Fatalf("console %s serves a certificate for %q, want the node's (%q)", a.ConsoleListen, cn, a.ID)
	}
}
