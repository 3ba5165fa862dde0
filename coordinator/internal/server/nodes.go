package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/dispatch"
	"github.com/hostplane/hostplane/coordinator/internal/hostingusage"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/nodes"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/clock"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/spf13/pflag"
)

// NodeConfig holds the agent session settings.
type NodeConfig struct {
	// ListenAddr is the UDP address agents dial (QUIC); empty: no agent sessions.
	ListenAddr string
	// Advertise is the address followers send agents to when this node leads
	// (default: the bound address).
	Advertise    string
	PingInterval time.Duration
	// Grace: a node with no ping for this long is recorded unreachable.
	Grace   time.Duration
	CertTTL time.Duration
	// ActionDeadline: an action whose node stays away this long fails.
	ActionDeadline time.Duration
	// CleanupRetryBase: the wait before a failed provisioning's failed
	// cleanup is tried again, doubled per attempt (dispatch.Deps).
	CleanupRetryBase time.Duration
	// VMPrefix starts the libvirt name of every server this cluster places.
	VMPrefix string
	// CPUOvercommit is how many vCPUs placement sells per host CPU.
	CPUOvercommit float64
	// PlanAddresses says how many IP pool addresses each plan's servers get
	// ("nano=1/0,large=2/1": IPv4 addresses / IPv6 prefixes; others 1/1).
	PlanAddresses string
	// HostingUsageInterval is how often the leader asks each hosting node
	// for its accounts' disk usage (hostingusage).
	HostingUsageInterval time.Duration

	// Set in code only (tests): the clock of node liveness and certificates
	// (nil: the wall clock). Action deadlines are judged on the API's clock
	// (API.Now), the one they were set on.
	Clock clock.Clock

	rt *nodeRuntime // made by validate, one per start
}

func nodeDefaults() NodeConfig {
	return NodeConfig{PingInterval: 5 * time.Second, Grace: 30 * time.Second, CertTTL: 90 * 24 * time.Hour,
		ActionDeadline: 5 * time.Minute, CleanupRetryBase: time.Minute, VMPrefix: "hp-", CPUOvercommit: 4,
		HostingUsageInterval: hostingusage.DefaultInterval}
}

func bindNodeFlags(fs *pflag.FlagSet, c *NodeConfig) {
	// Defaults() leaves Nodes zero; fill it here so --help shows the defaults.
	c.fillDefaults()
	fs.StringVar(&c.ListenAddr, "agent-listen", c.ListenAddr, "UDP address (host:port) where agents hold their QUIC sessions, e.g. 0.0.0.0:8422; empty: no agent sessions")
	fs.StringVar(&c.Advertise, "agent-advertise", c.Advertise, "agent session address other coordinators send agents to when this one leads (default: the bound agent-listen address)")
	fs.DurationVar(&c.PingInterval, "agent-ping-interval", c.PingInterval, "how often agents ping their coordinator")
	fs.DurationVar(&c.Grace, "agent-grace", c.Grace, "a node without a ping for this long is recorded unreachable")
	fs.DurationVar(&c.CertTTL, "agent-cert-ttl", c.CertTTL, "lifetime of node certificates; agents renew them once two thirds of it has passed")
	fs.DurationVar(&c.ActionDeadline, "action-deadline", c.ActionDeadline, "an action (power, snapshot, reinstall, …) whose node stays unreachable this long fails with a message saying so")
	fs.DurationVar(&c.CleanupRetryBase, "cleanup-retry-base", c.CleanupRetryBase, "a failed order's cleanup (the terminate or delete its failed provisioning opens), or a hosting.uncert (a custom domain taken off its node), that fails is tried again after this, then twice as long each time (at most 1h), 6 attempts in all; each failure is logged, the last as an error")
	fs.StringVar(&c.VMPrefix, "vm-name-prefix", c.VMPrefix, "prefix of the libvirt domain name of every server placed by this cluster (a-z, 0-9, '-', at most 20 characters)")
	fs.Float64Var(&c.CPUOvercommit, "cpu-overcommit", c.CPUOvercommit, "vCPUs placement may sell per host CPU (memory and disk are never overcommitted)")
	fs.DurationVar(&c.HostingUsageInterval, "hosting-usage-interval", c.HostingUsageInterval, "how often the leader asks each hosting node for its accounts' disk usage (quota.disk_used_bytes: allocated blocks of the site, du's count) and writes the figures that changed, one Raft command per node (from semantics level 4), each node at its own point of the interval (a hash of its id); at least 1s")
	fs.StringVar(&c.PlanAddresses, "plan-addresses", c.PlanAddresses, "IP pool addresses per plan as PLAN=IPV4/IPV6 (IPv4 addresses / IPv6 prefixes), comma-separated, e.g. nano=1/0; a plan not named gets 1/1")
}

// orDefault sets an unset setting to its default d: one that is 0 or less
// (a string: empty).
func orDefault[T cmp.Ordered](v *T, d T) {
	var zero T
	if *v <= zero {
		*v = d
	}
}

// fillDefaults gives every unset setting (0 or less; --vm-name-prefix:
// empty) its default: before the flags are bound, so --help shows the
// defaults, and in validate, for a Config built in code.
func (c *NodeConfig) fillDefaults() {
	d := nodeDefaults()
	orDefault(&c.PingInterval, d.PingInterval)
	orDefault(&c.Grace, d.Grace)
	orDefault(&c.CertTTL, d.CertTTL)
	orDefault(&c.ActionDeadline, d.ActionDeadline)
	orDefault(&c.CleanupRetryBase, d.CleanupRetryBase)
	orDefault(&c.HostingUsageInterval, d.HostingUsageInterval)
	orDefault(&c.VMPrefix, d.VMPrefix)
	orDefault(&c.CPUOvercommit, d.CPUOvercommit)
}

func (c *NodeConfig) validate() error {
	c.fillDefaults()
	c.rt = &nodeRuntime{}
	var errs []error
	if c.ListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			errs = append(errs, fmt.Errorf("agent-listen %q: %v", c.ListenAddr, err))
		}
	}
	if c.Grace < 2*c.PingInterval {
		errs = append(errs, fmt.Errorf("agent-grace %s must be at least twice agent-ping-interval %s", c.Grace, c.PingInterval))
	}
	if c.CertTTL < time.Minute {
		errs = append(errs, errors.New("agent-cert-ttl must be at least 1m"))
	}
	if c.HostingUsageInterval < time.Second {
		errs = append(errs, errors.New("hosting-usage-interval must be at least 1s"))
	}
	if c.ActionDeadline < time.Second {
		errs = append(errs, errors.New("action-deadline must be at least 1s"))
	}
	if _, err := httpapi.ParsePlanAddresses(c.PlanAddresses); err != nil {
		errs = append(errs, err)
	}
	if !httpapi.ValidVMPrefix(c.VMPrefix) {
		errs = append(errs, fmt.Errorf("vm-name-prefix %q: use 1-20 characters of a-z, 0-9 and '-', starting with a letter or digit", c.VMPrefix))
	}
	if c.CPUOvercommit > 64 {
		errs = append(errs, errors.New("cpu-overcommit must be at most 64"))
	}
	return errors.Join(errs...)
}

// nodeRuntime is the per-start state of the agent side of a coordinator.
type nodeRuntime struct {
	nodes *nodes.Service
	disp  *dispatch.Dispatcher
	usage *hostingusage.Job
}

// startNodes builds the node backend and the action dispatcher and opens the
// agent session listener when configured.
func (s *Server) startNodes() error {
	c := &s.cfg.Nodes
	if c.rt == nil {
		return errors.New("agent sessions: config was not validated")
	}
	c.rt.nodes = nodes.New(nodes.Config{
		ID: s.cfg.NodeID, ListenAddr: c.ListenAddr, Advertise: c.Advertise, PingInterval: c.PingInterval,
		Grace: c.Grace, CertTTL: c.CertTTL, Clock: c.Clock, Now: s.API.Now, Log: s.log, ConsoleKey: s.consolePublicKey,
		ConsoleSealKey: s.consoleSealKey,
	}, nodes.Deps{State: s.Node.FSM, Cluster: s.Node, Ready: s.API.LeaderReady, Apply: s.API.Apply, Sealer: s.sealer})
	c.rt.disp = dispatch.New(dispatch.Deps{
		State: s.Node.FSM, Propose: s.propose, Sessions: s.AgentSessions, Clock: c.Clock, Now: s.API.Now,
		Grace: c.Grace, ActionDeadline: c.ActionDeadline, CleanupRetryBase: c.CleanupRetryBase, Log: s.log,
		Watch: s.Node.FSM.WatchActions,
	})
	c.rt.usage = hostingusage.New(hostingusage.Deps{
		State: s.Node.FSM, Propose: s.propose, Interval: c.HostingUsageInterval, Now: s.now(), Clock: c.Clock,
		Log: s.log.With("subsystem", "hostingusage"),
		Nodes: func() map[string]uint32 {
			srv := s.AgentSessions()
			if srv == nil {
				return nil
			}
			out := map[string]uint32{}
			for id := range srv.Sessions() {
				out[id] = srv.Protocol(id)
			}
			return out
		},
		Call: func(ctx context.Context, nodeID string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
			srv := s.AgentSessions()
			if srv == nil {
				return session.ErrNotConnected
			}
			return srv.Call(ctx, nodeID, req, recv)
		},
	})
	deps := c.rt.disp.ServerDeps()
	deps.Console = s.console
	s.API.SetServerDeps(deps)
	if s.metrics != nil {
		s.metrics.Register(c.rt.disp.Collectors()...)
	}
	return c.rt.nodes.Listen(func(string) { c.rt.disp.Kick() }, c.rt.disp.OnInventory)
}

// closeNodes stops the listener and every session.
func (s *Server) closeNodes() {
	if rt := s.cfg.Nodes.rt; rt != nil && rt.nodes != nil {
		rt.nodes.Close()
	}
}

// AgentSessions is the session listener (nil when agent-listen is empty).
func (s *Server) AgentSessions() *session.Server {
	if rt := s.cfg.Nodes.rt; rt != nil && rt.nodes != nil {
		return rt.nodes.Sessions()
	}
	return nil
}

// AgentSessionAddr is the address agents dial, or "".
func (s *Server) AgentSessionAddr() string {
	if rt := s.cfg.Nodes.rt; rt != nil && rt.nodes != nil {
		return rt.nodes.SessionAddr()
	}
	return ""
}

// nodeAdminDeps is what the node admin routes need from the coordinator.
func (s *Server) nodeAdminDeps() httpapi.NodeDeps {
	n := s.cfg.Nodes.rt.nodes
	return httpapi.NodeDeps{EnsureCA: n.EnsureCA, Live: n.Live, Disconnect: n.Disconnect}
}

// nodeJobs are the leader-only loops: the liveness sweep (which registers this
// leader's session address), the action dispatcher and the hosting usage
// reports.
func (s *Server) nodeJobs() []func(ctx context.Context) {
	if s.AgentSessions() == nil {
		return nil
	}
	return []func(ctx context.Context){s.cfg.Nodes.rt.nodes.Liveness, s.cfg.Nodes.rt.disp.Run, s.cfg.Nodes.rt.usage.Run}
}

func (s *Server) sealer() (*webhook.Sealer, error) {
	if err := s.initWebhooks(); err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return s.cfg.Webhooks.rt.sealer, nil
}
