// Package session is the agent's end of its session with the coordinators: it
// enrols once with a join token (server-authenticated TLS pinned to the CA
// fingerprint in the token), then dials any coordinator over QUIC with mutual
// TLS, follows a follower's pointer to the leader, pings, renews its certificate
// before it expires, and reconnects with jittered back-off.
package session

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/validate"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/quic-go/quic-go"
)

// serverName is the name in every coordinator's session certificate.
const serverName = "hostplane-coordinator"

// Config configures an agent session.
type Config struct {
	// Coordinators are the session addresses (host:port) to try, in order.
	Coordinators []string
	// JoinToken enrols the node when Dir holds no certificate yet.
	JoinToken string
	// NodeID names the node (the certificate's common name).
	NodeID string
	// Dir keeps the node key, certificate and CA (mode 0600).
	Dir string
	// Hello fills what the node reports (roles, capacity, versions); node id
	// and protocol version are set by the session.
	Hello func() *pb.Hello

	Backoff      Backoff
	DialTimeout  time.Duration // per coordinator (default 3 s)
	PingInterval time.Duration // until the coordinator says otherwise (default 5 s)
	Clock        clock.Clock   // the time source the session waits on (default: the wall clock)
	Log          *slog.Logger
	// OnEvent, if set, is called on every state change (tests, the simulator).
	OnEvent func(Event)

	// Handle, if set, serves every stream the coordinator opens on the
	// session (actions, stats), each in its own goroutine: req is the stream's
	// first frame and send writes a frame back. ctx ends when the coordinator
	// abandons the stream or the session ends; the stream is closed when
	// Handle returns. Without Handle such streams are refused.
	Handle func(ctx context.Context, req *pb.Envelope, send func(*pb.Envelope) error)
	// Inventory, if set, reports the node's VMs and templates. The session
	// sends it on a stream of its own once it comes up, then again whenever it
	// changed (checked every InventoryInterval and on InventoryChanged).
	Inventory         func(ctx context.Context) (*pb.Inventory, error)
	InventoryInterval time.Duration // default 5 s
	// OnConsoleKey, if set, is called with the console public key an
	// accepting coordinator sends in its HelloAck (the browser console's
	// tokens are signed with it).
	OnConsoleKey func(key []byte)
	// OnConsoleSealKey, if set, is called with the console sealing key a
	// coordinator of protocol 1.5 or later sends in its HelloAck (the claims
	// of hpc2 console tokens are sealed with it).
	OnConsoleSealKey func(key []byte)
	// ProtocolVersion is what the agent claims in Hello (0: pb.ProtocolVersion);
	// tests set an older minor version to check compatibility.
	ProtocolVersion uint32
}

// Event is a state change of the session.
type Event struct {
	Kind        string // enrolled, connected, disconnected, redirected, renewed, refused
	Coordinator string
	Err         error
}

// Errors a caller can tell apart.
var (
	// ErrRefused: the coordinators refuse this node (removed, or its certificate
	// is not current). Retrying will not help; re-enrol with a new token.
	ErrRefused = errors.New("the coordinators refuse this node")
	// ErrTokenRefused: the join token is unknown, used, expired or for another node.
	ErrTokenRefused = errors.New("join token refused")
)

// Agent holds one node's session.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	creds     *Creds
	connected string // coordinator address while a session is up
	hint      string // leader address from the last redirect
	next      int    // next index into Coordinators

	invKick chan struct{} // InventoryChanged → inventory loop (1 slot)
}

// New returns an agent session; Run drives it.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Coordinators) == 0 {
		return nil, errors.New("agent session: no coordinator addresses")
	}
	if cfg.Dir == "" {
		return nil, errors.New("agent session: no credentials directory")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 5 * time.Second
	}
	if cfg.Backoff.Min == 0 {
		cfg.Backoff = Backoff{Min: DefaultBackoff.Min, Max: DefaultBackoff.Max, Rand: cfg.Backoff.Rand}
	}
	if cfg.Hello == nil {
		cfg.Hello = func() *pb.Hello { return &pb.Hello{} }
	}
	if cfg.InventoryInterval <= 0 {
		cfg.InventoryInterval = 5 * time.Second
	}
	if cfg.ProtocolVersion == 0 {
		cfg.ProtocolVersion = pb.ProtocolVersion
	}
	a := &Agent{cfg: cfg, log: cfg.Log, invKick: make(chan struct{}, 1)}
	creds, err := LoadCreds(cfg.Dir)
	switch {
	case err == nil:
		if cfg.NodeID != "" && creds.NodeID != cfg.NodeID {
			return nil, fmt.Errorf("agent session: the certificate in %s is for node %q, not %q", cfg.Dir, creds.NodeID, cfg.NodeID)
		}
		a.creds = creds
	case errors.Is(err, ErrNoCreds):
		if cfg.JoinToken == "" {
			return nil, errors.New("agent session: not enrolled yet and no join token given (hostplanectl node token create)")
		}
		if validate.NodeID(cfg.NodeID) != nil {
			return nil, fmt.Errorf("agent session: node id %q: use 1-63 characters of a-z, 0-9, '.', '_' and '-'", cfg.NodeID)
		}
	default:
		return nil, err
	}
	return a, nil
}

func (a *Agent) emit(e Event) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(e)
	}
}

// Connected returns the coordinator address of the live session, or "".
func (a *Agent) Connected() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// Creds returns the current credentials (nil before enrolment).
func (a *Agent) Creds() *Creds {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.creds
}

// nextAddr is the redirect hint if any, else the next address of the list.
func (a *Agent) nextAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hint != "" {
		h := a.hint
		a.hint = ""
		return h
	}
	addr := a.cfg.Coordinators[a.next%len(a.cfg.Coordinators)]
	a.next++
	return addr
}

func (a *Agent) setHint(addr string) {
	a.mu.Lock()
	a.hint = addr
	a.mu.Unlock()
}

func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-a.cfg.Clock.After(d):
		return nil
	}
}

// Run enrols if needed, then holds a session until ctx ends. It returns only
// on ctx's end or a permanent refusal (ErrRefused, ErrTokenRefused).
func (a *Agent) Run(ctx context.Context) error {
	if a.Creds() == nil {
		if err := a.Enrol(ctx); err != nil {
			return err
		}
	}
	failures := 0
	// avoid is a coordinator that just closed the session because it stopped
	// leading or is shutting down: followers may still name it as leader until
	// the election ends, and following them back would cost a dial timeout.
	avoid := ""
	for {
		addr := a.nextAddr()
		if addr == avoid && len(a.cfg.Coordinators) > 1 && failures < len(a.cfg.Coordinators) {
			addr = a.nextAddr()
		}
		up, redirect, err := a.connect(ctx, addr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrRefused) {
			a.emit(Event{Kind: "refused", Coordinator: addr, Err: err})
			a.log.Error("coordinators refuse this node; stopping the session", "coordinator", addr, "err", err)
			return err
		}
		if up {
			failures, avoid = 0, ""
		}
		if code, ok := closeCode(err); ok && (code == pb.CloseNotLeader || code == pb.CloseShuttingDown) {
			avoid = addr
		}
		if failures > len(a.cfg.Coordinators) {
			avoid = "" // the election is long over; trust redirects again
		}
		if redirect != "" && redirect != addr && redirect != avoid {
			a.emit(Event{Kind: "redirected", Coordinator: redirect})
			a.log.Info("following the coordinator to the leader", "from", addr, "leader", redirect)
			a.setHint(redirect)
			if !up && failures > 2*len(a.cfg.Coordinators) {
				// Redirect loops (a stale pointer during an election) still back off.
				if err := a.sleep(ctx, a.cfg.Backoff.Delay(failures)); err != nil {
					return err
				}
			}
			failures++
			continue
		}
		// Every failed attempt backs off (jittered): under load, retrying the
		// other coordinators at once would only add handshakes.
		a.log.Debug("session attempt ended", "coordinator", addr, "err", err)
		if err := a.sleep(ctx, a.cfg.Backoff.Delay(failures)); err != nil {
			return err
		}
		failures++
	}
}

func (a *Agent) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: a.cfg.DialTimeout,
		MaxIdleTimeout:       max(3*a.cfg.PingInterval, 5*time.Second),
		KeepAlivePeriod:      a.cfg.PingInterval,
		// The coordinator opens a stream per action and stats request.
		MaxIncomingStreams:    maxIncomingStreams,
		MaxIncomingUniStreams: -1,
	}
}

// sessionTLS is mutual TLS: the node's certificate, and the coordinators' CA as
// the only root.
func (a *Agent) sessionTLS() *tls.Config {
	creds := a.Creds()
	pool := x509.NewCertPool()
	pool.AddCert(creds.CA)
	return &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{pb.ALPNSession},
		RootCAs: pool, ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := a.Creds().TLS()
			return &c, nil
		},
	}
}

func closeCode(err error) (uint64, bool) {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return uint64(ae.ErrorCode), true
	}
	return 0, false
}

// connect holds one session on addr. It returns whether the session came up,
// the leader address if addr sent the agent elsewhere, and why it ended.
func (a *Agent) connect(ctx context.Context, addr string) (up bool, redirect string, err error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	qc, err := quic.DialAddr(dctx, addr, a.sessionTLS(), a.quicConfig())
	cancel()
	if err != nil {
		return false, "", fmt.Errorf("dial coordinator %s: %w", addr, err)
	}
	defer qc.CloseWithError(quic.ApplicationErrorCode(pb.CloseOK), "")
	ctrl, ack, err := a.hello(ctx, qc, addr)
	if err != nil {
		return false, "", err
	}
	if !ack.Accepted {
		return false, ack.LeaderAddr, fmt.Errorf("coordinator %s: %s", addr, ack.Reason)
	}
	if len(ack.ConsoleKey) > 0 && a.cfg.OnConsoleKey != nil {
		a.cfg.OnConsoleKey(ack.ConsoleKey)
	}
	if len(ack.ConsoleSealKey) > 0 && a.cfg.OnConsoleSealKey != nil {
		a.cfg.OnConsoleSealKey(ack.ConsoleSealKey)
	}
	interval := a.cfg.PingInterval
	if ack.PingIntervalMs > 0 {
		interval = time.Duration(ack.PingIntervalMs) * time.Millisecond
	}
	a.mu.Lock()
	a.connected = addr
	a.mu.Unlock()
	a.emit(Event{Kind: "connected", Coordinator: addr})
	a.log.Info("session up", "coordinator", addr, "coordinator_id", ack.CoordinatorId, "ping_interval", interval)
	defer func() {
		a.mu.Lock()
		a.connected = ""
		a.mu.Unlock()
		a.emit(Event{Kind: "disconnected", Coordinator: addr, Err: err})
	}()
	// Streams of this session live until it ends (ctx or the connection).
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	stopOnClose := context.AfterFunc(qc.Context(), stopStreams)
	defer stopOnClose()
	// Several actions per stream when both ends speak 1.4 (pb.ProtocolVersion).
	batch := ack.ProtocolVersion >= pb.ProtocolActionBatch && a.cfg.ProtocolVersion >= pb.ProtocolActionBatch
	go a.serveStreams(sctx, qc, batch)
	if a.cfg.Inventory != nil {
		go a.inventoryLoop(sctx, qc)
	}
	redirect, err = a.keepAlive(ctx, qc, ctrl, addr, interval)
	return true, redirect, err
}

// refused marks an error the coordinator's CloseRefused caused as ErrRefused.
func refused(err error) error {
	if code, ok := closeCode(err); ok && code == pb.CloseRefused {
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return err
}

// hello opens the control stream, sends Hello and reads the coordinator's
// HelloAck (accepted, or refused with the leader's address).
func (a *Agent) hello(ctx context.Context, qc *quic.Conn, addr string) (*quic.Stream, *pb.HelloAck, error) {
	octx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	ctrl, err := qc.OpenStreamSync(octx)
	cancel()
	if err != nil {
		return nil, nil, refused(fmt.Errorf("open control stream to %s: %w", addr, err))
	}
	h := a.cfg.Hello()
	h.NodeId, h.ProtocolVersion = a.Creds().NodeID, a.cfg.ProtocolVersion
	if err := pb.WriteEnvelope(ctrl, &pb.Envelope{Seq: 1, Body: &pb.Envelope_Hello{Hello: h}}); err != nil {
		return nil, nil, refused(err)
	}
	_ = ctrl.SetReadDeadline(time.Now().Add(max(a.cfg.DialTimeout, 10*time.Second)))
	env, err := pb.ReadEnvelope(ctrl, 0)
	if err != nil {
		return nil, nil, refused(fmt.Errorf("read hello ack from %s: %w", addr, err))
	}
	ack := env.GetHelloAck()
	if ack == nil {
		return nil, nil, fmt.Errorf("coordinator %s answered hello with %T", addr, env.Body)
	}
	return ctrl, ack, nil
}

// keepAlive pings every interval on the control stream (renewing the
// certificate when due) until the session ends; a coordinator that stops being
// the leader answers with a refused HelloAck naming the new one (redirect).
func (a *Agent) keepAlive(ctx context.Context, qc *quic.Conn, ctrl *quic.Stream, addr string, interval time.Duration) (redirect string, err error) {
	var seq uint64 = 1
	for {
		if err := a.sleep(ctx, interval); err != nil {
			return "", err
		}
		if c := a.Creds(); a.cfg.Clock.Now().After(c.RenewAt()) {
			if err := a.renew(ctx, qc); err != nil {
				a.log.Warn("certificate renewal failed; will retry", "err", err, "expires", c.Cert.NotAfter)
			}
		}
		seq++
		if err := pb.WriteEnvelope(ctrl, &pb.Envelope{Seq: seq, Body: &pb.Envelope_Ping{Ping: &pb.Ping{SentUnixMs: a.cfg.Clock.Now().UnixMilli()}}}); err != nil {
			return "", refused(err)
		}
		_ = ctrl.SetReadDeadline(time.Now().Add(3 * interval))
		for {
			env, err := pb.ReadEnvelope(ctrl, 0)
			if err != nil {
				return "", refused(fmt.Errorf("session with %s: %w", addr, err))
			}
			if ack := env.GetHelloAck(); ack != nil && !ack.Accepted {
				return ack.LeaderAddr, fmt.Errorf("coordinator %s: %s", addr, ack.Reason)
			}
			if env.GetPong() != nil && env.ReplyTo == seq {
				break
			}
			// Anything else (messages of a newer coordinator) is ignored.
		}
	}
}

// renew asks for a new certificate over the live session and stores it.
func (a *Agent) renew(ctx context.Context, qc *quic.Conn) error {
	cur := a.Creds()
	key, csr, err := newKeyAndCSR(cur.NodeID)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := qc.OpenStreamSync(rctx)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	if err := pb.WriteEnvelope(st, &pb.Envelope{Seq: 1, Body: &pb.Envelope_RenewRequest{RenewRequest: &pb.RenewRequest{CsrDer: csr}}}); err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	env, err := pb.ReadEnvelope(st, 0)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	resp := env.GetRenewResponse()
	if resp == nil {
		return fmt.Errorf("renew certificate: unexpected answer %T", env.Body)
	}
	if resp.Error != nil {
		return fmt.Errorf("renew certificate: %s: %s", resp.Error.Code, resp.Error.Message)
	}
	cert, err := checkIssued(resp.CertDer, cur.CA, cur.NodeID, key)
	if err != nil {
		return fmt.Errorf("renew certificate: %w", err)
	}
	next := &Creds{NodeID: cur.NodeID, Cert: cert, Key: key, CA: cur.CA}
	if err := next.Save(a.cfg.Dir); err != nil {
		return err
	}
	a.mu.Lock()
	a.creds = next
	a.mu.Unlock()
	a.emit(Event{Kind: "renewed"})
	a.log.Info("certificate renewed", "expires", cert.NotAfter)
	return nil
}

// checkIssued verifies a certificate the coordinators issued: signed by ca, for
// nodeID, for key.
func checkIssued(der []byte, ca *x509.Certificate, nodeID string, key crypto.Signer) (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("issued certificate does not chain to the ca: %w", err)
	}
	if cert.Subject.CommonName != nodeID {
		return nil, fmt.Errorf("issued certificate names %q, not %q", cert.Subject.CommonName, nodeID)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("issued certificate is not for this node's key")
	}
	return cert, nil
}
