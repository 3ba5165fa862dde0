// Package epp is the registrar.Registrar of a registry that speaks EPP: RFC
// 5730 (envelope, greeting, login/logout, hello, result codes), RFC 5731
// (domains), RFC 5733 (contacts) over RFC 5734 (TLS, 4-byte length prefix).
// Name servers are sent as host attributes (RFC 5731 hostAttr), so no RFC
// 5732 host objects are needed. WHOIS privacy uses hostplane's extension
// urn:hostplane:params:xml:ns:privacy-1.0 (internal/eppxml), sent only when
// the registry's greeting announces it; otherwise SetPrivacy and a
// registration asking for privacy are refused before anything is sent.
//
// A Client holds one session (a pool of one connection): commands are
// serialized, the session is opened on first use (greeting, login), kept
// alive with <hello> while idle, and re-opened after the connection breaks.
// The registry is told each command's clTRID; the client's own queries carry
// generated ones.
//
// Outcomes map to registrar.Error kinds:
//   - not connected, TLS or login failure (other than a refused password),
//     a broken connection before the command was written, EPP 2400, 2500
//     and 2502: KindUnavailable (2501, a refused password, is KindRefused);
//   - a mutating command written whose answer never came (connection lost,
//     deadline): KindUnknown; a query in that case is retried once on a new
//     connection, then KindUnavailable;
//   - 2302: KindExists; 2303: KindNotFound; every other 2xxx: KindRefused
//     with the registry's message and reason.
package epp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/internal/eppxml"
)

// Config configures a Client.
type Config struct {
	// Addr is the registry's host:port (RFC 5734: port 700).
	Addr string
	// TLS is the client's TLS configuration: RootCAs (nil: the system
	// pool), ServerName (default: Addr's host), Certificates for registries
	// that authenticate clients by certificate.
	TLS *tls.Config
	// ClientID and Password are the registrar account (EPP clID, pw).
	ClientID, Password string
	// DialTimeout bounds connecting, the TLS handshake, the greeting and
	// login (default 10s).
	DialTimeout time.Duration
	// CommandTimeout bounds one command's answer when ctx has no earlier
	// deadline (default 30s).
	CommandTimeout time.Duration
	// KeepAlive sends <hello> on a session idle this long (default 2
	// minutes; negative: never). Registries close idle sessions.
	KeepAlive time.Duration
	// HostObjects delegates with RFC 5732 host objects (<domain:hostObj>)
	// instead of host attributes, for registries that require them: a name
	// server is created as a host object (host:check, host:create) before a
	// domain uses it. A name server under a domain of the same registry
	// needs glue addresses, which the Registrar interface does not carry:
	// the registry refuses it.
	HostObjects bool
	// Logger receives session events (never passwords or auth codes).
	Logger *slog.Logger
}

// Client is an EPP registrar.Registrar. It is safe for concurrent use;
// commands run one at a time.
type Client struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // one command at a time on the one session
	sess   *session
	closed bool

	qseq   atomic.Uint64
	qbase  string
	stop   chan struct{}
	stopKA sync.Once
	kaDone chan struct{}
}

var _ registrar.Registrar = (*Client)(nil)

// New returns a client; it connects on first use.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("epp: addr: required")
	}
	if cfg.ClientID == "" || cfg.Password == "" {
		return nil, errors.New("epp: client id and password: required")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 2 * time.Minute
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{}
	}
	c := &Client{cfg: cfg, log: cfg.Logger, qbase: rand.Text()[:8], stop: make(chan struct{}), kaDone: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	go c.keepAlive()
	return c, nil
}

// session is one open, logged-in connection.
type session struct {
	tc       *tls.Conn
	frames   chan []byte   // answers read by readLoop
	done     chan struct{} // closed when readLoop ends
	err      error         // readLoop's error, after done
	privacy  bool          // the registry offers the privacy extension
	lastUsed time.Time
}

func (s *session) readLoop() {
	defer close(s.done)
	for {
		f, err := eppxml.ReadFrame(s.tc, eppxml.MaxFrame)
		if err != nil {
			s.err = err
			return
		}
		select {
		case s.frames <- f:
		default:
			s.err = errors.New("epp: unsolicited frame from the registry")
			s.tc.Close()
			return
		}
	}
}

// alive reports whether the connection is still usable: not closed by the
// registry and holding no unsolicited frame.
func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
	}
	return len(s.frames) == 0
}

func (s *session) close() {
	s.tc.Close()
	<-s.done
}

// Reasons of transport failures, safe to show a customer (the cause, with
// addresses, is in Err for the logs).
const (
	reasonUnreachable = "the registry could not be reached"
	reasonBadAnswer   = "the registry's answer could not be read"
	reasonNoAnswer    = "no answer from the registry; the change may have been applied"
)

func unavailable(op, object string, err error) *registrar.Error {
	return &registrar.Error{Kind: registrar.KindUnavailable, Op: op, Object: object, Reason: reasonUnreachable, Err: err}
}

// connect opens and logs in a session.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, unavailable("connect", c.cfg.Addr, err)
	}
	tcfg := c.cfg.TLS.Clone()
	if tcfg.ServerName == "" {
		tcfg.ServerName, _, _ = net.SplitHostPort(c.cfg.Addr)
	}
	if tcfg.MinVersion == 0 {
		tcfg.MinVersion = tls.VersionTLS12
	}
	tc := tls.Client(raw, tcfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, unavailable("connect", c.cfg.Addr, fmt.Errorf("tls: %w", err))
	}
	s := &session{tc: tc, frames: make(chan []byte, 1), done: make(chan struct{})}
	go s.readLoop()
	g, err := s.await(ctx)
	if err != nil {
		s.close()
		return nil, unavailable("greeting", c.cfg.Addr, err)
	}
	e, err := eppxml.Unmarshal(g)
	if err != nil || e.Greeting == nil {
		s.close()
		return nil, unavailable("greeting", c.cfg.Addr, fmt.Errorf("not a greeting: %v", err))
	}
	menu := e.Greeting.SvcMenu
	if !slices.Contains(menu.Version, "1.0") || !slices.Contains(menu.ObjURI, eppxml.NSDomain) || !slices.Contains(menu.ObjURI, eppxml.NSContact) {
		s.close()
		return nil, &registrar.Error{Kind: registrar.KindRefused, Op: "greeting", Object: c.cfg.Addr,
			Reason: "the registry does not offer EPP 1.0 with the domain and contact mappings"}
	}
	login := &eppxml.Login{ClID: c.cfg.ClientID, PW: c.cfg.Password, Options: eppxml.Options{Version: "1.0", Lang: "en"},
		Svcs: eppxml.LoginSvc{ObjURI: []string{eppxml.NSDomain, eppxml.NSContact}}}
	if c.cfg.HostObjects {
		if !slices.Contains(menu.ObjURI, eppxml.NSHost) {
			s.close()
			return nil, &registrar.Error{Kind: registrar.KindRefused, Op: "greeting", Object: c.cfg.Addr,
				Reason: "the client is configured for host objects and the registry does not offer the host mapping"}
		}
		login.Svcs.ObjURI = append(login.Svcs.ObjURI, eppxml.NSHost)
	}
	if menu.SvcExtension != nil && slices.Contains(menu.SvcExtension.ExtURI, eppxml.NSPrivacy) {
		s.privacy = true
		login.Svcs.SvcExtension = &eppxml.SvcExtension{ExtURI: []string{eppxml.NSPrivacy}}
	}
	resp, _, err := s.roundTrip(ctx, &eppxml.Command{Login: login, ClTRID: c.queryID()})
	if err != nil {
		s.close()
		return nil, unavailable("login", c.cfg.Addr, err)
	}
	if err := resultErr("login", c.cfg.ClientID, resp); err != nil {
		s.close()
		return nil, err
	}
	s.lastUsed = time.Now()
	c.log.Info("epp session open", "addr", c.cfg.Addr, "clid", c.cfg.ClientID, "privacy", s.privacy)
	return s, nil
}

// await returns the next frame.
func (s *session) await(ctx context.Context) ([]byte, error) {
	select {
	case f := <-s.frames:
		return f, nil
	case <-s.done:
		// A frame read just before the loop ended is still an answer.
		select {
		case f := <-s.frames:
			return f, nil
		default:
		}
		return nil, fmt.Errorf("connection lost: %w", s.err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// roundTrip writes one command and waits for its answer; sent reports
// whether the command was written in full.
func (s *session) roundTrip(ctx context.Context, cmd *eppxml.Command) (*eppxml.Response, bool, error) {
	b, err := eppxml.Marshal(&eppxml.EPP{Command: cmd})
	if err != nil {
		return nil, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		s.tc.SetWriteDeadline(dl)
	}
	if err := eppxml.WriteFrame(s.tc, b); err != nil {
		return nil, false, err
	}
	s.lastUsed = time.Now()
	f, err := s.await(ctx)
	if err != nil {
		return nil, true, err
	}
	e, err := eppxml.Unmarshal(f)
	if err != nil {
		return nil, true, err
	}
	if e.Response == nil || len(e.Response.Results) == 0 {
		return nil, true, errors.New("answer is not a response")
	}
	if cmd.ClTRID != "" && e.Response.TrID.ClTRID != cmd.ClTRID {
		// Only a broken server answers another command here; the session
		// is out of step and is dropped.
		return nil, true, fmt.Errorf("answer is for clTRID %q, not %q", e.Response.TrID.ClTRID, cmd.ClTRID)
	}
	return e.Response, true, nil
}

func (c *Client) queryID() string {
	return fmt.Sprintf("hpq-%s-%d", c.qbase, c.qseq.Add(1))
}

// exchange runs one command: cmd.ClTRID is the caller's (mutating) or
// generated (query). It returns the response of a successful command, or a
// *registrar.Error.
func (c *Client) exchange(ctx context.Context, op, object string, cmd *eppxml.Command, mutating bool) (*eppxml.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, unavailable(op, object, errors.New("client closed"))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CommandTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		fresh := false
		if c.sess != nil && !c.sess.alive() {
			c.dropSession("closed by the registry")
		}
		if c.sess == nil {
			s, err := c.connect(ctx)
			if err != nil {
				return nil, retag(err, op, object)
			}
			c.sess, fresh = s, true
		}
		if cmd.Extension != nil && !c.sess.privacy {
			return nil, &registrar.Error{Kind: registrar.KindRefused, Op: op, Object: object, Code: eppxml.CodeUnimplExtension,
				Reason: "the registry does not offer the WHOIS privacy extension " + eppxml.NSPrivacy}
		}
		resp, sent, err := c.sess.roundTrip(ctx, cmd)
		if err != nil {
			c.dropSession(err.Error())
			if (!sent || !mutating) && !fresh && attempt == 0 && ctx.Err() == nil {
				continue // a stale connection: nothing reached the registry, or it was a query
			}
			kind, reason := registrar.KindUnavailable, reasonUnreachable
			if sent && mutating {
				kind, reason = registrar.KindUnknown, reasonNoAnswer
			}
			return nil, &registrar.Error{Kind: kind, Op: op, Object: object, ClTRID: cmd.ClTRID, Reason: reason, Err: err}
		}
		if code := resp.Results[0].Code; code == eppxml.CodeFailedClosing || code == eppxml.CodeAuthClosing || code == eppxml.CodeSessionLimit {
			c.dropSession(eppxml.Message(code))
		}
		return resp, resultErr(op, object, resp)
	}
}

// retag makes a session error (Op "connect", "greeting", "login") the
// error of the command that needed the session, keeping its kind, code and
// reason, and naming the stage in Err.
func retag(err error, op, object string) error {
	var re *registrar.Error
	if !errors.As(err, &re) {
		return err
	}
	out := *re
	stage := re.Op + " " + re.Object
	if re.Err != nil {
		out.Err = fmt.Errorf("%s: %w", stage, re.Err)
	} else {
		out.Err = errors.New(stage)
	}
	out.Op, out.Object = op, object
	return &out
}

func (c *Client) dropSession(why string) {
	if c.sess == nil {
		return
	}
	c.sess.close()
	c.sess = nil
	c.log.Info("epp session closed", "addr", c.cfg.Addr, "why", why)
}

// keepAlive says hello on an idle session so the registry keeps it.
func (c *Client) keepAlive() {
	defer close(c.kaDone)
	if c.cfg.KeepAlive < 0 {
		<-c.stop
		return
	}
	t := time.NewTicker(max(c.cfg.KeepAlive/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if s := c.sess; s != nil && time.Since(s.lastUsed) >= c.cfg.KeepAlive {
			if err := c.hello(s); err != nil {
				c.dropSession("keep-alive: " + err.Error())
			}
		}
		c.mu.Unlock()
	}
}

func (c *Client) hello(s *session) error {
	if !s.alive() {
		return errors.New("connection closed")
	}
	b, _ := eppxml.Marshal(&eppxml.EPP{Hello: &eppxml.Empty{}})
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	s.tc.SetWriteDeadline(time.Now().Add(c.cfg.DialTimeout))
	if err := eppxml.WriteFrame(s.tc, b); err != nil {
		return err
	}
	f, err := s.await(ctx)
	if err != nil {
		return err
	}
	if e, err := eppxml.Unmarshal(f); err != nil || e.Greeting == nil {
		return errors.New("hello not answered with a greeting")
	}
	s.lastUsed = time.Now()
	return nil
}

// Ping says hello to the registry (connecting if needed).
func (c *Client) Ping(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return unavailable("hello", c.cfg.Addr, errors.New("client closed"))
	}
	if c.sess == nil || !c.sess.alive() {
		c.dropSession("closed by the registry")
		s, err := c.connect(ctx)
		if err != nil {
			return err
		}
		c.sess = s
	}
	if err := c.hello(c.sess); err != nil {
		c.dropSession(err.Error())
		return unavailable("hello", c.cfg.Addr, err)
	}
	return nil
}

// Close logs out and closes the session.
func (c *Client) Close() error {
	c.stopKA.Do(func() { close(c.stop) })
	<-c.kaDone
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if s := c.sess; s != nil && s.alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.roundTrip(ctx, &eppxml.Command{Logout: &eppxml.Empty{}, ClTRID: c.queryID()})
		cancel()
	}
	c.dropSession("logout")
	return nil
}

// kindFor maps an EPP error code to a registrar.Kind.
func kindFor(code int) registrar.Kind {
	switch code {
	case eppxml.CodeExists:
		return registrar.KindExists
	case eppxml.CodeNotExist:
		return registrar.KindNotFound
	case eppxml.CodeFailed, eppxml.CodeFailedClosing, eppxml.CodeSessionLimit:
		return registrar.KindUnavailable
	}
	return registrar.KindRefused
}

// resultErr is nil for a success response, else its *registrar.Error.
func resultErr(op, object string, r *eppxml.Response) error {
	res := r.Results[0]
	if eppxml.Success(res.Code) {
		return nil
	}
	reason := strings.TrimSpace(res.Msg)
	if reason == "" {
		reason = eppxml.Message(res.Code)
	}
	for _, v := range res.ExtValue {
		if x := strings.TrimSpace(v.Reason); x != "" {
			reason += ": " + x
		}
	}
	return &registrar.Error{Kind: kindFor(res.Code), Op: op, Object: object, Code: res.Code, Reason: reason,
		ClTRID: r.TrID.ClTRID, SvTRID: r.TrID.SvTRID}
}
