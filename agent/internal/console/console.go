// Package console is the hypervisor agent's browser console: an HTTPS listener
// that serves the noVNC client and, at /websockify, bridges a WebSocket to a
// guest's VNC display (which listens only on the host's loopback) once a
// single-use console token signed by the coordinators has been checked.
package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hostplane/hostplane/internal/consoletoken"
)

// Path is where the WebSocket is served (noVNC's default path).
const Path = "/websockify"

// DefaultNoVNCDir is where Debian's novnc package puts the client.
const DefaultNoVNCDir = "/usr/share/novnc"

// Displays finds a running domain's VNC display.
type Displays interface {
	// VNCAddress returns host:port of the domain's VNC server.
	VNCAddress(ctx context.Context, domain string) (string, error)
}

// Config configures the console listener.
type Config struct {
	// Listen is the TCP address to serve on ("" turns the console off).
	Listen string
	// URL is the base URL browsers reach the listener at (default
	// https://<the bound address>, with the host name for a wildcard address).
	URL string
	// CertFile and KeyFile are the listener's certificate (default: the
	// node's certificate from the coordinators' CA).
	CertFile, KeyFile string
	// NoVNCDir holds the noVNC client (vnc.html, app/, core/, vendor/).
	NoVNCDir string
	Displays Displays
	Log      *slog.Logger
	// MaxPerServer bounds the consoles open at once on one domain (default
	// DefaultMaxPerServer): each holds a connection to the guest's display
	// and two copying goroutines on the node, and a console URL costs a
	// customer one API request, so without a bound one customer could hold
	// the node's descriptors.
	MaxPerServer int
}

// DefaultMaxPerServer is Config.MaxPerServer's default.
const DefaultMaxPerServer = 4

// Server is the console listener.
type Server struct {
	cfg Config
	log *slog.Logger

	ln  net.Listener
	url string
	v   *consoletoken.Verifier
	hs  *http.Server

	mu    sync.Mutex
	open  map[string]map[*websocket.Conn]struct{} // domain → open consoles
	slots map[string]int                          // domain → consoles opening or open
}

// New returns a console server for cfg; Start binds it.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.NoVNCDir == "" {
		cfg.NoVNCDir = DefaultNoVNCDir
	}
	return &Server{cfg: cfg, log: cfg.Log, open: map[string]map[*websocket.Conn]struct{}{}}
}

// Start binds the listener and serves until ctx ends. nodeCert gives the
// node's current certificate (used unless CertFile is set); v checks tokens.
func (s *Server) Start(ctx context.Context, nodeCert func() (*tls.Certificate, error), v *consoletoken.Verifier) error {
	if s == nil || s.cfg.Listen == "" {
		return nil
	}
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nodeCert() }
	if s.cfg.CertFile != "" || s.cfg.KeyFile != "" {
		c, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("console certificate: %w", err)
		}
		getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &c, nil }
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("console listen %s: %w", s.cfg.Listen, err)
	}
	s.ln, s.v = ln, v
	s.url = s.cfg.URL
	if s.url == "" {
		s.url = defaultURL(ln.Addr().(*net.TCPAddr))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, s.serveWS)
	mux.Handle("GET /", s.static())
	s.hs = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := s.hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("console listener stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { s.Close() })
	s.log.Info("console listening", "addr", ln.Addr().String(), "url", s.url, "novnc", s.cfg.NoVNCDir)
	return nil
}

// defaultURL is https://addr, with this host's name for a wildcard address.
func defaultURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// URL is the base URL announced to the coordinators ("" when not serving).
func (s *Server) URL() string {
	if s == nil {
		return ""
	}
	return s.url
}

// Close stops the listener and ends every open console.
func (s *Server) Close() {
	if s.hs != nil {
		_ = s.hs.Close()
	}
	s.mu.Lock()
	var all []*websocket.Conn
	for _, m := range s.open {
		for c := range m {
			all = append(all, c)
		}
	}
	s.mu.Unlock()
	for _, c := range all {
		go func() { _ = c.Close(websocket.StatusGoingAway, "agent stopping") }()
	}
}

// CloseDomain ends every open console of a domain (it is being terminated).
func (s *Server) CloseDomain(domain string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	var cs []*websocket.Conn
	for c := range s.open[domain] {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	// Close waits for the browser's answer (up to 5 s): not on the
	// terminate's path.
	for _, c := range cs {
		go func() { _ = c.Close(websocket.StatusGoingAway, "server terminated") }()
	}
	if len(cs) > 0 {
		s.log.Info("consoles closed: domain terminated", "domain", domain, "consoles", len(cs))
	}
}

func (s *Server) maxPerServer() int {
	if s.cfg.MaxPerServer > 0 {
		return s.cfg.MaxPerServer
	}
	return DefaultMaxPerServer
}

// reserve takes one of domain's console slots, false when all are taken;
// release gives it back.
func (s *Server) reserve(domain string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots[domain] >= s.maxPerServer() {
		return false
	}
	if s.slots == nil {
		s.slots = map[string]int{}
	}
	s.slots[domain]++
	return true
}

func (s *Server) release(domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots[domain]--; s.slots[domain] <= 0 {
		delete(s.slots, domain)
	}
}

func (s *Server) track(domain string, c *websocket.Conn, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		if s.open[domain] == nil {
			s.open[domain] = map[*websocket.Conn]struct{}{}
		}
		s.open[domain][c] = struct{}{}
		return
	}
	delete(s.open[domain], c)
	if len(s.open[domain]) == 0 {
		delete(s.open, domain)
	}
}

// static serves the noVNC client; without it every page is a 404 naming the
// missing package.
func (s *Server) static() http.Handler {
	fs := http.FileServer(http.Dir(s.cfg.NoVNCDir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(s.cfg.NoVNCDir, "vnc.html")); err != nil {
			http.Error(w, "the noVNC client is not installed on this host (Debian package novnc, or set novnc-dir)", http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fs.ServeHTTP(w, r)
	})
}

// serveWS checks the token before the upgrade, so a refused console is a
// plain HTTP 403 and never touches the display.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c, err := s.v.Verify(r.URL.Query().Get("token"))
	if err != nil {
		s.log.Info("console refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	log := s.log.With("domain", c.VM, "server", c.Server, "token_id", c.ID, "remote", r.RemoteAddr)
	if !s.reserve(c.VM) {
		log.Info("console refused: too many open", "max", s.maxPerServer())
		http.Error(w, fmt.Sprintf("%d consoles are already open on this server, the most it may have; close one and open a new console URL", s.maxPerServer()), http.StatusTooManyRequests)
		return
	}
	defer s.release(c.VM)
	dctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	addr, err := s.cfg.Displays.VNCAddress(dctx, c.VM)
	var vnc net.Conn
	if err == nil {
		vnc, err = (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	}
	cancel()
	if err != nil {
		log.Warn("console: no display", "err", err)
		http.Error(w, "the server's display is not available (is it running?)", http.StatusConflict)
		return
	}
	defer vnc.Close()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		log.Info("console: websocket upgrade failed", "err", err)
		return
	}
	s.track(c.VM, ws, true)
	defer s.track(c.VM, ws, false)
	log.Info("console opened")
	start := time.Now()
	s.bridge(r.Context(), ws, vnc)
	log.Info("console closed", "duration", time.Since(start).Round(time.Millisecond))
}

// bridge copies RFB bytes both ways until either side ends; binary messages
// from the browser go to the display and the display's bytes go back as
// binary messages.
func (s *Server) bridge(ctx context.Context, ws *websocket.Conn, vnc net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws.SetReadLimit(1 << 20)
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(vnc, nc); done <- struct{}{} }()
	go func() { _, _ = io.Copy(nc, vnc); done <- struct{}{} }()
	<-done
	_ = vnc.Close()
	_ = ws.Close(websocket.StatusNormalClosure, "console closed")
	<-done
}
