package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/dispatch"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
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
	// VMPrefix starts the libvirt name of every server this cluster places.
	VMPrefix string
	// CPUOvercommit is how many vCPUs placement sells per host CPU.
	CPUOvercommit float64

	// Set in code only (tests).
	Now func() time.Time

	rt *nodeRuntime // made by validate, one per start
}

func nodeDefaults() NodeConfig {
	return NodeConfig{PingInterval: 5 * time.Second, Grace: 30 * time.Second, CertTTL: 90 * 24 * time.Hour,
		ActionDeadline: 5 * time.Minute, VMPrefix: "hp-", CPUOvercommit: 4}
}

func bindNodeFlags(fs *pflag.FlagSet, c *NodeConfig) {
	d := nodeDefaults()
	if c.PingInterval == 0 {
		c.PingInterval, c.Grace, c.CertTTL = d.PingInterval, d.Grace, d.CertTTL
	}
	if c.ActionDeadline == 0 {
		c.ActionDeadline, c.VMPrefix, c.CPUOvercommit = d.ActionDeadline, d.VMPrefix, d.CPUOvercommit
	}
	fs.StringVar(&c.ListenAddr, "agent-listen", c.ListenAddr, "UDP address (host:port) where agents hold their QUIC sessions, e.g. 0.0.0.0:8422; empty: no agent sessions")
	fs.StringVar(&c.Advertise, "agent-advertise", c.Advertise, "agent session address other coordinators send agents to when this one leads (default: the bound agent-listen address)")
	fs.DurationVar(&c.PingInterval, "agent-ping-interval", c.PingInterval, "how often agents ping their coordinator")
	fs.DurationVar(&c.Grace, "agent-grace", c.Grace, "a node without a ping for this long is recorded unreachable")
	fs.DurationVar(&c.CertTTL, "agent-cert-ttl", c.CertTTL, "lifetime of node certificates; agents renew them once two thirds of it has passed")
	fs.DurationVar(&c.ActionDeadline, "action-deadline", c.ActionDeadline, "an action (power, snapshot, reinstall, …) whose node stays unreachable this long fails with a message saying so")
	fs.StringVar(&c.VMPrefix, "vm-name-prefix", c.VMPrefix, "prefix of the libvirt domain name of every server placed by this cluster (a-z, 0-9, '-', at most 20 characters)")
	fs.Float64Var(&c.CPUOvercommit, "cpu-overcommit", c.CPUOvercommit, "vCPUs placement may sell per host CPU (memory and disk are never overcommitted)")
}

func (c *NodeConfig) validate() error {
	d := nodeDefaults()
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.Grace <= 0 {
		c.Grace = d.Grace
	}
	if c.CertTTL <= 0 {
		c.CertTTL = d.CertTTL
	}
	if c.ActionDeadline <= 0 {
		c.ActionDeadline = d.ActionDeadline
	}
	if c.VMPrefix == "" {
		c.VMPrefix = d.VMPrefix
	}
	if c.CPUOvercommit <= 0 {
		c.CPUOvercommit = d.CPUOvercommit
	}
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
	if c.ActionDeadline < time.Second {
		errs = append(errs, errors.New("action-deadline must be at least 1s"))
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
	srv    *session.Server
	cancel context.CancelFunc
	done   chan struct{}
	disp   *dispatch.Dispatcher

	// leading is set while this coordinator's leader jobs run: sessions are
	// accepted only then (not while a stepping-down or closing leader winds down).
	leading atomic.Bool

	mu         sync.Mutex
	ca         *session.CA // unsealed CA, keyed by fingerprint
	serverCert *tls.Certificate
	certFP     string
	certUntil  time.Time
}

func (s *Server) nodesNow() time.Time {
	if s.cfg.Nodes.Now != nil {
		return s.cfg.Nodes.Now()
	}
	return time.Now()
}

// startNodes opens the agent session listener when configured.
func (s *Server) startNodes() error {
	c := &s.cfg.Nodes
	if c.rt == nil {
		return errors.New("agent sessions: config was not validated")
	}
	c.rt.disp = dispatch.New(dispatch.Deps{
		FSM: s.Node.FSM, Propose: s.propose, Sessions: s.AgentSessions, Now: s.nodesNow,
		Grace: c.Grace, ActionDeadline: c.ActionDeadline, Log: s.log,
	})
	s.API.SetServerDeps(c.rt.disp.ServerDeps())
	if s.metrics != nil {
		s.metrics.Register(c.rt.disp.Collectors()...)
	}
	if c.ListenAddr == "" {
		return nil
	}
	srv, err := session.Listen(session.Config{
		ID: s.cfg.NodeID, ListenAddr: c.ListenAddr, PingInterval: c.PingInterval, IdleTimeout: c.Grace, Backend: nodeBackend{s},
		Log: s.log.With("component", "agent-sessions"), Now: s.nodesNow,
		OnInventory: c.rt.disp.OnInventory,
		OnConnect:   func(string) { c.rt.disp.Kick() },
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.rt.srv, c.rt.cancel, c.rt.done = srv, cancel, make(chan struct{})
	go func() { defer close(c.rt.done); srv.Serve(ctx) }()
	s.log.Info("agent sessions listening", "addr", srv.Addr())
	return nil
}

// closeNodes stops the listener and every session.
func (s *Server) closeNodes() {
	rt := s.cfg.Nodes.rt
	if rt == nil || rt.srv == nil {
		return
	}
	rt.cancel()
	rt.srv.Close()
	<-rt.done
}

// AgentSessions is the session listener (nil when agent-listen is empty).
func (s *Server) AgentSessions() *session.Server {
	if s.cfg.Nodes.rt == nil {
		return nil
	}
	return s.cfg.Nodes.rt.srv
}

// AgentSessionAddr is the address agents dial, or "".
func (s *Server) AgentSessionAddr() string {
	if srv := s.AgentSessions(); srv != nil {
		if s.cfg.Nodes.Advertise != "" {
			return s.cfg.Nodes.Advertise
		}
		return srv.Addr()
	}
	return ""
}

// nodeAdminDeps is what the node admin routes need from the coordinator.
func (s *Server) nodeAdminDeps() httpapi.NodeDeps {
	return httpapi.NodeDeps{
		EnsureCA: s.ensureNodeCA,
		Live: func(id string) (time.Time, bool) {
			if srv := s.AgentSessions(); srv != nil {
				seen, ok := srv.Live(id)
				// A session silent for the grace period is dead (the QUIC
				// connection lingers until its idle timeout).
				return seen, ok && s.nodesNow().Sub(seen) <= s.cfg.Nodes.Grace
			}
			return time.Time{}, false
		},
		Disconnect: func(id string) {
			if srv := s.AgentSessions(); srv != nil {
				srv.Disconnect(id, "node removed")
			}
		},
	}
}

// nodeJobs are the leader-only loops: registering this leader's session address
// and the liveness sweep.
func (s *Server) nodeJobs() []func(ctx context.Context) {
	if s.AgentSessions() == nil {
		return nil
	}
	return []func(ctx context.Context){s.livenessLoop, s.cfg.Nodes.rt.disp.Run}
}

func (s *Server) sealer() (*webhook.Sealer, error) {
	if err := s.initWebhooks(); err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return s.cfg.Webhooks.rt.sealer, nil
}

// caSealID binds the sealed CA key to its certificate.
func caSealID(fp string) string { return "node-ca/" + fp }

// loadNodeCA returns the CA from the FSM, unsealed (nil, nil when there is none).
func (s *Server) loadNodeCA() (*session.CA, error) {
	var rec store.NodeCA
	err := s.Node.FSM.Read(func(r store.ReadTx) (err error) { rec, err = r.NodeCA(); return })
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load node ca: %w", err)
	}
	rt := s.cfg.Nodes.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.ca != nil && rt.ca.Fingerprint == rec.Fingerprint {
		return rt.ca, nil
	}
	sl, err := s.sealer()
	if err != nil {
		return nil, err
	}
	keyText, err := sl.Open(caSealID(rec.Fingerprint), rec.SealedKey)
	if err != nil {
		return nil, fmt.Errorf("unseal node ca key: %w", err)
	}
	ca, err := session.LoadCA(rec.CertDER, []byte(keyText))
	if err != nil {
		return nil, err
	}
	rt.ca = ca
	return ca, nil
}

// ensureNodeCA creates the CA on first use (leader only: it proposes).
func (s *Server) ensureNodeCA(ctx context.Context) (string, error) {
	ca, err := s.loadNodeCA()
	if err != nil || ca != nil {
		if ca != nil {
			return ca.Fingerprint, nil
		}
		return "", err
	}
	ca, keyDER, err := session.NewCA(s.nodesNow())
	if err != nil {
		return "", err
	}
	sl, err := s.sealer()
	if err != nil {
		return "", err
	}
	sealed, err := sl.Seal(caSealID(ca.Fingerprint), string(keyDER))
	if err != nil {
		return "", fmt.Errorf("seal node ca key: %w", err)
	}
	if _, err := s.propose(ctx, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: ca.DER, SealedKey: sealed, Fingerprint: ca.Fingerprint}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		return "", fmt.Errorf("create node ca: %w", err)
	}
	ca, err = s.loadNodeCA() // another request may have won
	if err != nil || ca == nil {
		return "", fmt.Errorf("create node ca: %w", errors.Join(err, errors.New("not found after create")))
	}
	return ca.Fingerprint, nil
}

// publicKeyHash identifies a node's key (base64url SHA-256 of its PKIX form).
func publicKeyHash(pub any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("node public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// nodeBackend implements session.Backend for a coordinator.
type nodeBackend struct{ s *Server }

const serverCertTTL = 30 * 24 * time.Hour

func (b nodeBackend) Certificate() (*tls.Certificate, error) {
	ca, err := b.s.loadNodeCA()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, errors.New("no node ca yet: create a join token first")
	}
	rt := b.s.cfg.Nodes.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	now := b.s.nodesNow()
	if rt.serverCert == nil || rt.certFP != ca.Fingerprint || now.After(rt.certUntil) {
		cert, err := ca.ServerCert(now, serverCertTTL)
		if err != nil {
			return nil, err
		}
		rt.serverCert, rt.certFP, rt.certUntil = cert, ca.Fingerprint, now.Add(serverCertTTL*2/3)
	}
	return rt.serverCert, nil
}

func (b nodeBackend) ClientCAs() (*x509.CertPool, error) {
	ca, err := b.s.loadNodeCA()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, errors.New("no node ca yet")
	}
	return ca.Pool(), nil
}

func (b nodeBackend) Leader() (bool, string, string) {
	s := b.s
	if s.Node.IsLeader() && s.API.LeaderReady() && s.cfg.Nodes.rt.leading.Load() {
		return true, s.cfg.NodeID, s.AgentSessionAddr()
	}
	id := s.Node.LeaderID()
	if id == "" || id == s.cfg.NodeID {
		return false, "", "" // no leader, or this one winding down or not ready yet
	}
	var addr string
	_ = s.Node.FSM.Read(func(r store.ReadTx) error { addr = r.SessionAddr(id); return nil })
	return false, id, addr
}

func (b nodeBackend) node(id string) (store.AgentNode, error) {
	var n store.AgentNode
	err := b.s.Node.FSM.Read(func(r store.ReadTx) (err error) { n, err = r.AgentNode(id); return })
	return n, err
}

func (b nodeBackend) AuthorizeNode(nodeID, serial string) error {
	n, err := b.node(nodeID)
	if err != nil {
		return fmt.Errorf("authorize node %s: %w", nodeID, err)
	}
	if n.State == api.AgentNodeRemoved {
		return fmt.Errorf("authorize node %s: the node was removed", nodeID)
	}
	if !fsm.CertAccepted(n, serial, b.s.nodesNow()) {
		return fmt.Errorf("authorize node %s: certificate %s is not current", nodeID, serial)
	}
	return nil
}

func enrolErr(code, msg string) *pb.EnrolResponse {
	return &pb.EnrolResponse{Error: &pb.Error{Code: code, Message: msg}}
}

func (b nodeBackend) Enrol(ctx context.Context, in session.EnrolInput) *pb.EnrolResponse {
	s := b.s
	if leader, _, addr := b.Leader(); !leader {
		r := enrolErr("not_leader", "this coordinator is not the leader")
		r.LeaderAddr = addr
		return r
	}
	ca, err := s.loadNodeCA()
	if err != nil || ca == nil {
		s.log.Error("enrol: node ca unavailable", "err", err)
		return enrolErr("unavailable", "node ca unavailable")
	}
	if in.Token.CAFingerprint != ca.Fingerprint {
		return enrolErr("refused", fsm.ErrTokenRefused.Error())
	}
	hash := pb.TokenSecretHash(in.Token.Secret)
	keyHash, err := publicKeyHash(in.CSR.PublicKey)
	if err != nil {
		return enrolErr("bad_request", err.Error())
	}
	now := s.nodesNow().UTC()
	// Check before signing; the command checks again at its own time. A retry
	// of an enrolment that went through (same token, node and key) gets the
	// certificate issued then.
	var again *store.AgentNode
	err = s.Node.FSM.Read(func(r store.ReadTx) error {
		if n, ok := fsm.EnrolledWith(r, in.Token.ID, hash, in.NodeID, keyHash); ok {
			again = &n
			return nil
		}
		_, err := fsm.CheckJoinToken(r, in.Token.ID, hash, in.NodeID, now)
		return err
	})
	if err != nil {
		return enrolErr("refused", err.Error())
	}
	if again != nil {
		s.log.Info("enrolment retried; returning the certificate issued before", "node", in.NodeID, "token_id", in.Token.ID)
		return &pb.EnrolResponse{NodeId: in.NodeID, CertDer: again.CertDER, CaDer: ca.DER}
	}
	cert, err := ca.SignNode(in.CSR, in.NodeID, now, s.cfg.Nodes.CertTTL)
	if err != nil {
		s.log.Error("enrol: sign", "node", in.NodeID, "err", err)
		return enrolErr("unavailable", "could not sign the certificate")
	}
	hostname := ""
	if in.Hello != nil {
		hostname = in.Hello.Hostname
	}
	env, err := fsm.NewEnvelope(fsm.CmdNodeEnrol, now, fsm.NodeEnrol{TokenID: in.Token.ID, TokenHash: hash, NodeID: in.NodeID,
		Hostname: hostname, CertSerial: cert.Serial, CertNotAfter: cert.NotAfter, CertDER: cert.DER, KeyHash: keyHash})
	if err == nil {
		_, err = s.API.Apply(ctx, env)
	}
	if err != nil {
		if errors.Is(err, fsm.ErrInvalid) || errors.Is(err, fsm.ErrConflict) {
			return enrolErr("refused", err.Error())
		}
		s.log.Error("enrol: record", "node", in.NodeID, "err", err)
		return enrolErr("unavailable", "could not record the enrolment; retry with the same token")
	}
	s.log.Info("node enrolled", "node", in.NodeID, "token_id", in.Token.ID, "cert_serial", cert.Serial)
	return &pb.EnrolResponse{NodeId: in.NodeID, CertDer: cert.DER, CaDer: ca.DER}
}

func (b nodeBackend) Hello(ctx context.Context, nodeID, serial string, h *pb.Hello) error {
	n, err := b.node(nodeID)
	if err != nil {
		return err
	}
	p := fsm.NodeHello{NodeID: nodeID, CertSerial: serial, Hostname: h.Hostname, Roles: h.Roles,
		Capacity:        api.AgentNodeCapacity{VCPUs: h.Capacity.GetVcpus(), MemoryBytes: h.Capacity.GetMemoryBytes(), DiskBytes: h.Capacity.GetDiskBytes()},
		SoftwareVersion: h.SoftwareVersion, ProtocolVersion: h.ProtocolVersion}
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if n.State == api.AgentNodeReady && n.Hostname == p.Hostname && slices.Equal(n.Roles, p.Roles) && n.Capacity == p.Capacity &&
		n.SoftwareVersion == p.SoftwareVersion && n.ProtocolVersion == p.ProtocolVersion {
		return nil // nothing new: no Raft write
	}
	_, err = b.s.propose(ctx, fsm.CmdNodeHello, p)
	return err
}

func (b nodeBackend) Renew(ctx context.Context, nodeID, serial string, csrDER []byte) ([]byte, string, error) {
	s := b.s
	csr, id, err := session.ParseNodeCSR(csrDER)
	if err != nil {
		return nil, "", err
	}
	if id != nodeID {
		return nil, "", fmt.Errorf("renew node %s: csr is for %q", nodeID, id)
	}
	if err := b.AuthorizeNode(nodeID, serial); err != nil {
		return nil, "", err
	}
	ca, err := s.loadNodeCA()
	if err != nil || ca == nil {
		return nil, "", fmt.Errorf("renew node %s: node ca unavailable", nodeID)
	}
	now := s.nodesNow().UTC()
	cert, err := ca.SignNode(csr, nodeID, now, s.cfg.Nodes.CertTTL)
	if err != nil {
		return nil, "", err
	}
	env, err := fsm.NewEnvelope(fsm.CmdNodeCertRenew, now, fsm.NodeCertRenew{NodeID: nodeID, OldSerial: serial, CertSerial: cert.Serial, CertNotAfter: cert.NotAfter})
	if err != nil {
		return nil, "", err
	}
	if _, err := s.API.Apply(ctx, env); err != nil {
		return nil, "", fmt.Errorf("renew node %s: %w", nodeID, err)
	}
	s.log.Info("node certificate renewed", "node", nodeID, "old_serial", serial, "cert_serial", cert.Serial)
	return cert.DER, cert.Serial, nil
}

// livenessLoop runs on the leader: it registers this leader's session address,
// then records ready → unreachable (no ping within the grace period) and
// unreachable → ready (pinging again) transitions, one command per transition.
// Pings themselves only touch memory.
func (s *Server) livenessLoop(ctx context.Context) {
	srv := s.AgentSessions()
	rt := s.cfg.Nodes.rt
	rt.leading.Store(true)
	defer srv.DropAll("coordinator lost leadership")
	defer rt.leading.Store(false)
	c := s.cfg.Nodes
	since := s.nodesNow() // nodes get a full grace period from the start of this leadership
	tick := time.NewTicker(max(c.PingInterval/2, 50*time.Millisecond))
	defer tick.Stop()
	registered := false
	for {
		if !registered {
			registered = s.registerSessionAddr(ctx) == nil
		}
		s.sweepLiveness(ctx, srv, since)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) registerSessionAddr(ctx context.Context) error {
	addr := s.AgentSessionAddr()
	var cur string
	_ = s.Node.FSM.Read(func(r store.ReadTx) error { cur = r.SessionAddr(s.cfg.NodeID); return nil })
	if cur == addr {
		return nil
	}
	_, err := s.propose(ctx, fsm.CmdNodeSessionAddr, fsm.NodeSessionAddr{CoordinatorID: s.cfg.NodeID, Addr: addr})
	if err != nil {
		s.log.Warn("register agent session address: will retry", "err", err)
	}
	return err
}

func (s *Server) sweepLiveness(ctx context.Context, srv *session.Server, since time.Time) {
	grace := s.cfg.Nodes.Grace
	now := s.nodesNow()
	live := srv.Sessions()
	var changes []fsm.NodeState
	_ = s.Node.FSM.Read(func(r store.ReadTx) error {
		return r.ForEachAgentNode(func(n store.AgentNode) {
			seen, connected := live[n.ID]
			switch {
			case n.State == api.AgentNodeReady:
				last := since
				if n.LastSeenAt != nil && n.LastSeenAt.After(last) {
					last = *n.LastSeenAt
				}
				if connected && seen.After(last) {
					last = seen
				} else if gone := srv.LastSeen(n.ID); !connected && gone.After(last) {
					last = gone // the session ended; its last ping still counts
				}
				if now.Sub(last) > grace {
					changes = append(changes, fsm.NodeState{NodeID: n.ID, State: api.AgentNodeUnreachable, LastSeenAt: last.UTC()})
				}
			case n.State == api.AgentNodeUnreachable && connected && now.Sub(seen) <= grace:
				// Pings resumed on a session that went quiet (a new session's
				// hello records ready itself).
				changes = append(changes, fsm.NodeState{NodeID: n.ID, State: api.AgentNodeReady, LastSeenAt: seen.UTC()})
			}
		})
	})
	if len(changes) == 0 {
		return
	}
	// One command per sweep, however many nodes changed (a switch failure can
	// take hundreds of nodes away at once).
	for len(changes) > 0 {
		batch := changes[:min(len(changes), 1000)]
		changes = changes[len(batch):]
		if _, err := s.propose(ctx, fsm.CmdNodeState, fsm.NodeStates{Changes: batch}); err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("record node states; will retry on the next sweep", "nodes", len(batch), "err", err)
			}
			return
		}
		for _, ch := range batch {
			s.log.Info("node state changed", "node", ch.NodeID, "state", ch.State, "last_seen", ch.LastSeenAt)
		}
	}
}
