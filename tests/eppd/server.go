// Package eppd is a small EPP registry (RFC 5730–5734 over TLS) for tests
// and for providers' staging: domain and contact objects in bbolt, client
// transaction ids recorded so a repeated clTRID is applied once and answered
// with the original response, a configurable list of offered TLDs, auth
// codes and transfers between registrar accounts, WHOIS privacy through
// hostplane's extension (internal/eppxml), and failure injection driven at
// runtime through an admin HTTP endpoint on loopback (see Admin). The binary
// is tests/eppd/cmd/eppd; tests start it with framework.StartEPPD.
package eppd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// Config configures a registry.
type Config struct {
	// Addr is the EPP listen address (host:port; RFC 5734's port is 700).
	Addr string
	// AdminAddr is the admin HTTP listen address; it must be loopback.
	AdminAddr string
	// DataDir holds registry.db and, when CertFile is empty, the generated
	// self-signed cert.pem and key.pem (kept across restarts).
	DataDir string
	// CertFile and KeyFile are the server's TLS certificate and key (PEM).
	CertFile, KeyFile string
	// ClientCAFile, when set, requires clients to present a certificate
	// signed by one of these CAs (RFC 5734 mutual authentication).
	ClientCAFile string
	// TLDs are the offered TLDs without dots ("test", "co.test").
	TLDs []string
	// Clients maps registrar ids (clID) to passwords.
	Clients map[string]string
	// TransferPending is how long a transfer request waits for the losing
	// registrar before the registry approves it (0: transfers complete at
	// once).
	TransferPending time.Duration
	// IdleTimeout closes a session silent for this long (0: 10 minutes).
	IdleTimeout time.Duration
	// Logger receives one line per command (never passwords or auth codes).
	Logger *slog.Logger
	// Now is the registry's clock (time.Now when nil).
	Now func() time.Time
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("addr: required")
	}
	if c.DataDir == "" {
		return errors.New("data-dir: required")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert and key: give both or neither")
	}
	if c.AdminAddr != "" {
		host, _, err := net.SplitHostPort(c.AdminAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("admin: %q must be a loopback address (the admin endpoint has no authentication)", c.AdminAddr)
		}
	}
	if len(c.TLDs) == 0 {
		return errors.New("tld: at least one offered TLD is required")
	}
	for _, t := range c.TLDs {
		if t == "" || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || checkHostName(t) != "" {
			return fmt.Errorf("tld: %q is not a TLD (no leading dot)", t)
		}
	}
	if len(c.Clients) == 0 {
		return errors.New("client: at least one clID:password is required")
	}
	for id, pw := range c.Clients {
		if len(id) < 3 || len(id) > 16 || len(pw) < 6 || len(pw) > 16 {
			return fmt.Errorf("client %q: clID must be 3-16 characters and the password 6-16 (RFC 5730)", id)
		}
	}
	return nil
}

// Server is a running registry.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	db     *bolt.DB
	tlsCfg *tls.Config

	mu       sync.Mutex
	ln       net.Listener // nil while down
	sessions map[*session]struct{}
	faults   faults
	stats    Stats
	closing  bool

	wg sync.WaitGroup // accept loop and sessions
}

// Stats are counters the admin endpoint reports.
type Stats struct {
	Connections int  `json:"connections"` // accepted since start
	Sessions    int  `json:"sessions"`    // open now
	Commands    int  `json:"commands"`    // commands processed after login (not those an injected fault failed or dropped first)
	Applied     int  `json:"applied"`     // transform commands applied (repeats not counted)
	Replayed    int  `json:"replayed"`    // transform commands answered from the clTRID record
	Injected    int  `json:"injected"`    // commands failed, dropped or delayed by injection
	Down        bool `json:"down"`
}

// faults is the failure injection state, changed through the admin
// endpoint. Each kind applies to the next n commands, or to the next n
// commands of one verb ("domain:update") when verb is set.
type faults struct {
	fail       counted // answered failCode, not applied
	failCode   int
	dropBefore counted // connection closed, not applied
	dropAfter  counted // applied, connection closed before the answer
	delay      counted // answered delayBy late
	delayBy    time.Duration
}

type counted struct {
	n    int
	verb string
}

// take consumes one of c if it applies to verb.
func (c *counted) take(verb string) bool {
	if c.n > 0 && (c.verb == "" || c.verb == verb) {
		c.n--
		return true
	}
	return false
}

// Run starts the registry and serves until ctx ends, then shuts down: no
// new connections, each session closed once its command in flight is
// answered, the database closed. ready, if not nil, is called once listening.
func Run(ctx context.Context, cfg Config, ready func(*Server)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, sessions: map[*session]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.IdleTimeout <= 0 {
		s.cfg.IdleTimeout = 10 * time.Minute
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	tlsCfg, err := s.loadTLS()
	if err != nil {
		return err
	}
	s.tlsCfg = tlsCfg
	if s.db, err = openStore(filepath.Join(cfg.DataDir, "registry.db")); err != nil {
		return err
	}
	defer s.db.Close()

	// The admin endpoint is bound first but serves only once the EPP
	// listener is open: its /healthz answering means the registry serves
	// (the test framework's Start waits for it, then dials EPP).
	var admin *http.Server
	var aln net.Listener
	if cfg.AdminAddr != "" {
		if aln, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return fmt.Errorf("admin listen: %w", err)
		}
		admin = &http.Server{Handler: s.Admin(), ReadHeaderTimeout: 5 * time.Second}
	}
	if err := s.listen(); err != nil {
		if aln != nil {
			aln.Close()
		}
		return err
	}
	if admin != nil {
		go admin.Serve(aln)
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	if cfg.TransferPending > 0 {
		s.wg.Add(1)
		go s.approveDue(sweepCtx, min(cfg.TransferPending/4+time.Millisecond, time.Second))
	}
	s.log.Info("eppd listening", "addr", cfg.Addr, "admin", cfg.AdminAddr, "tlds", strings.Join(cfg.TLDs, ","))
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()

	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		admin.Shutdown(sctx)
		cancel()
	}
	stopSweep()
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.ln = nil
	for ss := range s.sessions {
		// A session waiting for a command stops now; one in the middle of a
		// command answers it first, then sees closing.
		ss.raw.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.wg.Wait()
	s.log.Info("eppd stopped")
	return nil
}

// Addr is the EPP listen address.
func (s *Server) Addr() string { return s.cfg.Addr }

func (s *Server) loadTLS() (*tls.Config, error) {
	certFile, keyFile := s.cfg.CertFile, s.cfg.KeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(s.cfg.DataDir, "cert.pem"), filepath.Join(s.cfg.DataDir, "key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := selfSigned(certFile, keyFile, s.cfg.Addr); err != nil {
				return nil, fmt.Errorf("generate certificate: %w", err)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.cfg.ClientCAFile != "" {
		pemBytes, err := os.ReadFile(s.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("client-ca: no certificate in %s", s.cfg.ClientCAFile)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// selfSigned writes a self-signed ECDSA certificate for addr's host (and
// localhost, 127.0.0.1), valid ten years; clients trust cert.pem itself.
func selfSigned(certFile, keyFile, addr string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "eppd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// listen opens the EPP listener and starts accepting.
func (s *Server) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closing {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.stats.Down = false
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// setDown closes the listener (new connections are refused) and every open
// session (true), or listens again (false).
func (s *Server) setDown(down bool) error {
	if !down {
		return s.listen()
	}
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.stats.Down = true
	for ss := range s.sessions {
		ss.kill()
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			c.Close()
			return
		}
		ss := &session{srv: s, raw: c}
		s.sessions[ss] = struct{}{}
		s.stats.Connections++
		s.stats.Sessions = len(s.sessions)
		s.wg.Add(1)
		s.mu.Unlock()
		go ss.serve()
	}
}

// session is one client connection.
type session struct {
	srv     *Server
	raw     net.Conn
	conn    *tls.Conn
	clID    string // set by login
	privacy bool   // the client logged in with the privacy extension
	fails   int    // failed logins
}

// kill closes the connection; a command in flight still completes in the
// database (its answer's write fails).
func (ss *session) kill() { ss.raw.Close() }

func (ss *session) serve() {
	s := ss.srv
	defer func() {
		ss.raw.Close()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.stats.Sessions = len(s.sessions)
		s.mu.Unlock()
		s.wg.Done()
	}()
	ss.conn = tls.Server(ss.raw, s.tlsCfg)
	ss.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := ss.conn.Handshake(); err != nil {
		s.log.Debug("tls handshake", "remote", ss.raw.RemoteAddr(), "err", err)
		return
	}
	if !ss.send(s.greeting()) {
		return
	}
	for {
		ss.conn.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if s.isClosing() {
			return
		}
		frame, err := eppxml.ReadFrame(ss.conn, eppxml.MaxFrame)
		if err != nil {
			if errors.Is(err, eppxml.ErrFrame) {
				s.log.Info("bad frame; closing", "remote", ss.raw.RemoteAddr(), "err", err)
			}
			return
		}
		ss.conn.SetDeadline(time.Now().Add(time.Minute))
		out, keep := ss.handle(frame)
		if out != nil && !ss.sendRaw(out) {
			return
		}
		if !keep {
			return
		}
	}
}

func (ss *session) send(e *eppxml.EPP) bool {
	b, err := eppxml.Marshal(e)
	if err != nil {
		ss.srv.log.Error("marshal", "err", err)
		return false
	}
	return ss.sendRaw(b)
}

func (ss *session) sendRaw(b []byte) bool {
	return eppxml.WriteFrame(ss.conn, b) == nil
}

func (s *Server) greeting() *eppxml.EPP {
	return &eppxml.EPP{Greeting: &eppxml.Greeting{
		SvID:   "hostplane eppd",
		SvDate: s.now().UTC().Format(time.RFC3339),
		SvcMenu: eppxml.SvcMenu{
			Version: []string{"1.0"}, Lang: []string{"en"},
			ObjURI:       []string{eppxml.NSDomain, eppxml.NSContact, eppxml.NSHost},
			SvcExtension: &eppxml.SvcExtension{ExtURI: []string{eppxml.NSPrivacy}},
		},
		DCP: eppxml.DCP{Inner: "<access><all/></access><statement><purpose><admin/><prov/></purpose>" +
			"<recipient><ours/></recipient><retention><stated/></retention></statement>"},
	}}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
