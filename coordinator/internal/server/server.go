// Package server assembles a coordinator: the Raft member, the public and admin
// HTTP servers, and the loops that run only while this node is the leader.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/domainreg"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/rdns/reconcile"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/internal/logsetup"
	"github.com/hostplane/hostplane/internal/sysd"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/version"
)

// Server is a running coordinator.
type Server struct {
	cfg Config
	// dataLock is the data directory's lock (lockDataDir), held until Close.
	dataLock *os.File
	// levelWhy is what last held the semantics level back, logged once per
	// change (level.go; leader jobs only).
	levelWhy string
	log      *slog.Logger
	out      io.Writer
	Node     *raftnode.Node
	API      *httpapi.API
	apiLn    net.Listener
	adminLn  net.Listener
	apiSrv   *http.Server
	admSrv   *http.Server

	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	apiAddr  string
	pprofSrv *http.Server
	metrics  *httpapi.Metrics
	metSrv   *http.Server
	metAddr  string
	rdnsMet  *reconcile.Metrics
	kek      *kekCheck

	domainRegistry registrar.Registrar
	domainDriver   *domainreg.Driver
}

// httpErrorLog is the ErrorLog of the listener named listener: what net/http
// logs itself (a handler's superfluous WriteHeader, a panic it recovered, an
// accept error, a TLS handshake that failed) goes to the coordinator's log as
// a warning of component "http", in its format and escaping, instead of a
// plain line on stderr between the JSON ones.
func httpErrorLog(log *slog.Logger, listener string) *stdlog.Logger {
	return slog.NewLogLogger(log.With("component", "http", "listener", listener).Handler(), slog.LevelWarn)
}

// NewLogger builds the slog logger the config asks for: JSON or text lines on w,
// or native journald entries (falling back to JSON on w when there is no journal),
// with customer text's C1 and bidi controls escaped (logsetup.New).
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	return logsetup.New(cfg.LogFormat, cfg.LogLevel, "hostplane-coordinator", w)
}

// Start brings a coordinator up and returns once it listens. out receives the
// human-facing start-up lines (API URL, bootstrap key); log receives the logs.
func Start(cfg Config, log *slog.Logger, out io.Writer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if out == nil {
		out = io.Discard
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.Close()
		}
	}()
	var tlsCfg *tls.Config
	if cfg.RaftTLSCert != "" {
		var err error
		if tlsCfg, err = raftnode.LoadMutualTLS(cfg.RaftTLSCert, cfg.RaftTLSKey, cfg.RaftTLSCA); err != nil {
			return nil, err
		}
	}
	apiLn, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w%s", cfg.APIAddr, err, listenHint(err, "--api-addr"))
	}
	s := &Server{cfg: cfg, log: log, out: out, apiLn: apiLn, dataLock: lock}
	s.apiAddr = cfg.APIAdvertise
	if s.apiAddr == "" {
		s.apiAddr = apiLn.Addr().String()
	}
	node, err := raftnode.Open(raftnode.Config{
		ID: cfg.NodeID, Dir: filepath.Join(cfg.DataDir, "raft"), BindAddr: cfg.RaftAddr, AdvertiseAddr: cfg.RaftAdvertise,
		Bootstrap: cfg.Bootstrap, TLS: tlsCfg, ClusterSecret: cfg.ClusterSecret, HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout,
		LeaderLeaseTimeout: cfg.HeartbeatTimeout / 2, SnapshotThreshold: cfg.SnapshotThreshold, Logger: log,
		MaxLevel: cfg.TestMaxLevel,
	})
	if err != nil {
		apiLn.Close()
		return nil, fmt.Errorf("%w%s", err, listenHint(err, "--raft-addr"))
	}
	s.Node = node
	metrics := httpapi.NewMetrics(func() float64 { return float64(node.FSM.Size()) }, func() float64 { return float64(node.FSM.AppliedIndex()) })
	metrics.Register(node.FSM.Collectors()...)
	metrics.Register(node.Collectors()...)
	s.API = httpapi.New(httpapi.Config{
		NodeID: cfg.NodeID, Brand: s.brand(), KeyPrefix: cfg.KeyPrefix, DefaultRateLimit: cfg.RateLimit, IPRateLimit: cfg.IPRateLimit, TrustedProxies: cfg.TrustedProxyList, ClusterSecret: cfg.ClusterSecret,
		IdempotencyTTL: cfg.IdempotencyTTL, Timeouts: cfg.HTTP, ClusterTLS: tlsCfg,
		Issuer: publicURL(cfg.PublicURL, s.apiAddr), IssuerDefaulted: cfg.PublicURL == "", Tuning: cfg.Tuning,
		ReservedDomains: cfg.ReservedList,
	}, node, log.With("component", "api"), cfg.Clock, metrics)
	s.metrics = metrics
	s.rdnsMet = reconcile.NewMetrics(node.FSM)
	metrics.Register(s.rdnsMet.Collectors()...)
	if err := s.initWebhooks(); err != nil {
		apiLn.Close()
		node.Close()
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	s.kek = newKEKCheck(s)
	metrics.Register(s.kek.collector())
	s.API.SetKEKState(s.kek.State)
	if err := s.startDomainReg(); err != nil {
		apiLn.Close()
		node.Close()
		return nil, err
	}

	if adminSocketInUse(cfg.AdminSocket) {
		apiLn.Close()
		node.Close()
		return nil, fmt.Errorf("admin socket %s: a running coordinator answers on it: stop it, or give this coordinator another --admin-socket", cfg.AdminSocket)
	}
	_ = os.Remove(cfg.AdminSocket) // a stale socket from a crash
	adminLn, err := net.Listen("unix", cfg.AdminSocket)
	if err != nil {
		apiLn.Close()
		node.Close()
		return nil, fmt.Errorf("admin socket %s: %w", cfg.AdminSocket, err)
	}
	_ = os.Chmod(cfg.AdminSocket, 0o600)
	s.adminLn = adminLn
	if err := s.startNodes(); err != nil {
		adminLn.Close()
		apiLn.Close()
		node.Close()
		return nil, fmt.Errorf("agent sessions: %w", err)
	}
	var metLn net.Listener
	if cfg.MetricsAddr != "" {
		if metLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			s.closeNodes()
			adminLn.Close()
			apiLn.Close()
			node.Close()
			return nil, fmt.Errorf("metrics listen %s: %w (give each coordinator its own --metrics-addr, or an empty one to turn /metrics off)", cfg.MetricsAddr, err)
		}
	}
	planAddrs, _ := httpapi.ParsePlanAddresses(cfg.Nodes.PlanAddresses) // checked by Config.validate
	admin := s.API.ServerAdmin(s.API.NodeAdmin(s.API.ReverseZoneAdmin(s.API.AdminHandler()), s.nodeAdminDeps()), httpapi.ServerAdminConfig{
		VMPrefix: cfg.Nodes.VMPrefix, CPUOvercommit: cfg.Nodes.CPUOvercommit, Nodes: s.nodeAdminDeps(), PlanAddrs: planAddrs})
	if tlsCfg != nil {
		// Coordinators forward to each other over mutual TLS on the API port.
		apiLn = httpapi.SniffTLS(apiLn, tlsCfg.Clone(), cfg.HTTP.ReadHeader, metrics)
	}
	public, err := mcpserver.Attach(s.API, admin, mcpserver.HTTPOptions{
		StreamsPerAccount: cfg.MCPStreamsPerAccount, StreamsPerIP: cfg.MCPStreamsPerIP, Streams: cfg.MCPStreams, StreamIdle: cfg.MCPStreamIdle, SessionsPerAccount: cfg.MCPSessionsPerAccount}) // /v1 and /mcp
	if err != nil {
		s.closeNodes()
		adminLn.Close()
		apiLn.Close()
		node.Close()
		if metLn != nil {
			metLn.Close()
		}
		return nil, fmt.Errorf("mcp tools: %w", err)
	}
	// An X-Forwarded-For from a peer not in --trusted-proxies is ignored:
	// warned about once per peer, and counted.
	public, xffCount := s.API.UntrustedForwardedFor(public)
	metrics.Register(xffCount)
	s.apiSrv = cfg.HTTP.Server(public)
	s.apiSrv.ErrorLog = httpErrorLog(log, "api")
	s.admSrv = cfg.HTTP.Server(httpapi.Secure(admin))
	s.admSrv.ErrorLog = httpErrorLog(log, "admin")
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(7)
	go func() { defer s.wg.Done(); s.registerLoop(ctx) }()
	go func() { defer s.wg.Done(); s.shipUsageLoop(ctx) }()
	go func() { defer s.wg.Done(); s.watchBrand(ctx) }()
	go func() { defer s.wg.Done(); s.kek.run(ctx) }()
	go func() { defer s.wg.Done(); _ = s.apiSrv.Serve(apiLn) }()
	go func() { defer s.wg.Done(); _ = s.admSrv.Serve(adminLn) }()
	go func() { defer s.wg.Done(); s.leaderLoop(ctx) }()
	if metLn != nil {
		s.metAddr = metLn.Addr().String()
		s.metSrv = cfg.HTTP.Server(metrics.MetricsHandler())
		s.metSrv.ErrorLog = httpErrorLog(log, "metrics")
		go func() { _ = s.metSrv.Serve(metLn) }()
	}
	if cfg.PprofAddr != "" {
		ps := pprofServer(cfg.HTTP)
		ps.Addr, ps.ErrorLog = cfg.PprofAddr, httpErrorLog(log, "pprof")
		s.pprofSrv = ps
		go func() { _ = ps.ListenAndServe() }()
	}
	log.Info("coordinator started", "version", version.Version, "node_id", cfg.NodeID, "api", s.apiAddr, "raft", string(node.Addr), "data_dir", cfg.DataDir, "raft_auth", node.TransportAuth())
	if !cfg.Bootstrap && cfg.ClusterSecret == "" && cfg.RaftTLSCert == "" {
		log.Warn("started to be joined to a cluster with neither --cluster-secret nor --raft-tls-*: the Raft port is open to anyone who reaches it "+
			"(any process there can send this coordinator Raft messages and rewrite its state); give every coordinator the same --cluster-secret-file "+
			"or --raft-tls-cert/-key/-ca", "raft", string(node.Addr))
	}
	started = true
	return s, nil
}

// pprofServer is the --pprof-addr listener's server: the limits of the
// other listeners (Timeouts.Server: the header limits, the per-request
// deadlines, and Connection: close after a request framed by
// Transfer-Encoding, RFC 9112 §6.3), except that a profile which runs for
// the seconds the client asks (a CPU profile, a trace, a delta profile of
// the index's: heap, allocs, block, mutex with ?seconds=) lifts the
// deadlines. (The read deadline ends such a request's context too: net/http
// reads the connection in the background and cancels it on the error.)
func pprofServer(t httpapi.Timeouts) *http.Server {
	long := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			httpapi.LiftDeadlines(w)
			h(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("seconds") {
			long(pprof.Index)(w, r)
			return
		}
		pprof.Index(w, r)
	})
	mux.HandleFunc("/debug/pprof/profile", long(pprof.Profile))
	mux.HandleFunc("/debug/pprof/trace", long(pprof.Trace))
	return t.Server(mux)
}

// APIHandler is the public listener's handler (for in-process benchmarks).
func (s *Server) APIHandler() http.Handler { return s.apiSrv.Handler }

// APIURL is the base URL of the public API.
func (s *Server) APIURL() string { return "http://" + s.apiAddr }

// MetricsURL is the base URL of the metrics listener ("" when it is off).
func (s *Server) MetricsURL() string {
	if s.metAddr == "" {
		return ""
	}
	return "http://" + s.metAddr
}

// AdminSocket is the admin socket path.
func (s *Server) AdminSocket() string { return s.cfg.AdminSocket }

// RaftAddr is the advertised Raft address.
func (s *Server) RaftAddr() string { return string(s.Node.Addr) }

// Close stops everything; it is safe to call twice.
func (s *Server) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.API.CloseForwarding(ctx)
	_ = s.apiSrv.Shutdown(ctx)
	_ = s.admSrv.Shutdown(ctx)
	if s.pprofSrv != nil {
		_ = s.pprofSrv.Close()
	}
	if s.metSrv != nil {
		_ = s.metSrv.Close()
	}
	s.wg.Wait()
	s.closeNodes()
	if s.domainRegistry != nil {
		_ = s.domainRegistry.Close()
	}
	err := s.Node.Close()
	_ = os.Remove(s.cfg.AdminSocket)
	_ = s.dataLock.Close()
	return err
}

// Run starts a coordinator and blocks until ctx is cancelled.
func Run(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) error {
	s, err := Start(cfg, log, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hostplane coordinator %s\n  API:          %s\n  admin socket: %s\n", cfg.NodeID, s.APIURL(), s.cfg.AdminSocket)
	sctx, stopNotify := context.WithCancel(ctx)
	var notifiers sync.WaitGroup
	notifiers.Add(2)
	go func() { defer notifiers.Done(); s.notifyReady(sctx) }()
	go func() { defer notifiers.Done(); sysd.Watchdog(sctx, log, (&progress{s: s}).check) }()
	<-ctx.Done()
	stopNotify()
	notifiers.Wait()
	sysd.Stopping(log)
	log.Info("shutting down")
	return s.Close()
}

// leaderLoop starts the leader-only jobs on gaining leadership and stops them on
// losing it.
func (s *Server) leaderLoop(ctx context.Context) {
	var stopJobs func()
	start := func() func() {
		jctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.runLeader(jctx) }()
		return func() { cancel(); <-done }
	}
	defer func() {
		if stopJobs != nil {
			stopJobs()
		}
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		leader := s.Node.IsLeader()
		if leader && stopJobs == nil {
			stopJobs = start()
		} else if !leader && stopJobs != nil {
			s.log.Info("lost leadership; stopping leader jobs")
			stopJobs()
			stopJobs = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-s.Node.LeaderCh():
		case <-tick.C:
		}
	}
}

func (s *Server) runLeader(ctx context.Context) {
	s.log.Info("gained leadership; starting leader jobs")
	term := s.Node.Term()
	if err := s.Node.Barrier(30 * time.Second); err != nil {
		s.log.Warn("barrier after election failed", "err", err)
		return
	}
	if !s.recordBrand(ctx) {
		return // not serving: the cluster has another brand
	}
	s.kek.recordAsLeader(ctx)
	// A new cluster's first leader, alone, records its level before it
	// serves: nothing of a new cluster runs at an older level. (With other
	// members, asking them could hold the new leader's service back by
	// their timeouts: levelJob does it.)
	if ms, err := s.Node.Servers(); err == nil && len(ms) == 1 {
		s.raiseLevel(ctx)
	}
	s.API.SetLeaderReady(term)
	s.bootstrapAccount(ctx)
	usage := time.NewTicker(s.cfg.UsageFlush)
	defer usage.Stop()
	sweep := time.NewTicker(s.cfg.IdempotencySweep)
	defer sweep.Stop()
	s.sweepIdempotency(ctx)
	s.sweepOAuth(ctx)
	var jobs sync.WaitGroup
	defer jobs.Wait()
	for _, job := range append(append(append(s.webhookJobs(), s.nodeJobs()...), s.rdnsJobs()...), append(append(s.certJobs(), s.renewalJobs()...), append(s.domainRegJobs(), s.levelJob)...)...) {
		jobs.Add(1)
		go func() { defer jobs.Done(); job(ctx) }()
	}
	for {
		select {
		case <-ctx.Done():
			// Stopping while it leads: write what was recorded. Stopped
			// because it no longer leads: a proposal would fail and the
			// usage taken be lost; left recorded, shipUsageLoop sends it
			// to the new leader.
			if s.Node.IsLeader() {
				s.flushUsage(context.Background())
			}
			return
		case <-usage.C:
			s.flushUsage(ctx)
		case <-sweep.C:
			s.sweepIdempotency(ctx)
			s.sweepOAuth(ctx)
		}
	}
}

// propose proposes a command of the coordinator's own (action results,
// sweeps, registration) at the coordinator's clock: the API's, so a clock
// moved for tests (Config.Clock) moves these commands' times too.
func (s *Server) propose(ctx context.Context, t fsm.CommandType, payload any) (*fsm.Result, error) {
	env, err := fsm.NewEnvelope(t, s.now()(), payload)
	if err != nil {
		return nil, err
	}
	return s.API.Apply(ctx, env)
}

// registerLoop makes sure the FSM holds this node's API address, which followers
// need to forward requests to it when it leads. The leader writes it directly; a
// follower asks the leader through the cluster-internal admin mount. Each
// tick also logs the cluster warnings that apply (warnCluster).
func (s *Server) registerLoop(ctx context.Context) {
	var warned clusterWarned
	clock.Every(ctx, time.Second, func() {
		s.warnCluster(&warned, s.Node.Servers)
		var cur store.ClusterNode
		_ = s.Node.FSM.Read(func(r store.ReadTx) (err error) { cur, err = r.ClusterNode(s.cfg.NodeID); return })
		if cur.APIAddr != s.apiAddr {
			if err := s.registerSelf(ctx); err != nil {
				s.log.Debug("register api address: will retry", "err", err)
			}
		}
	})
}

// clusterWarned is how many coordinators each of warnCluster's warnings last
// named (0: none).
type clusterWarned struct{ publicURL, raftPort int }

// warnCluster logs, when it sees this coordinator in a cluster of several,
// the warnings such a cluster needs, each again when the number of
// coordinators changes (a follower may first see the cluster at 2 on its way
// to 3); w holds the numbers they last named. The Raft configuration is read
// once (servers) for both, and not at all when neither applies; a
// coordinator alone again, or a configuration not read, changes nothing.
//   - no --public-url: OAuth through the others breaks (hostplanectl cluster
//     status says it too);
//   - neither a cluster secret nor Raft TLS guards its Raft port (Start logs
//     it at once for a coordinator started to be joined).
func (s *Server) warnCluster(w *clusterWarned, servers func() ([]raftnode.Server, error)) {
	noPublicURL := s.cfg.PublicURL == ""
	openRaftPort := s.cfg.ClusterSecret == "" && s.cfg.RaftTLSCert == ""
	if !noPublicURL && !openRaftPort {
		return
	}
	ms, err := servers()
	if err != nil || len(ms) < 2 {
		return
	}
	n := len(ms)
	if noPublicURL && n != w.publicURL {
		s.log.Warn(httpapi.NoPublicURLWarning(n))
		w.publicURL = n
	}
	if openRaftPort && n != w.raftPort {
		s.log.Warn(httpapi.OpenRaftPortWarning(n), "raft", string(s.Node.Addr))
		w.raftPort = n
	}
}

func (s *Server) registerSelf(ctx context.Context) error {
	if s.Node.IsLeader() {
		_, err := s.propose(ctx, fsm.CmdNodeRegister, fsm.NodeRegister{ID: s.cfg.NodeID, APIAddr: s.apiAddr})
		return err
	}
	leader := s.API.ClusterURL()
	if leader == "" || s.cfg.ClusterSecret == "" && s.cfg.RaftTLSCert == "" {
		return errors.New("leader API address unknown, or neither cluster secret nor cluster TLS to authenticate with")
	}
	body, _ := json.Marshal(api.ClusterRegisterRequest{ID: s.cfg.NodeID, APIAddr: s.apiAddr})
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, "POST", leader+"/internal/admin/cluster/register", bytes.NewReader(body))
	if err != nil {
		return err
	}
	if s.cfg.ClusterSecret != "" {
		req.Header.Set(httpapi.HeaderClusterToken, s.cfg.ClusterSecret)
	}
	resp, err := s.API.ClusterClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %s", resp.Status)
	}
	return nil
}

// bootstrapAccount creates the first account and prints its key, once: only on a
// bootstrapped cluster whose FSM has no account yet.
func (s *Server) bootstrapAccount(ctx context.Context) {
	if !s.cfg.Bootstrap || !s.cfg.BootstrapAccount {
		return
	}
	marker := filepath.Join(s.cfg.DataDir, "bootstrap-account-done")
	if _, err := os.Stat(marker); err == nil {
		// A restart on the same data dir (a second make run): the key was
		// shown once, on the first start; say how to get another.
		fmt.Fprintf(s.out, "\nThe bootstrap account (%s) was created on an earlier start, and its API key shown then.\n"+
			"To mint another: hostplanectl --socket %s account show %s (its id), then\n"+
			"                 hostplanectl --socket %s key create ACCOUNT_ID\n\n",
			s.cfg.BootstrapEmail, s.cfg.AdminSocket, s.cfg.BootstrapEmail, s.cfg.AdminSocket)
		return
	}
	empty := true
	_ = s.Node.FSM.Read(func(r store.ReadTx) error { empty = !r.AnyAccount(); return nil })
	if !empty {
		_ = os.WriteFile(marker, []byte("1\n"), 0o600)
		return
	}
	now := s.now()()
	accID := ids.New("acc", now)
	if _, err := s.propose(ctx, fsm.CmdAccountCreate, fsm.AccountCreate{ID: accID, Email: s.cfg.BootstrapEmail, Name: "Bootstrap admin", Country: "TR"}); err != nil {
		s.log.Error("bootstrap account failed", "err", err)
		return
	}
	plain, hash, prefix := auth.NewKey(s.cfg.KeyPrefix)
	if _, err := s.propose(ctx, fsm.CmdKeyCreate, fsm.KeyCreate{ID: ids.New("key", now), AccountID: accID, Name: "bootstrap", Hash: hash, Prefix: prefix, Scopes: s.brand().DefaultScopes()}); err != nil {
		s.log.Error("bootstrap key failed", "err", err)
		return
	}
	_ = os.WriteFile(marker, []byte("1\n"), 0o600)
	s.log.Info("bootstrap account created", "account_id", accID, "key_prefix", prefix)
	fmt.Fprintf(s.out, "\nBootstrap account %s (%s) created.\nIts API key, shown only this once:\n\n  %s\n\n", accID, s.cfg.BootstrapEmail, plain)
}

// shipUsageLoop sends, while this coordinator follows, the key usage it
// recorded (stale reads it answered) to the leader every usage flush
// interval, and once more when it stops: the leader's flush writes it.
func (s *Server) shipUsageLoop(ctx context.Context) {
	ship := func(ctx context.Context) {
		if err := s.API.ShipUsage(ctx); err != nil {
			s.log.Debug("ship key usage to the leader: will retry", "err", err)
		}
	}
	clock.Every(ctx, s.cfg.UsageFlush, func() { ship(ctx) })
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ship(sctx)
}

// flushUsage writes the key usage recorded since the last flush
// (httpapi.FlushUsage).
func (s *Server) flushUsage(ctx context.Context) {
	if err := s.API.FlushUsage(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("flush key usage failed", "err", err)
	}
}

func (s *Server) sweepIdempotency(ctx context.Context) {
	res, err := s.propose(ctx, fsm.CmdIdemExpire, fsm.IdemExpire{Limit: 10000})
	if err != nil {
		s.log.Warn("idempotency sweep failed", "err", err)
		return
	}
	if n, _ := res.Value.(int); n > 0 {
		s.log.Info("expired idempotency records removed", "count", n)
	}
}

// unusedClientTTL is how long a registered OAuth client (RFC 7591, which
// anyone may register) is kept while nothing names it: no connected app,
// pending device authorization or code.
const unusedClientTTL = 24 * time.Hour

// sweepOAuth removes expired OAuth tokens and the grants they leave empty,
// and the registered clients nothing has named for unusedClientTTL.
func (s *Server) sweepOAuth(ctx context.Context) {
	res, err := s.propose(ctx, fsm.CmdOAuthSweep, fsm.OAuthSweep{Limit: 10000, ClientsUnusedBefore: s.now()().Add(-unusedClientTTL)})
	if err != nil {
		s.log.Warn("oauth sweep failed", "err", err)
		return
	}
	if n, _ := res.Value.(map[string]int); n["tokens"] > 0 || n["clients"] > 0 {
		s.log.Info("expired oauth tokens and unused clients removed", "tokens", n["tokens"], "grants", n["grants"], "clients", n["clients"])
	}
}

// publicURL is the API's base URL: the configured one, or http://<api address>.
func publicURL(configured, apiAddr string) string {
	if configured != "" {
		return strings.TrimSuffix(configured, "/")
	}
	return "http://" + apiAddr
}

// brand is the configured dialect (the default when the name is not valid:
// Validate refuses that).
func (s *Server) brand() *brand.Brand {
	b, err := brand.Get(s.cfg.Brand)
	if err != nil {
		return brand.Of(nil)
	}
	return b
}

// recordBrand records this coordinator's brand as the cluster's (the first
// leader's) or checks it against the recorded one. On a mismatch the API
// refuses to serve and leadership is handed to another coordinator; false
// means "do not run the leader jobs".
func (s *Server) recordBrand(ctx context.Context) bool {
	_, err := s.propose(ctx, fsm.CmdClusterBrand, fsm.ClusterBrand{Brand: s.brand().Name})
	if err == nil {
		return true
	}
	if !errors.Is(err, fsm.ErrConflict) {
		s.log.Warn("recording the cluster's brand failed; will retry on the next leadership", "err", err)
		return true
	}
	msg := "brand mismatch: this coordinator runs --brand " + s.brand().Name + " but " + strings.TrimPrefix(err.Error(), fsm.ErrConflict.Error()+": ")
	s.API.SetBrandMismatch(msg)
	s.log.Error("refusing to serve", "reason", msg)
	if err := s.Node.TransferLeadership(""); err != nil {
		s.log.Warn("handing leadership away after the brand mismatch failed", "err", err)
	}
	return false
}

// watchBrand compares the cluster's recorded brand with this coordinator's
// as the state replicates, so a follower started with another --brand
// refuses to serve too (and serves again once restarted right).
func (s *Server) watchBrand(ctx context.Context) {
	clock.Every(ctx, 500*time.Millisecond, func() {
		var have string
		_ = s.Node.FSM.Read(func(r store.ReadTx) error { have = r.ClusterBrand(); return nil })
		if have != "" && have != s.brand().Name {
			s.API.SetBrandMismatch("brand mismatch: this coordinator runs --brand " + s.brand().Name + " but the cluster's brand is " + have + " (every coordinator needs --brand " + have + ")")
		} else if have == s.brand().Name {
			s.API.SetBrandMismatch("")
		}
	})
}
