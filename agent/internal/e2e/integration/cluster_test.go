package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// Liveness settings every test cluster runs with: short, so that unreachability
// and failover are observed in seconds.
const (
	pingInterval = 200 * time.Millisecond
	agentGrace   = 2 * time.Second
)

// coord is one hostplane-coordinator process. Its data dir survives restarts.
type coord struct {
	id, data, apiAddr, raftAddr, agentAddr string
	args                                   []string
	cmd                                    *exec.Cmd
	done                                   chan struct{}
}

func (c *coord) url() string          { return "http://" + c.apiAddr }
func (c *coord) logPath() string      { return c.data + ".log" }
func (c *coord) alive() bool          { return c.cmd != nil }
func (c *coord) admin() *client.Admin { return client.NewAdmin(filepath.Join(c.data, "admin.sock")) }

// cluster is N coordinator processes forming one Raft cluster.
type cluster struct {
	t     testing.TB
	dir   string
	nodes []*coord
}

type clusterOpts struct {
	n int
	// actionDeadline is passed as --action-deadline (0: the coordinator default).
	actionDeadline time.Duration
	// agentStats is the agent's -stats-interval (0: 1s).
	agentStats time.Duration
}

// newCluster starts opts.n coordinators, joins them and waits until every one is
// ready. Everything is killed and removed when the test ends (logs are kept and
// their tails printed when it failed).
func newCluster(t testing.TB, opts clusterOpts) *cluster {
	t.Helper()
	requireBins(t)
	dir, err := os.MkdirTemp("", "hp-e2e-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir}
	// One key-encryption key for all: it seals the node CA's key in the FSM.
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(hex.EncodeToString(kek)), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < opts.n; i++ {
		p := &coord{id: fmt.Sprintf("c%d", i+1), data: filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
			apiAddr: freeAddr(t, "tcp"), raftAddr: freeAddr(t, "tcp"), agentAddr: freeAddr(t, "udp")}
		p.args = []string{"run", "--node-id", p.id, "--data-dir", p.data, "--api-addr", p.apiAddr, "--raft-addr", p.raftAddr,
			fmt.Sprintf("--bootstrap=%v", i == 0), "--bootstrap-account=false", "--cluster-secret", "e2e-cluster-secret-0123456789",
			"--rate-limit", "1000000", "--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
			"--log-format", "text", "--log-level", "debug",
			"--agent-listen", p.agentAddr, "--agent-ping-interval", pingInterval.String(), "--agent-grace", agentGrace.String(),
			"--webhook-kek-file", kekFile, "--webhook-allow-http", "--webhook-allow-private", "--webhook-retry-initial", "1s"}
		if opts.actionDeadline > 0 {
			if !coordinatorHasFlag("action-deadline") {
				t.Fatalf("hostplane-coordinator has no --action-deadline flag (needed to fail actions of an absent node in %s)", opts.actionDeadline)
			}
			p.args = append(p.args, "--action-deadline", opts.actionDeadline.String())
		}
		c.nodes = append(c.nodes, p)
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			p.kill()
		}
		if t.Failed() {
			for _, p := range c.nodes {
				t.Logf("--- tail of coordinator %s log (%s):\n%s", p.id, p.logPath(), tail(p.logPath(), 40))
			}
			t.Logf("cluster files kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	for _, p := range c.nodes {
		c.start(p)
	}
	c.waitReady(c.nodes[0], 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range c.nodes[1:] {
		if _, err := c.nodes[0].admin().ClusterJoin(ctx, p.id, p.raftAddr, ""); err != nil {
			t.Fatalf("join %s: %v", p.id, err)
		}
	}
	for _, p := range c.nodes {
		c.waitReady(p, 30*time.Second)
	}
	return c
}

func (c *cluster) start(p *coord) {
	c.t.Helper()
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bins.coordinator, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start coordinator %s: %v", p.id, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
}

// kill SIGKILLs the coordinator's process group and waits for it.
func (p *coord) kill() {
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// restart starts a killed coordinator again on the same addresses and data.
func (c *cluster) restart(p *coord) {
	c.t.Helper()
	p.kill()
	c.start(p)
	c.waitReady(p, 30*time.Second)
}

// waitReady polls /readyz; it fails early when the process exits.
func (c *cluster) waitReady(p *coord, timeout time.Duration) {
	c.t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(p.url() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			c.t.Fatalf("coordinator %s exited while starting; log:\n%s", p.id, tail(p.logPath(), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.t.Fatalf("coordinator %s not ready after %s (last: %s)", p.id, timeout, last)
}

// leader returns the live coordinator that says it leads.
func (c *cluster) leader() *coord {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range c.nodes {
			if !p.alive() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := p.admin().ClusterStatus(ctx)
			cancel()
			if err == nil && st.State == "Leader" {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatal("no coordinator is leader after 20s")
	return nil
}

// anyAlive returns a live coordinator other than not (nil: any).
func (c *cluster) anyAlive(not *coord) *coord {
	for _, p := range c.nodes {
		if p.alive() && p != not {
			return p
		}
	}
	c.t.Fatal("no live coordinator")
	return nil
}

// agentAddrs lists every coordinator's agent session address.
func (c *cluster) agentAddrs() []string {
	var out []string
	for _, p := range c.nodes {
		out = append(out, p.agentAddr)
	}
	return out
}

// admin is an admin client of a live coordinator (followers forward).
func (c *cluster) admin() *client.Admin { return c.anyAlive(nil).admin() }

// waitNode polls the admin node list until node id satisfies ok.
func (c *cluster) waitNode(id string, timeout time.Duration, what string, ok func(api.AgentNode) bool) api.AgentNode {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last api.AgentNode
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := c.admin().AgentNode(ctx, id)
		cancel()
		if err == nil {
			last = n
			if ok(n) {
				return n
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("node %s not %s after %s: last %+v (err %v)", id, what, timeout, last, lastErr)
	return last
}

// freeAddr returns a free 127.0.0.1 port for network (tcp or udp).
func freeAddr(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
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
