package framework

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// CoordinatorProcess is one hostplane-coordinator OS process. Its data
// directory and addresses survive restarts; its output goes to LogPath.
type CoordinatorProcess struct {
	ID, DataDir       string
	APIAddr, RaftAddr string
	AgentAddr         string   // agent session listener (UDP), empty without one
	MetricsAddr       string   // the /metrics listener (--metrics-addr)
	Bin               string   // the binary; RestartWith replaces it
	Args              []string // arguments of `run`

	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the API base URL.
func (p *CoordinatorProcess) URL() string { return "http://" + p.APIAddr }

// MetricsURL is the base URL of the /metrics listener.
func (p *CoordinatorProcess) MetricsURL() string { return "http://" + p.MetricsAddr }

// AdminSocket is the admin socket's path.
func (p *CoordinatorProcess) AdminSocket() string { return filepath.Join(p.DataDir, "admin.sock") }

// Admin is a client of the admin socket. Like an API client's
// (ValidatingTransport), its answers' status and headers are recorded in
// the Reply a request's context carries (Capture; the body is not: a
// backup streams through): Resend reads a 503's Retry-After there.
func (p *CoordinatorProcess) Admin() *client.Admin {
	a := client.NewAdmin(p.AdminSocket())
	a.HTTP.Transport = capturing{a.HTTP.Transport}
	return a
}

// capturing records each answer's status and headers in the Reply its
// request's context carries (Capture), if any.
type capturing struct{ next http.RoundTripper }

func (c capturing) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if r, ok := req.Context().Value(captureKey{}).(*Reply); ok {
		*r = Reply{Method: req.Method, Path: req.URL.RequestURI()} // no answer: no headers
		if err == nil {
			r.Status, r.Header = resp.StatusCode, resp.Header
		}
	}
	return resp, err
}

// LogPath is the file holding the process's stdout and stderr (appended across restarts).
func (p *CoordinatorProcess) LogPath() string { return p.DataDir + ".log" }

// Alive reports whether the process was started and not killed or stopped.
func (p *CoordinatorProcess) Alive() bool { return p.cmd != nil }

// Pid is the current process's id (0 when not running).
func (p *CoordinatorProcess) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited is closed when the current process exits (nil before the first start).
func (p *CoordinatorProcess) Exited() <-chan struct{} { return p.done }

// Start starts the process (in its own process group).
func (p *CoordinatorProcess) Start() error {
	if p.cmd != nil {
		return fmt.Errorf("coordinator %s already running", p.ID)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	done, err := StartInGroup(cmd, p.LogPath())
	if err != nil {
		return fmt.Errorf("start coordinator %s: %w", p.ID, err)
	}
	p.cmd, p.done = cmd, done
	return nil
}

func (p *CoordinatorProcess) signal(sig syscall.Signal) {
	if p.cmd != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// Kill SIGKILLs the process group and waits for it.
func (p *CoordinatorProcess) Kill() {
	if p.cmd == nil {
		return
	}
	p.signal(syscall.SIGCONT) // a paused process must not linger
	p.signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Stop sends SIGTERM (a clean shutdown) and waits, killing it after 15 s.
func (p *CoordinatorProcess) Stop() {
	if p.cmd == nil {
		return
	}
	p.signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

// Pause freezes the process group (SIGSTOP): alive, but answering nothing.
//
// It returns once every thread of the process is stopped: kill(2) only queues
// SIGSTOP, and a thread still running could otherwise answer one more request
// after Pause returned.
func (p *CoordinatorProcess) Pause() {
	p.signal(syscall.SIGSTOP)
	if p.cmd == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for !allThreadsStopped(p.cmd.Process.Pid) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped reports whether every thread of pid is in the stopped
// state ("T" in /proc/PID/task/TID/stat); false if that cannot be read.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Resume continues a paused process group (SIGCONT).
func (p *CoordinatorProcess) Resume() { p.signal(syscall.SIGCONT) }

// Restart kills the process, starts it again and waits until it is ready.
func (p *CoordinatorProcess) Restart(timeout time.Duration) error {
	return p.RestartWith(p.Bin, timeout)
}

// RestartWith kills the process and starts bin (another build, e.g. from
// CoordinatorVersion) on the same data and addresses, waiting until it is ready.
func (p *CoordinatorProcess) RestartWith(bin string, timeout time.Duration) error {
	p.Kill()
	p.Bin = bin
	if err := p.Start(); err != nil {
		return err
	}
	return p.WaitReady(timeout)
}

// WaitReady polls /readyz until it answers 200; it fails early when the
// process exits.
func (p *CoordinatorProcess) WaitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	gone, err := waitUp(p.done, timeout, 100*time.Millisecond, func() error { return answers200(hc, p.URL()+"/readyz", "", "") })
	switch {
	case gone:
		return fmt.Errorf("coordinator %s exited while starting; log:\n%s", p.ID, Tail(p.LogPath(), 30))
	case err != nil:
		return fmt.Errorf("coordinator %s not ready after %s (last: %v)", p.ID, timeout, err)
	}
	return nil
}

// RaftTimeout is the Raft heartbeat and election timeout of the suite's
// clusters: the coordinator's default, 1 s, whose leader lease is 500 ms
// (half the heartbeat timeout). A leader steps down when its lease finds no
// follower heard from within it, and a leader whose own process did not run
// for longer than the lease finds just that when it runs again, however well
// its followers are: on a machine the suite shares with other test runs
// (load 24-31 on 2 cores) coordinators went 251-547 ms without running, and
// with 500 ms timeouts (a 250 ms lease) a three-coordinator cluster taking
// a ticket every 20 ms held 3 elections in 100 s, each a leader stepping
// down after its own stall, the writes meanwhile answered 503; with 1 s,
// none in 2 × 100 s. A follower stands after 1-2 s without a heartbeat, so a
// failover takes about a second more than with 500 ms.
const RaftTimeout = time.Second

// ProcessOptions configure a ProcessCluster.
type ProcessOptions struct {
	N   int    // coordinators (default 3)
	Bin string // hostplane-coordinator binary (required: Coordinator(t), or a build of its own)
	// Dir holds the nodes' data directories, admin sockets and logs (default:
	// a fresh temporary directory, MkdirTemp, removed by Close).
	Dir        string
	NodePrefix string // node ids are NodePrefix1…N (default "c")
	// Secret is the cluster secret (default: a random one per cluster, so
	// that a stray leader of another test's cluster, dialling a Raft port
	// this cluster's node now has, fails the handshake).
	Secret    string
	RateLimit int // --rate-limit per key and minute (default 1000000)
	// RaftTimeout sets the Raft heartbeat and election timeouts (0: the
	// coordinator's defaults); tests use RaftTimeout (the constant).
	RaftTimeout time.Duration
	LogLevel    string // --log-level (empty: the default)
	// Agents gives every node an agent session listener on a free UDP port
	// with these liveness settings (0: the coordinator's defaults).
	Agents bool
	// SeparateKEKs leaves every node its own key-encryption key (a
	// misconfigured cluster: the node CA sealed by one coordinator cannot be
	// opened by the others); by default the nodes share one.
	SeparateKEKs          bool
	AgentPing, AgentGrace time.Duration
	// Webhooks lets webhooks reach plain-HTTP loopback receivers, retried
	// after 1 s (the nodes share one key-encryption key in any case).
	Webhooks bool
	// Extra returns more `run` flags for node i.
	Extra func(i int, p *CoordinatorProcess) []string
}

// ProcessCluster is N coordinator processes on loopback forming one Raft
// cluster. It implements Cluster.
type ProcessCluster struct {
	Nodes  []*CoordinatorProcess
	Dir    string
	Secret string // the cluster secret every node was started with

	tb       testing.TB // nil outside tests (the benchmark tool)
	ownedDir bool
}

var _ Cluster = (*ProcessCluster)(nil)

// NewProcessCluster starts a cluster for a test: everything is killed when the
// test ends, and when it failed the tail of every node's log is printed.
func NewProcessCluster(t testing.TB, o ProcessOptions) *ProcessCluster {
	t.Helper()
	// o.Dir "": a directory of MkdirTemp's (not t.TempDir(), which a killed
	// test binary leaves behind; and its path, named for the test, could
	// make an admin socket's longer than the 107 bytes a Unix socket has).
	c, err := prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	c.tb = t
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			for _, p := range c.Nodes {
				t.Logf("--- tail of coordinator %s log (%s):\n%s", p.ID, p.LogPath(), Tail(p.LogPath(), 40))
			}
		}
		c.Close()
	})
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// For is c as test t's cluster, for a cluster that outlives its tests
// (StartProcessCluster, shared by the tests of a package that only use it
// as customers would): the methods that fail a test (WaitLeader, Credit,
// StartTestAgent...) fail t, and when t fails the tail of every node's log
// is printed. It shares c's nodes; Close stays the owner's.
func (c *ProcessCluster) For(t testing.TB) *ProcessCluster {
	v := *c
	v.tb, v.ownedDir = t, false
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range v.Nodes {
				t.Logf("--- tail of shared coordinator %s log (%s):\n%s", p.ID, p.LogPath(), Tail(p.LogPath(), 40))
			}
		}
	})
	return &v
}

// StartProcessCluster starts a cluster outside a test (Close stops it).
func StartProcessCluster(o ProcessOptions) (*ProcessCluster, error) {
	c, err := prepare(o)
	if err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func prepare(o ProcessOptions) (*ProcessCluster, error) {
	if o.Bin == "" {
		return nil, errors.New("framework: ProcessOptions.Bin is required")
	}
	if o.N == 0 {
		o.N = 3
	}
	if o.NodePrefix == "" {
		o.NodePrefix = "c"
	}
	if o.Secret == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		o.Secret = "framework-cluster-secret-" + hex.EncodeToString(b)
	}
	if o.RateLimit == 0 {
		o.RateLimit = 1000000
	}
	c := &ProcessCluster{Dir: o.Dir, Secret: o.Secret}
	if c.Dir == "" {
		dir, err := MkdirTemp("hpfw")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownedDir = dir, true
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	// The cluster secret in a file (--cluster-secret-file), not on the
	// command lines every local user reads (ps).
	secretFile := filepath.Join(c.Dir, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte(o.Secret), 0o600); err != nil {
		return nil, err
	}
	// One key-encryption key for every coordinator (as deployed: README,
	// --webhook-kek-file): the agent CA key is sealed under it, so without a
	// shared KEK only the coordinator that created the CA can serve agent
	// sessions, and agents cannot reach any later leader; and every
	// coordinator but the first would log that its KEK differs.
	var kekFile string
	if !o.SeparateKEKs {
		kek := make([]byte, 32)
		_, _ = rand.Read(kek)
		kekFile = filepath.Join(c.Dir, "kek")
		if err := os.WriteFile(kekFile, []byte(hex.EncodeToString(kek)), 0o600); err != nil {
			return nil, err
		}
	}
	for i := 0; i < o.N; i++ {
		id := fmt.Sprintf("%s%d", o.NodePrefix, i+1)
		p := &CoordinatorProcess{ID: id, DataDir: filepath.Join(c.Dir, id), Bin: o.Bin}
		var err error
		if p.APIAddr, err = freeport.Take("tcp"); err != nil {
			return nil, err
		}
		if p.RaftAddr, err = freeport.Take("tcp"); err != nil {
			return nil, err
		}
		// Each coordinator its own metrics port (the default is one per host).
		if p.MetricsAddr, err = freeport.Take("tcp"); err != nil {
			return nil, err
		}
		p.Args = []string{"run", "--node-id", p.ID, "--data-dir", p.DataDir, "--api-addr", p.APIAddr, "--raft-addr", p.RaftAddr,
			"--metrics-addr", p.MetricsAddr,
			fmt.Sprintf("--bootstrap=%v", i == 0), "--bootstrap-account=false", "--cluster-secret-file", secretFile,
			"--rate-limit", fmt.Sprint(o.RateLimit), "--log-format", "text"}
		if o.RaftTimeout > 0 {
			p.Args = append(p.Args, "--raft-heartbeat-timeout", o.RaftTimeout.String(), "--raft-election-timeout", o.RaftTimeout.String())
		}
		if o.LogLevel != "" {
			p.Args = append(p.Args, "--log-level", o.LogLevel)
		}
		if o.Agents {
			if p.AgentAddr, err = freeport.Take("udp"); err != nil {
				return nil, err
			}
			p.Args = append(p.Args, "--agent-listen", p.AgentAddr)
			if o.AgentPing > 0 {
				p.Args = append(p.Args, "--agent-ping-interval", o.AgentPing.String())
			}
			if o.AgentGrace > 0 {
				p.Args = append(p.Args, "--agent-grace", o.AgentGrace.String())
			}
		}
		if kekFile != "" {
			p.Args = append(p.Args, "--webhook-kek-file", kekFile)
		}
		if o.Webhooks {
			p.Args = append(p.Args, "--webhook-allow-http", "--webhook-allow-private",
				"--webhook-retry-initial", "1s")
		}
		if o.Extra != nil {
			p.Args = append(p.Args, o.Extra(i, p)...)
		}
		c.Nodes = append(c.Nodes, p)
	}
	return c, nil
}

// start starts every node, joins the others to the first and waits until all are ready.
func (c *ProcessCluster) start() error {
	for _, p := range c.Nodes {
		if err := p.Start(); err != nil {
			return err
		}
	}
	if err := c.Nodes[0].WaitReady(30 * time.Second); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range c.Nodes[1:] {
		if err := c.join(ctx, p); err != nil {
			return fmt.Errorf("join %s: %w", p.ID, err)
		}
	}
	for _, p := range c.Nodes {
		if err := p.WaitReady(30 * time.Second); err != nil {
			return err
		}
	}
	return c.WaitSettled(30 * time.Second)
}

// StartAll starts every node again (after each was stopped: a cluster-wide
// restart), waits for each to be ready and for the cluster to settle, each
// wait bounded by timeout.
func (c *ProcessCluster) StartAll(timeout time.Duration) error {
	for _, p := range c.Nodes {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range c.Nodes {
		if err := p.WaitReady(timeout); err != nil {
			return err
		}
	}
	return c.WaitSettled(timeout)
}

// join adds p as a voter through the first node, sent again as Resend says
// (until ctx ends) after a leadership change's 503: no_leader (the leader
// lost its leadership during the change, or knows no quorum), not_leader
// (pkg/client's Admin already sent it again for 15 s) and
// leader_unreachable (the first node forwarded it to a leader that did not
// answer). Joining p again at its own address changes nothing. Under load a
// leader that does not run for a second right after a join loses its
// leadership with the change in flight.
func (c *ProcessCluster) join(ctx context.Context, p *CoordinatorProcess) error {
	return Resend(ctx, func(ctx context.Context, _ bool) error {
		_, err := c.Nodes[0].Admin().ClusterJoin(ctx, p.ID, p.RaftAddr, "")
		return err
	})
}

// WaitSettled waits until the running nodes agree on one leader in one term,
// the leader holds every node as a voter, and it answers a linearizable read (its barrier applied, its leadership confirmed
// by a quorum), twice at least a second apart with no election between.
// Every node answering /readyz is not enough: the joins make the voters' set
// grow, and a new voter slow to answer under load can cost the leader its
// lease right after (tests then met 503 no_leader on their first write).
func (c *ProcessCluster) WaitSettled(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var (
		first   time.Time
		settled string // leader and term of the first good look
		last    = "not checked"
	)
	for time.Now().Before(deadline) {
		if at, why := c.settled(); why != "" {
			first, settled, last = time.Time{}, "", why
		} else if at != settled {
			first, settled = time.Now(), at
		} else if time.Since(first) >= time.Second {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("cluster not settled after %s: %s", timeout, last)
}

// settled looks once: the leader and term ("" and why not when unsettled).
func (c *ProcessCluster) settled() (leaderTerm, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leader, term, ld := "", uint64(0), -1
	for i, p := range c.Nodes {
		if !p.Alive() {
			continue
		}
		st, err := p.Admin().ClusterStatus(ctx)
		if err != nil {
			return "", fmt.Sprintf("%s: cluster status: %v", p.ID, err)
		}
		if st.LeaderID == "" || (leader != "" && (st.LeaderID != leader || st.Term != term)) {
			return "", fmt.Sprintf("%s sees leader %q in term %d, another node %q in term %d", p.ID, st.LeaderID, st.Term, leader, term)
		}
		leader, term = st.LeaderID, st.Term
		if st.State == "Leader" {
			ld = i
			voters := 0
			for _, s := range st.Servers {
				if s.Suffrage == "Voter" {
					voters++
				}
			}
			if voters != len(c.Nodes) {
				return "", fmt.Sprintf("leader %s has %d voters, want %d", p.ID, voters, len(c.Nodes))
			}
		}
	}
	if ld < 0 {
		return "", fmt.Sprintf("no running node is the leader %q", leader)
	}
	if _, err := c.Nodes[ld].Admin().IPPools(ctx); err != nil {
		return "", fmt.Sprintf("linearizable read on the leader %s: %v", c.Nodes[ld].ID, err)
	}
	return fmt.Sprintf("%s/%d", leader, term), ""
}

// Close kills every node and removes the directory the cluster created itself.
func (c *ProcessCluster) Close() {
	c.kill()
	if c.ownedDir {
		_ = RemoveTemp(c.Dir)
	}
}

// kill kills every node's process.
func (c *ProcessCluster) kill() {
	for _, p := range c.Nodes {
		p.Kill()
	}
}

func (c *ProcessCluster) fatalf(format string, args ...any) {
	if c.tb == nil {
		panic(fmt.Sprintf(format, args...))
	}
	c.tb.Helper()
	c.tb.Fatalf(format, args...)
}

// Len is the number of nodes.
func (c *ProcessCluster) Len() int { return len(c.Nodes) }

// URL is node i's API base URL.
func (c *ProcessCluster) URL(i int) string { return c.Nodes[i].URL() }

// Admin is a client of node i's admin socket.
func (c *ProcessCluster) Admin(i int) *client.Admin { return c.Nodes[i].Admin() }

// Client is a /v1 client of node i.
func (c *ProcessCluster) Client(i int, key string) *client.Client { return client.New(c.URL(i), key) }

// Running reports whether node i's process is up.
func (c *ProcessCluster) Running(i int) bool { return c.Nodes[i].Alive() }

// Kill SIGKILLs node i.
func (c *ProcessCluster) Kill(i int) { c.Nodes[i].Kill() }

// Restart kills node i if needed, starts it again and waits until it is ready.
func (c *ProcessCluster) Restart(i int) {
	if err := c.Nodes[i].Restart(30 * time.Second); err != nil {
		c.fatalf("%v", err)
	}
}

// WaitReady waits until node i answers /readyz.
func (c *ProcessCluster) WaitReady(i int, timeout time.Duration) {
	if err := c.Nodes[i].WaitReady(timeout); err != nil {
		c.fatalf("%v", err)
	}
}

// LeaderIndex waits until a running node says it leads (admin cluster status)
// and returns its index.
func (c *ProcessCluster) LeaderIndex(timeout time.Duration) (int, error) {
	return c.LeaderIndexSkipping(nil, timeout)
}

// LeaderIndexSkipping is LeaderIndex over the running nodes skip does not
// name: a paused node answers nothing and may still believe it leads.
func (c *ProcessCluster) LeaderIndexSkipping(skip map[int]bool, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for i, p := range c.Nodes {
			if skip[i] || !p.Alive() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := p.Admin().ClusterStatus(ctx)
			cancel()
			if err == nil && st.State == "Leader" {
				return i, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, fmt.Errorf("no coordinator is leader after %s", timeout)
}

// WaitLeader is LeaderIndex failing the test.
func (c *ProcessCluster) WaitLeader(timeout time.Duration) int {
	i, err := c.LeaderIndex(timeout)
	if err != nil {
		c.fatalf("%v", err)
	}
	return i
}

// Leader is the leading node (waiting up to 20 s).
func (c *ProcessCluster) Leader() *CoordinatorProcess { return c.Nodes[c.WaitLeader(20*time.Second)] }

// AnyAlive returns a live node other than not (nil: any).
func (c *ProcessCluster) AnyAlive(not *CoordinatorProcess) *CoordinatorProcess {
	for _, p := range c.Nodes {
		if p.Alive() && p != not {
			return p
		}
	}
	c.fatalf("no live coordinator")
	return nil
}

// AgentAddrs lists every node's agent session address.
func (c *ProcessCluster) AgentAddrs() []string {
	var out []string
	for _, p := range c.Nodes {
		out = append(out, p.AgentAddr)
	}
	return out
}

// NewAccount creates an account and a key with scopes (none: the defaults)
// through a live node's admin socket and returns the account and the key. A
// step answered with a leadership 503 (Resend: it may or may not have been
// made) is read before it is sent again, as the README's retry policy
// says: the account by its email; the account's keys (it is new: all are
// this call's), of which one made by the lost request cannot be shown
// again: it is revoked (a revoke sent again revokes nothing more) and
// another made.
func (c *ProcessCluster) NewAccount(ctx context.Context, email string, scopes ...string) (api.Account, string, error) {
	adm := c.AnyAlive(nil).Admin()
	var acc api.Account
	err := Resend(ctx, func(ctx context.Context, again bool) (err error) {
		if again {
			if acc, err = adm.Account(ctx, email); err == nil || api.StatusOf(err) != http.StatusNotFound {
				return err
			}
		}
		acc, err = adm.CreateAccount(ctx, api.AccountCreateRequest{Email: email})
		return err
	})
	if err != nil {
		return acc, "", err
	}
	var k api.KeyCreated
	err = Resend(ctx, func(ctx context.Context, again bool) error {
		if again {
			keys, err := adm.Keys(ctx, acc.ID)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.RevokedAt == nil {
					if _, err := adm.RevokeKey(ctx, k.ID); err != nil {
						return fmt.Errorf("revoke %s's key %s, made by a request a leadership change answered (its secret is not known): %w", email, k.ID, err)
					}
				}
			}
		}
		var err error
		k, err = adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: scopes})
		return err
	})
	return acc, k.Key, err
}

// Resend calls send (again: false), then again (again: true) as pkg/client's
// policy sends a request again that an election answered (client.Resend: a
// 503 no_leader, not_leader or leader_unreachable with Retry-After, after a
// pause of at least what it asks), until ctx ends (without a deadline, for
// client.DefaultElectionWait); it returns send's last error. Any request is
// sent again, since send makes itself safe to repeat: it reads first when
// again is true (the lost request may have been made), or carries an
// Idempotency-Key, or repeating it changes nothing. send makes its requests
// with the ctx it is given, through admin clients of
// CoordinatorProcess.Admin: they record the answer's headers there
// (Capture), which the policy reads.
func Resend(ctx context.Context, send func(ctx context.Context, again bool) error) error {
	p := client.Resend{Resendable: func(string, any, http.Header) bool { return true }}
	if d, ok := ctx.Deadline(); ok {
		p.Wait = max(time.Until(d), -1) // below 0: ended, never again
	}
	sends := 0
	err := p.Do(ctx, "", nil, nil, func() (http.Header, error) {
		cctx, rep := Capture(ctx)
		err := send(cctx, sends > 0)
		sends++
		return rep.Header, err
	})
	if err != nil && sends > 1 {
		return fmt.Errorf("%w (sent %d times)", err, sends)
	}
	return err
}

// ResendInFlight calls send (again: false), and again (again: true) every
// 250 ms for up to within while its error is a 409 idempotency_key_in_flight
// (InFlight): sent with the request's own Idempotency-Key, that can only be
// its own earlier send (one sent again after a leadership 503), still being
// applied. It returns send's last error.
func ResendInFlight(within time.Duration, send func(again bool) error) error {
	err := send(false)
	for end := time.Now().Add(within); InFlight(err) && time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
		err = send(true)
	}
	return err
}

// InFlight reports whether err is a 409 idempotency_key_in_flight answer.
func InFlight(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.StatusCode == http.StatusConflict && ae.Code == "idempotency_key_in_flight"
}

// Credit credits cents to an account's wallet (gateway "test") through any
// live node's admin socket, with an Idempotency-Key, so a credit answered with
// a leadership 503 is sent again and made once; it fails the test when the
// credit is refused.
func (c *ProcessCluster) Credit(ctx context.Context, accountID string, cents int64) {
	if c.tb != nil {
		c.tb.Helper()
	}
	adm, key := c.AnyAlive(nil).Admin(), "framework-credit-"+rand.Text()
	if err := Resend(ctx, func(ctx context.Context, _ bool) error {
		_, err := adm.CreditWalletOnce(ctx, accountID, api.WalletCreditRequest{AmountUsdCents: cents, Gateway: "test"}, key)
		return err
	}); err != nil {
		c.fatalf("credit %d cents to %s: %v", cents, accountID, err)
	}
}

// StartTestAgent enrols the scripted test agent (PkgTestAgent: real agent
// sessions, every action succeeds) as node: a join token from a live
// coordinator, the agent started against the agent address(es) coordinators
// (comma-separated) with args added (-kvm, -hosting, ...) and a data
// directory of the test's; it returns once the node is ready and connected
// (30 s at most). For a test's cluster (NewProcessCluster) only.
func (c *ProcessCluster) StartTestAgent(node, coordinators string, args ...string) *Sim {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A token made by a request a leadership 503 answered is never shown, so
	// never used, and expires with its TTL: another is made (Resend).
	var tok api.JoinTokenCreated
	err := Resend(ctx, func(ctx context.Context, _ bool) (err error) {
		tok, err = c.AnyAlive(nil).Admin().CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: node})
		return err
	})
	if err != nil {
		c.fatalf("join token for %s: %v", node, err)
	}
	sim := StartSim(c.tb, Binary(c.tb, PkgTestAgent, BuildOptions{}),
		append([]string{"-coordinator", coordinators, "-token", tok.Token, "-node", node, "-dir", c.tb.TempDir()}, args...)...)
	c.WaitNode(node, 30*time.Second, "ready and connected", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected
	})
	return sim
}

// WaitNode polls a live node's admin node list until agent node id satisfies
// ok (what says what was awaited), and returns it; it fails after timeout.
func (c *ProcessCluster) WaitNode(id string, timeout time.Duration, what string, ok func(api.AgentNode) bool) api.AgentNode {
	deadline := time.Now().Add(timeout)
	var last api.AgentNode
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := c.AnyAlive(nil).Admin().AgentNode(ctx, id)
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
	c.fatalf("node %s not %s after %s: last %+v (err %v)", id, what, timeout, last, lastErr)
	return last
}

// WaitAction polls action id through cl (GET /v1/actions/{id}) until it has
// finished and returns it, whatever its status; a call that fails (a
// coordinator restarting, a new leader) is tried again. After timeout it
// fails t with the last state seen.
func WaitAction(t testing.TB, cl *client.Client, id string, timeout time.Duration) api.Action {
	t.Helper()
	return PollFor(t, "action "+id+" not finished", timeout, 100*time.Millisecond, func(ctx context.Context) (api.Action, error) {
		return cl.Action(ctx, id)
	}, func(a api.Action) bool { return a.Finished() })
}

// PollFor calls get, with 5 s for each call, every interval until it
// answers without an error a value ok holds for, and returns that value; a
// call that fails (a coordinator restarting, a new leader) is tried again.
// After timeout it fails t with what, the last value and error.
func PollFor[T any](t testing.TB, what string, timeout, interval time.Duration, get func(context.Context) (T, error), ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := get(ctx)
		cancel()
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %+v %v", what, timeout, v, err)
		}
		time.Sleep(interval)
	}
}

// WaitActionSuccess is WaitAction requiring the action to have succeeded.
func WaitActionSuccess(t testing.TB, cl *client.Client, id string, timeout time.Duration) api.Action {
	t.Helper()
	a := WaitAction(t, cl, id, timeout)
	if a.Status != api.ActionSuccess {
		t.Fatalf("action %s (%s) ended %s: %+v", id, a.Command, a.Status, a.Error)
	}
	return a
}
