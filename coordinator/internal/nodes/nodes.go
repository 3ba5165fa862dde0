// Package nodes is a coordinator's side of its agent nodes: the CA that signs
// node certificates (its key sealed under the key-encryption key), enrolment
// with join tokens, certificate renewal, the authorisation of agent sessions,
// and the leader's liveness sweep. It reads the replicated state through the
// store's typed accessors and writes it through Raft commands.
package nodes

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/clock"
	pb "github.com/hostplane/hostplane/proto"
)

// Config holds the agent session settings of one coordinator.
type Config struct {
	ID string // this coordinator's id
	// ListenAddr is the UDP address agents dial (QUIC); empty: no agent sessions.
	ListenAddr string
	// Advertise is the address followers send agents to when this node leads
	// (default: the bound address).
	Advertise    string
	PingInterval time.Duration
	// Grace: a node with no ping for this long is recorded unreachable.
	Grace   time.Duration
	CertTTL time.Duration
	Clock   clock.Clock // default: the wall clock
	// Now is the cluster's clock (httpapi API.Now, hlc: never earlier than
	// the entries applied) an enrolment is judged and recorded at: a join
	// token's expiry was set on it (default: Clock.Now). Liveness, hellos
	// and certificates keep Clock (see propose).
	Now func() time.Time
	Log *slog.Logger
	// ConsoleKey returns the console public key told to agents (nil: none).
	ConsoleKey func() []byte
	// ConsoleSealKey returns the console sealing key told to agents of
	// protocol 1.5 or later (nil: none).
	ConsoleSealKey func() []byte
}

// Leadership is what the service asks of the Raft member (raftnode.Cluster).
type Leadership interface {
	IsLeader() bool
	LeaderID() string
}

// Deps is what the service needs from the rest of the coordinator.
type Deps struct {
	State   store.Reader
	Cluster Leadership
	// Ready reports whether this leader has applied every entry committed
	// before its term (it may serve).
	Ready func() bool
	// Apply proposes a command through Raft and returns its result.
	Apply func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)
	// Sealer opens and seals secrets under the key-encryption key.
	Sealer func() (*webhook.Sealer, error)
}

// Service is the agent-node backend of one coordinator.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	srv    *session.Server
	cancel context.CancelFunc
	done   chan struct{}

	// leading is set while this coordinator's leader jobs run: sessions are
	// accepted only then (not while a stepping-down or closing leader winds down).
	leading atomic.Bool

	mu         sync.Mutex
	ca         *session.CA // unsealed CA, keyed by fingerprint
	serverCert *tls.Certificate
	certFP     string
	certUntil  time.Time
}

// New builds the service; Listen opens the agent session listener.
func New(cfg Config, deps Deps) *Service {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Clock.Now
	}
	return &Service{cfg: cfg, deps: deps, log: log}
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now() }

// propose commits a command stamped with the wall clock: a hello's time is
// the node's last_seen_at, which the liveness sweep measures the grace
// period from on this leader's wall clock (on the cluster's clock, which
// hlc keeps ahead while this leader's is behind, a node that went away
// after its hello would be recorded unreachable only once the wall clock
// caught up).
// The node state changes keep the hellos' clock (their transitions' times
// follow one another), and the CA init's and session address's times are
// compared with nothing. A renewal's time is checked against the old
// certificate's not-after, signed on the wall clock, as Renew's is.
func (s *Service) propose(ctx context.Context, t fsm.CommandType, payload any) (*fsm.Result, error) {
	env, err := fsm.NewEnvelope(t, time.Now(), payload)
	if err != nil {
		return nil, err
	}
	return s.deps.Apply(ctx, env)
}

// Listen opens the agent session listener when ListenAddr is set; the hooks
// (either may be nil) see sessions accepted and inventory frames.
func (s *Service) Listen(onConnect func(nodeID string), onInventory func(nodeID string, inv *pb.Inventory)) error {
	if s.cfg.ListenAddr == "" {
		return nil
	}
	if s.srv != nil {
		return errors.New("agent sessions: already listening")
	}
	srv, err := session.Listen(session.Config{
		ID: s.cfg.ID, ListenAddr: s.cfg.ListenAddr, PingInterval: s.cfg.PingInterval, IdleTimeout: s.cfg.Grace, Backend: backend{s},
		Log: s.log.With("component", "agent-sessions"), Clock: s.cfg.Clock,
		OnInventory:    onInventory,
		OnConnect:      onConnect,
		ConsoleKey:     s.cfg.ConsoleKey,
		ConsoleSealKey: s.cfg.ConsoleSealKey,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.srv, s.cancel, s.done = srv, cancel, make(chan struct{})
	go func() { defer close(s.done); srv.Serve(ctx) }()
	s.log.Info("agent sessions listening", "addr", srv.Addr())
	return nil
}

// Close stops the listener and every session.
func (s *Service) Close() {
	if s.srv == nil {
		return
	}
	s.cancel()
	s.srv.Close()
	<-s.done
}

// Sessions is the session listener (nil when ListenAddr is empty).
func (s *Service) Sessions() *session.Server { return s.srv }

// SessionAddr is the address agents dial, or "".
func (s *Service) SessionAddr() string {
	if s.srv == nil {
		return ""
	}
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	return s.srv.Addr()
}

// Live reports when a node last pinged this coordinator, if its session is
// alive: a session silent for the grace period is dead (the QUIC connection
// lingers until its idle timeout).
func (s *Service) Live(id string) (time.Time, bool) {
	if s.srv == nil {
		return time.Time{}, false
	}
	seen, ok := s.srv.Live(id)
	return seen, ok && s.now().Sub(seen) <= s.cfg.Grace
}

// Disconnect ends a node's session (the node was removed).
func (s *Service) Disconnect(id string) {
	if s.srv != nil {
		s.srv.Disconnect(id, "node removed")
	}
}
