// Package session is the coordinator's end of the agent sessions: a QUIC
// listener with mutual TLS, length-prefixed protobuf envelopes on its streams,
// the enrolment exchange (server-only TLS, a join token), and the in-memory
// liveness of every connected node. What is recorded through Raft is decided by
// the Backend (the coordinator), never per ping.
package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/quic-go/quic-go"
)

// Application error codes on closed QUIC connections (see the proto package).
const (
	CodeOK           = quic.ApplicationErrorCode(pb.CloseOK)
	CodeRefused      = quic.ApplicationErrorCode(pb.CloseRefused)
	CodeNotLeader    = quic.ApplicationErrorCode(pb.CloseNotLeader)
	CodeProtocol     = quic.ApplicationErrorCode(pb.CloseProtocol)
	CodeReplaced     = quic.ApplicationErrorCode(pb.CloseReplaced)
	CodeShuttingDown = quic.ApplicationErrorCode(pb.CloseShuttingDown)
	CodeRetry        = quic.ApplicationErrorCode(pb.CloseRetry)
)

// Backend is what the coordinator provides to the session layer.
type Backend interface {
	// Certificate returns the current serving certificate, or an error while
	// there is no CA yet.
	Certificate() (*tls.Certificate, error)
	// ClientCAs is the pool node certificates must chain to.
	ClientCAs() (*x509.CertPool, error)
	// Leader says whether this coordinator is the ready leader, and if not, who is.
	Leader() (isLeader bool, leaderID, leaderAddr string)
	// AuthorizeNode checks the FSM: the node exists, is not removed, and serial
	// is one of its accepted certificates.
	AuthorizeNode(nodeID, serial string) error
	// Enrol handles an enrolment request (on the leader).
	Enrol(ctx context.Context, in EnrolInput) *pb.EnrolResponse
	// Hello records a node's Hello when it changes anything (a Raft write only
	// on a state change or new data).
	Hello(ctx context.Context, nodeID, serial string, h *pb.Hello) error
	// Renew signs a new certificate for a connected node and records it,
	// returning the certificate and its serial.
	Renew(ctx context.Context, nodeID, serial string, csrDER []byte) ([]byte, string, error)
}

// Config configures the listener.
type Config struct {
	ID           string // this coordinator's id, told to agents in HelloAck
	ListenAddr   string
	PingInterval time.Duration // told to agents in HelloAck
	IdleTimeout  time.Duration // QUIC idle timeout (default 3 × PingInterval, at least 5 s)
	Backend      Backend
	Log          *slog.Logger
	Clock        clock.Clock // liveness stamps (default: the wall clock)

	// OnConnect, if set, is called once a node's session is accepted and
	// registered (Call reaches it from then on).
	OnConnect func(nodeID string)
	// OnDisconnect, if set, is called when a node's current session ends (not
	// when an older session is replaced by a newer one).
	OnDisconnect func(nodeID string)
	// OnInventory, if set, is called for every Inventory frame an agent sends
	// on its inventory stream, in order, from one goroutine per session.
	OnInventory func(nodeID string, inv *pb.Inventory)
	// ConsoleKey, if set, returns the cluster's console public key, told to
	// every agent in its HelloAck (nil: none is told).
	ConsoleKey func() []byte
	// ConsoleSealKey, if set, returns the cluster's console sealing key,
	// told in its HelloAck to an agent that announced protocol 1.5
	// (pb.ProtocolConsoleSealed) or later, and to no other (nil: none).
	ConsoleSealKey func() []byte
	// ProtocolVersion is what the coordinator claims in HelloAck (0:
	// pb.ProtocolVersion); tests set an older minor version to check
	// compatibility.
	ProtocolVersion uint32
}

// Server accepts agent sessions.
type Server struct {
	cfg Config
	ln  *quic.Listener
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*conn // nodeID → current session
	// departed keeps the last ping of nodes whose session ended, so the
	// liveness sweep records when a vanished node was last heard from.
	departed map[string]time.Time
	conns    map[*quic.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup

	pings atomic.Uint64
	// tlsFailLogged is when logTLSFailure last logged (unix nanoseconds).
	tlsFailLogged atomic.Int64
}

type conn struct {
	nodeID   string
	qc       *quic.Conn
	protocol uint32       // the protocol version the agent said in Hello
	console  string       // the agent's console base URL from Hello ("": none)
	lastSeen atomic.Int64 // unix nanoseconds
}

// Listen binds the UDP address. Serve starts accepting.
func Listen(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("agent session listener: no backend")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = max(3*cfg.PingInterval, 5*time.Second)
	}
	if cfg.ProtocolVersion == 0 {
		cfg.ProtocolVersion = pb.ProtocolVersion
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Log, sessions: map[string]*conn{}, departed: map[string]time.Time{}, conns: map[*quic.Conn]struct{}{}}
	ln, err := quic.ListenAddr(cfg.ListenAddr, s.tlsConfig(), &quic.Config{
		MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: 5 * time.Second,
		// Agents open the control stream, one inventory stream and short
		// renewal streams; the coordinator opens the action and stats streams.
		MaxIncomingStreams: 32, MaxIncomingUniStreams: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("agent session listen %s: %w", cfg.ListenAddr, err)
	}
	s.ln = ln
	return s, nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{pb.ALPNSession, pb.ALPNEnrol},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			cert, err := s.cfg.Backend.Certificate()
			if err != nil {
				s.logTLSFailure(err)
				return nil, err
			}
			c := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert}}
			for _, p := range hi.SupportedProtos {
				switch p {
				case pb.ALPNSession:
					pool, err := s.cfg.Backend.ClientCAs()
					if err != nil {
						s.logTLSFailure(err)
						return nil, err
					}
					c.NextProtos, c.ClientAuth, c.ClientCAs = []string{pb.ALPNSession}, tls.RequireAndVerifyClientCert, pool
					return c, nil
				case pb.ALPNEnrol:
					c.NextProtos, c.ClientAuth = []string{pb.ALPNEnrol}, tls.NoClientCert
					return c, nil
				}
			}
			return nil, errors.New("agent session: no supported application protocol")
		},
	}
}

// logTLSFailure logs, at most every 30 s, that this coordinator cannot serve
// agents' handshakes: the agent only sees "tls: internal error", and the usual
// cause (a node CA sealed under another coordinator's key) is a configuration
// error the operator must see here.
func (s *Server) logTLSFailure(err error) {
	now := time.Now().UnixNano()
	last := s.tlsFailLogged.Load()
	if last != 0 && now-last < int64(30*time.Second) || !s.tlsFailLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Error("agent handshakes refused: this coordinator cannot load the node CA", "err", err)
}

// Serve accepts connections until ctx ends or Close.
func (s *Server) Serve(ctx context.Context) {
	for {
		qc, err := s.ln.Accept(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = qc.CloseWithError(CodeShuttingDown, "shutting down")
			return
		}
		s.conns[qc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, qc)
				s.mu.Unlock()
			}()
			s.handle(ctx, qc)
		}()
	}
}

// Close stops listening and closes every connection.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*quic.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWithError(CodeShuttingDown, "coordinator shutting down")
	}
	_ = s.ln.Close()
	s.wg.Wait()
}

func (s *Server) handle(ctx context.Context, qc *quic.Conn) {
	st := qc.ConnectionState().TLS
	switch st.NegotiatedProtocol {
	case pb.ALPNEnrol:
		s.handleEnrol(ctx, qc)
	case pb.ALPNSession:
		if len(st.PeerCertificates) == 0 {
			_ = qc.CloseWithError(CodeRefused, "no client certificate")
			return
		}
		s.handleSession(ctx, qc, st.PeerCertificates[0])
	default:
		_ = qc.CloseWithError(CodeProtocol, "unknown application protocol")
	}
}

const exchangeTimeout = 10 * time.Second

// handleEnrol answers one EnrolRequest, then waits for the agent to close.
func (s *Server) handleEnrol(ctx context.Context, qc *quic.Conn) {
	sctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	st, err := qc.AcceptStream(sctx)
	if err != nil {
		_ = qc.CloseWithError(CodeProtocol, "no enrol stream")
		return
	}
	_ = st.SetDeadline(time.Now().Add(exchangeTimeout))
	env, err := pb.ReadEnvelope(st, 64<<10)
	var resp *pb.EnrolResponse
	if err != nil {
		resp = &pb.EnrolResponse{Error: &pb.Error{Code: "bad_request", Message: "unreadable enrol request"}}
	} else if in, perr := ParseEnrolRequest(env); perr != nil {
		resp = &pb.EnrolResponse{Error: &pb.Error{Code: "bad_request", Message: perr.Error()}}
	} else {
		resp = s.cfg.Backend.Enrol(sctx, in)
	}
	if resp.Error != nil {
		s.log.Warn("enrolment refused", "remote", qc.RemoteAddr().String(), "code", resp.Error.Code, "reason", resp.Error.Message)
	}
	_ = pb.WriteEnvelope(st, &pb.Envelope{ReplyTo: env.GetSeq(), Body: &pb.Envelope_EnrolResponse{EnrolResponse: resp}})
	_ = st.Close()
	// The agent closes the connection once it has read the answer.
	select {
	case <-qc.Context().Done():
	case <-sctx.Done():
		_ = qc.CloseWithError(CodeOK, "")
	}
}

func (s *Server) refuse(qc *quic.Conn, code quic.ApplicationErrorCode, msg string) {
	_ = qc.CloseWithError(code, msg)
}

func (s *Server) handleSession(ctx context.Context, qc *quic.Conn, cert *x509.Certificate) {
	nodeID, serial := cert.Subject.CommonName, SerialString(cert)
	log := s.log.With("node", nodeID, "remote", qc.RemoteAddr().String())
	hctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	ctrl, err := qc.AcceptStream(hctx)
	cancel()
	if err != nil {
		s.refuse(qc, CodeProtocol, "no control stream")
		return
	}
	_ = ctrl.SetReadDeadline(time.Now().Add(exchangeTimeout))
	env, err := pb.ReadEnvelope(ctrl, 0)
	if err != nil || env.GetHello() == nil {
		s.refuse(qc, CodeProtocol, "expected hello")
		return
	}
	h := env.GetHello()
	ack := &pb.HelloAck{CoordinatorId: s.cfg.ID, ProtocolVersion: s.cfg.ProtocolVersion, PingIntervalMs: uint32(s.cfg.PingInterval / time.Millisecond)}
	reply := func() error {
		return pb.WriteEnvelope(ctrl, &pb.Envelope{ReplyTo: env.Seq, Body: &pb.Envelope_HelloAck{HelloAck: ack}})
	}
	switch {
	case h.NodeId != nodeID:
		ack.Reason = fmt.Sprintf("hello names node %q but the certificate is for %q", h.NodeId, nodeID)
	case pb.ProtocolMajor(h.ProtocolVersion) != pb.ProtocolMajor(pb.ProtocolVersion):
		ack.Reason = fmt.Sprintf("protocol %d is not compatible with this coordinator's %d", h.ProtocolVersion, pb.ProtocolVersion)
	}
	if ack.Reason != "" {
		_ = reply()
		s.refuse(qc, CodeProtocol, ack.Reason)
		return
	}
	if leader, id, addr := s.cfg.Backend.Leader(); !leader {
		ack.LeaderId, ack.LeaderAddr, ack.Reason = id, addr, "not the leader"
		_ = reply()
		s.awaitClose(qc)
		return
	}
	// Only the leader judges the node: a follower's FSM may lag a renewal or
	// a removal, and it only points the agent to the leader anyway.
	if err := s.cfg.Backend.AuthorizeNode(nodeID, serial); err != nil {
		log.Warn("agent session refused", "err", err)
		s.refuse(qc, CodeRefused, err.Error())
		return
	}
	hctx, cancel = context.WithTimeout(ctx, exchangeTimeout)
	err = s.cfg.Backend.Hello(hctx, nodeID, serial, h)
	cancel()
	if err != nil {
		ack.Reason = "hello not recorded: " + err.Error()
		_ = reply()
		s.refuse(qc, CodeRetry, "hello not recorded")
		log.Warn("hello not recorded", "err", err)
		return
	}
	ack.Accepted = true
	if s.cfg.ConsoleKey != nil {
		ack.ConsoleKey = s.cfg.ConsoleKey()
	}
	if s.cfg.ConsoleSealKey != nil && h.ProtocolVersion >= pb.ProtocolConsoleSealed && s.cfg.ProtocolVersion >= pb.ProtocolConsoleSealed {
		ack.ConsoleSealKey = s.cfg.ConsoleSealKey()
	}
	if err := reply(); err != nil {
		s.refuse(qc, CodeProtocol, "write hello ack")
		return
	}
	c := &conn{nodeID: nodeID, qc: qc, protocol: h.ProtocolVersion, console: h.ConsoleUrl}
	c.lastSeen.Store(s.cfg.Clock.Now().UnixNano())
	s.mu.Lock()
	old := s.sessions[nodeID]
	s.sessions[nodeID] = c
	s.mu.Unlock()
	if old != nil {
		_ = old.qc.CloseWithError(CodeReplaced, "replaced by a newer session")
	}
	log.Info("agent session up", "software_version", h.SoftwareVersion, "protocol", h.ProtocolVersion)
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect(nodeID)
	}
	defer func() {
		s.mu.Lock()
		current := s.sessions[nodeID] == c
		if current {
			delete(s.sessions, nodeID)
			s.departed[nodeID] = time.Unix(0, c.lastSeen.Load())
		}
		s.mu.Unlock()
		log.Info("agent session down")
		if current && s.cfg.OnDisconnect != nil {
			s.cfg.OnDisconnect(nodeID)
		}
	}()
	sctx, stop := context.WithCancel(qc.Context())
	var streams sync.WaitGroup
	streams.Add(1)
	go func() {
		defer streams.Done()
		s.acceptStreams(sctx, qc, nodeID, serial, &streams)
	}()
	s.controlLoop(qc, ctrl, c)
	// The session is over once its control stream is: stop serving its
	// streams so no OnInventory call outlives OnDisconnect.
	stop()
	streams.Wait()
}

// awaitClose gives the agent time to read a redirect and close first.
func (s *Server) awaitClose(qc *quic.Conn) {
	select {
	case <-qc.Context().Done():
	case <-time.After(exchangeTimeout):
		_ = qc.CloseWithError(CodeNotLeader, "not the leader")
	}
}

func (s *Server) controlLoop(qc *quic.Conn, ctrl *quic.Stream, c *conn) {
	var seq uint64
	for {
		_ = ctrl.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		env, err := pb.ReadEnvelope(ctrl, 0)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = qc.CloseWithError(CodeProtocol, "control stream failed")
			}
			return
		}
		c.lastSeen.Store(s.cfg.Clock.Now().UnixNano())
		seq++
		switch b := env.Body.(type) {
		case *pb.Envelope_Ping:
			s.pings.Add(1)
			if leader, id, addr := s.cfg.Backend.Leader(); !leader {
				_ = pb.WriteEnvelope(ctrl, &pb.Envelope{Seq: seq, ReplyTo: env.Seq, Body: &pb.Envelope_HelloAck{HelloAck: &pb.HelloAck{
					LeaderId: id, LeaderAddr: addr, Reason: "not the leader", ProtocolVersion: s.cfg.ProtocolVersion}}})
				s.awaitClose(qc)
				return
			}
			if err := pb.WriteEnvelope(ctrl, &pb.Envelope{Seq: seq, ReplyTo: env.Seq, Body: &pb.Envelope_Pong{Pong: &pb.Pong{SentUnixMs: b.Ping.SentUnixMs}}}); err != nil {
				return
			}
		default:
			// Inventory, action results and message types of newer agents: not
			// handled by this version (actions come in a later slice).
		}
	}
}

// acceptStreams serves the streams a session's agent opens: request streams
// (certificate renewal) one at a time, and long-lived inventory streams, each
// in its own goroutine counted in wg.
func (s *Server) acceptStreams(ctx context.Context, qc *quic.Conn, nodeID, serial string, wg *sync.WaitGroup) {
	for {
		st, err := qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		// Requests are served one at a time: a renewal changes the serial the
		// next one is checked against (the agent holds the new certificate).
		func() {
			handedOff := false
			defer func() {
				if !handedOff {
					st.Close()
				}
			}()
			_ = st.SetDeadline(time.Now().Add(exchangeTimeout))
			env, err := pb.ReadEnvelope(st, 0)
			if err != nil {
				st.CancelRead(0)
				return
			}
			switch b := env.Body.(type) {
			case *pb.Envelope_Inventory:
				handedOff = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.serveInventory(ctx, st, nodeID, b.Inventory)
				}()
			case *pb.Envelope_RenewRequest:
				rctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
				defer cancel()
				resp := &pb.RenewResponse{}
				if leader, _, addr := s.cfg.Backend.Leader(); !leader {
					resp.Error, resp.LeaderAddr = &pb.Error{Code: "not_leader", Message: "not the leader"}, addr
				} else if der, next, err := s.cfg.Backend.Renew(rctx, nodeID, serial, b.RenewRequest.CsrDer); err != nil {
					resp.Error = &pb.Error{Code: "refused", Message: err.Error()}
				} else {
					resp.CertDer, serial = der, next
				}
				_ = pb.WriteEnvelope(st, &pb.Envelope{ReplyTo: env.Seq, Body: &pb.Envelope_RenewResponse{RenewResponse: resp}})
			default:
				_ = pb.WriteEnvelope(st, &pb.Envelope{ReplyTo: env.Seq, Body: &pb.Envelope_Error{Error: &pb.Error{Code: "unsupported", Message: "unsupported request"}}})
			}
		}()
	}
}

// Live is a connected node's liveness as this coordinator sees it.
type Live struct {
	LastSeen time.Time
}

// Live returns the node's last ping time and whether it holds a session here.
func (s *Server) Live(nodeID string) (time.Time, bool) {
	s.mu.Lock()
	c := s.sessions[nodeID]
	s.mu.Unlock()
	if c == nil {
		return time.Time{}, false
	}
	return time.Unix(0, c.lastSeen.Load()), true
}

// Sessions returns the last ping time of every connected node.
func (s *Server) Sessions() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.sessions))
	for id, c := range s.sessions {
		out[id] = time.Unix(0, c.lastSeen.Load())
	}
	return out
}

// LastSeen is the last ping of a node that held a session here, connected or
// not (zero when it never did).
func (s *Server) LastSeen(nodeID string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.sessions[nodeID]; c != nil {
		return time.Unix(0, c.lastSeen.Load())
	}
	return s.departed[nodeID]
}

// Pings is the number of pings answered (for benchmarks).
func (s *Server) Pings() uint64 { return s.pings.Load() }

// Disconnect closes a node's session (after it was removed).
func (s *Server) Disconnect(nodeID, reason string) {
	s.mu.Lock()
	c := s.sessions[nodeID]
	s.mu.Unlock()
	if c != nil {
		_ = c.qc.CloseWithError(CodeRefused, reason)
	}
}

// DropAll closes every session, telling agents to find the leader (on losing leadership).
func (s *Server) DropAll(reason string) {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.sessions))
	for _, c := range s.sessions {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.qc.CloseWithError(CodeNotLeader, reason)
	}
}
