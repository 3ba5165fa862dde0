// Package testcluster starts real coordinators (Raft over loopback TCP, bbolt on
// disk, the HTTP API and admin socket) inside a test process, and kills and
// restarts them. Tests of replication, failover and forwarding build on it.
package testcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// Node is one coordinator of the cluster; Server is nil while it is killed.
type Node struct {
	ID      string
	Cfg     server.Config
	Server  *server.Server
	started bool
}

// Cluster is a set of coordinators in this process: the in-process
// implementation of framework.Cluster (tests/framework has the one of OS
// processes). It stays under coordinator/internal because it starts
// server.Server and its tests reach into it (Nodes[i].Server), which Go's
// internal rule keeps from tests/.
type Cluster struct {
	t      testing.TB
	mu     sync.Mutex
	Nodes  []*Node
	Secret string
	log    *slog.Logger
}

// Option adjusts every node's config before start.
type Option func(i int, c *server.Config)

// New starts n coordinators, joins them into one cluster and waits until every
// node knows the leader. Everything is stopped and removed in t.Cleanup.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	// framework.MkdirTemp, not t.TempDir(): a test binary killed midway
	// leaves its directory to the next run's sweep, and the admin sockets'
	// paths stay short.
	base, err := framework.MkdirTemp("hpc")
	if err != nil {
		t.Fatal(err)
	}
	// A secret of its own: a stray leader of another test's cluster that
	// dials a Raft port one of these nodes now has fails the handshake.
	sb := make([]byte, 16)
	_, _ = rand.Read(sb)
	c := &Cluster{t: t, Secret: "test-cluster-secret-" + hex.EncodeToString(sb), log: testLogger()}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, nd := range c.Nodes {
			if nd.Server != nil {
				_ = nd.Server.Close()
				nd.Server = nil
			}
		}
		_ = framework.RemoveTemp(base)
	})
	// Every coordinator of a cluster shares one key-encryption key.
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kekFile := filepath.Join(base, "kek")
	if err := os.WriteFile(kekFile, []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		cfg := server.Defaults()
		cfg.Webhooks.KEKFile = kekFile
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = filepath.Join(base, cfg.NodeID)
		cfg.AdminSocket = filepath.Join(cfg.DataDir, "admin.sock")
		cfg.APIAddr = freeAddr(t)
		cfg.RaftAddr = freeAddr(t)
		cfg.MetricsAddr = freeAddr(t)
		cfg.Bootstrap = i == 0
		cfg.BootstrapAccount = false
		cfg.ClusterSecret = c.Secret
		// The coordinator's default, as tests/framework.RaftTimeout (which
		// says why): with 500 ms (a 250 ms leader lease) a loaded machine's
		// stalls made leaders step down.
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.UsageFlush = 200 * time.Millisecond
		cfg.LogFormat = "text"
		for _, o := range opts {
			o(i, &cfg)
		}
		nd := &Node{ID: cfg.NodeID, Cfg: cfg}
		c.Nodes = append(c.Nodes, nd)
		c.start(nd)
	}
	c.WaitLeader(firstLeaderWait(c.Nodes[0].Cfg))
	for _, nd := range c.Nodes[1:] {
		c.joinWithRetry(nd)
	}
	c.WaitConverged(20 * time.Second)
	return c
}

// firstLeaderWait is how long New waits for the bootstrap node to lead:
// 15 s for starting up under load, plus the longest a lone follower waits
// before it stands (hashicorp/raft's first heartbeat timer is random in
// [HeartbeatTimeout, 2×HeartbeatTimeout)); a bootstrap node given an 8 s
// heartbeat timeout could need 16 s before its election, past a flat 15 s.
func firstLeaderWait(cfg server.Config) time.Duration {
	return 15*time.Second + 2*max(cfg.HeartbeatTimeout, cfg.ElectionTimeout)
}

func testLogger() *slog.Logger {
	if os.Getenv("HOSTPLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freeAddr(t testing.TB) string { return framework.FreeAddr(t, "tcp") }

func (c *Cluster) start(nd *Node) {
	c.t.Helper()
	var err error
	// A restart may find its port briefly held by the previous incarnation, so
	// it retries; a first start whose port was taken meanwhile by another
	// process picks fresh ports instead.
	for try := 0; try < 50; try++ {
		nd.Server, err = server.Start(nd.Cfg, c.log.With("node", nd.ID), io.Discard)
		if err == nil {
			nd.started = true
			return
		}
		if !nd.started && strings.Contains(err.Error(), "address already in use") {
			nd.Cfg.APIAddr, nd.Cfg.RaftAddr, nd.Cfg.MetricsAddr = freeAddr(c.t), freeAddr(c.t), freeAddr(c.t)
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("start %s: %v", nd.ID, err)
}

func (c *Cluster) joinWithRetry(nd *Node) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ld := c.WaitLeader(10 * time.Second)
		_, err := c.Admin(ld).ClusterJoin(context.Background(), nd.ID, nd.Server.RaftAddr(), "")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("join %s: %v", nd.ID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Leader returns the index of the current leader among running nodes, or -1.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.Nodes {
		if nd.Server != nil && nd.Server.Node.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader waits for a leader and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if i := c.Leader(); i >= 0 {
			return i
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", timeout)
	return -1
}

// WaitConverged waits until every running node sees the same leader, every
// member's API address is registered, and all hold every command up to the leader's commit index.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, why := c.converged()
		if ok {
			return
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("cluster did not converge within %s: %s", timeout, last)
}

func (c *Cluster) converged() (bool, string) {
	ld := c.Leader()
	if ld < 0 {
		return false, "no leader"
	}
	if !c.Nodes[ld].Server.API.LeaderReady() {
		return false, "leader has not applied its barrier yet"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lst, err := c.Nodes[ld].Server.API.ClusterStatus()
	if err != nil {
		return false, err.Error()
	}
	running := 0
	for _, nd := range c.Nodes {
		if nd.Server != nil {
			running++
		}
	}
	for _, s := range lst.Servers {
		if s.APIAddr == "" && c.running(s.ID) {
			return false, "api address of " + s.ID + " not registered"
		}
	}
	for _, nd := range c.Nodes {
		if nd.Server == nil {
			continue
		}
		st, err := nd.Server.API.ClusterStatus()
		if err != nil {
			return false, err.Error()
		}
		if st.LeaderID != lst.NodeID {
			return false, nd.ID + " sees leader " + st.LeaderID
		}
		// The FSM's applied index moves with commands and configuration
		// entries only: no-ops and barriers after the last of them are
		// looked up (CommandsApplied), or an idle cluster never converged.
		if !nd.Server.Node.CommandsApplied(lst.CommitIndex) {
			return false, fmt.Sprintf("%s lacks a command up to the commit index %d (FSM at %d, Raft applied %d)", nd.ID, lst.CommitIndex, nd.Server.Node.FSM.AppliedIndex(), nd.Server.Node.Status().AppliedIndex)
		}
		if len(st.Servers) < running {
			return false, nd.ID + " has fewer members than running nodes"
		}
	}
	return true, ""
}

func (c *Cluster) running(id string) bool {
	for _, nd := range c.Nodes {
		if nd.ID == id {
			return nd.Server != nil
		}
	}
	return false
}

// Kill stops node i in-process (Raft shutdown, listeners closed), keeping its data.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.Nodes[i].Server
	c.Nodes[i].Server = nil
	c.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
}

// Restart starts a killed node again on the same data directory and addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	nd := c.Nodes[i]
	c.mu.Unlock()
	if nd.Server != nil {
		c.t.Fatalf("restart %s: still running", nd.ID)
	}
	c.start(nd)
}

var _ framework.Cluster = (*Cluster)(nil)

// Len is the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.Nodes) }

// Admin returns an admin client on node i's socket.
func (c *Cluster) Admin(i int) *client.Admin {
	return client.NewAdmin(c.Nodes[i].Cfg.AdminSocket)
}

// MetricsURL is node i's metrics listener base URL.
func (c *Cluster) MetricsURL(i int) string { return "http://" + c.Nodes[i].Cfg.MetricsAddr }

// URL is node i's API base URL.
func (c *Cluster) URL(i int) string { return "http://" + c.Nodes[i].Cfg.APIAddr }

// Client returns a /v1 client on node i.
func (c *Cluster) Client(i int, key string) *client.Client { return client.New(c.URL(i), key) }

// RegisterOAuthClient registers an OAuth client of metadata meta (RFC 7591
// dynamic registration) on node i and returns its client_id; it fails the
// test unless the registration answers 201 with one.
func (c *Cluster) RegisterOAuthClient(i int, meta map[string]any) string {
	c.t.Helper()
	body, err := json.Marshal(meta)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.Post(c.URL(i)+"/oauth/register", "application/json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	rep, err := framework.ReadReply(resp)
	if err != nil {
		c.t.Fatal(err)
	}
	if rep.Status != http.StatusCreated {
		c.t.Fatalf("register an OAuth client: %s; want 201", rep)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	rep.Decode(c.t, &reg)
	if reg.ClientID == "" {
		c.t.Fatalf("register an OAuth client: %s; want a client_id", rep)
	}
	return reg.ClientID
}

// NewAccount creates an account with a key of the given scopes (default scopes
// when none) through the leader, returning the account and the key.
func (c *Cluster) NewAccount(email string, scopes ...string) (api.Account, string) {
	c.t.Helper()
	ctx := context.Background()
	var acc api.Account
	resent := false
	c.Retry503(func() (err error) {
		adm := c.Admin(c.WaitLeader(10 * time.Second))
		acc, err = adm.CreateAccount(ctx, api.AccountCreateRequest{Email: email})
		if resent && api.StatusOf(err) == 409 {
			// A create answered 503 during a leader change may have
			// committed all the same (README "Retry policy"): the
			// account the resend conflicts with is that one.
			acc, err = adm.Account(ctx, email)
		}
		resent = true
		return err
	})
	var k api.KeyCreated
	c.Retry503(func() (err error) {
		k, err = c.Admin(c.WaitLeader(10*time.Second)).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "test", Scopes: scopes})
		return err
	})
	return acc, k.Key
}

// Retry503 runs fn until it succeeds or fails with something other than a 503
// (which the API answers while leadership changes, telling clients to retry);
// it fails the test after 20 s or on another error.
func (c *Cluster) Retry503(fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if api.StatusOf(err) != 503 || time.Now().After(deadline) {
			c.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WithRateLimit sets the default per-key rate limit (load tests need more than 120/min).
func WithRateLimit(perMin int) Option {
	return func(_ int, c *server.Config) { c.RateLimit = perMin }
}

// Running reports whether node i is up.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[i].Server != nil
}

// TicketLoad starts workers that create tickets with key through the running
// members in turn (worker w's n-th ticket, subject "w<w>-<n>", goes to member
// (w+n) mod the cluster size) until the returned stop is called; stop waits for
// them. Each attempt's outcome goes to done; after a failed one the worker
// pauses 20 ms.
func (c *Cluster) TicketLoad(key string, workers int, message string, done func(member int, t api.Ticket, err error)) (stop func()) {
	var (
		halt sync.Once
		quit = make(chan struct{})
		wg   sync.WaitGroup
	)
	ctx := context.Background()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-quit:
					return
				default:
				}
				i := (w + n) % len(c.Nodes)
				if !c.Running(i) {
					continue
				}
				cl := c.Client(i, key)
				cl.HTTP.Timeout = 5 * time.Second
				tk, err := cl.CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprintf("w%d-%d", w, n), Message: message}, "")
				done(i, tk, err)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	return func() { halt.Do(func() { close(quit) }); wg.Wait() }
}
