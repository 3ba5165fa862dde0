package eppd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	"github.com/hostplane/hostplane/internal/testpki"
	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// These tests speak raw EPP frames to the server in-process (the client in
// coordinator/internal/registrar/epp is tested against the binary).

const testID, testPW = "reg-a", "secret-a1"

type running struct {
	srv    *Server
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, mod func(*Config)) *running {
	t.Helper()
	cfg := Config{Addr: freeport.Addr(t, "tcp"), AdminAddr: freeport.Addr(t, "tcp"), DataDir: t.TempDir(), TLDs: []string{"test"},
		Clients: map[string]string{testID: testPW}}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan *Server, 1)
	go func() { r.done <- Run(ctx, cfg, func(s *Server) { ready <- s }) }()
	select {
	case r.srv = <-ready:
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
	}
}

type conn struct {
	t  *testing.T
	tc *tls.Conn
	n  int
}

// certPool trusts the certificates of the PEM file at path.
func certPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", path)
	}
	return pool
}

// roots trusts the certificate the server generated in its data directory.
func (r *running) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	return certPool(t, filepath.Join(r.cfg.DataDir, "cert.pem"))
}

func (r *running) dial(t *testing.T) *conn {
	t.Helper()
	tc, err := tls.Dial("tcp", r.cfg.Addr, &tls.Config{RootCAs: r.roots(t), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	c := &conn{t: t, tc: tc}
	if g := c.read(); g.Greeting == nil {
		t.Fatal("no greeting")
	}
	return c
}

func (c *conn) write(b []byte) {
	c.t.Helper()
	if err := eppxml.WriteFrame(c.tc, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *conn) read() *eppxml.EPP {
	c.t.Helper()
	c.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := eppxml.ReadFrame(c.tc, eppxml.MaxFrame)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	e, err := eppxml.Unmarshal(f)
	if err != nil {
		c.t.Fatalf("answer does not decode: %v\n%s", err, f)
	}
	return e
}

// cmd sends a command and returns the answer's result code and reason.
func (c *conn) cmd(cmd *eppxml.Command) (int, string, *eppxml.Response) {
	c.t.Helper()
	if cmd.ClTRID == "" {
		c.n++
		cmd.ClTRID = fmt.Sprintf("t-%d", c.n)
	}
	b, err := eppxml.Marshal(&eppxml.EPP{Command: cmd})
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
	e := c.read()
	if e.Response == nil {
		c.t.Fatal("answer is not a response")
	}
	res := e.Response.Results[0]
	reason := ""
	if len(res.ExtValue) > 0 {
		reason = res.ExtValue[0].Reason
	}
	if e.Response.TrID.ClTRID != cmd.ClTRID {
		c.t.Fatalf("answer for clTRID %q, sent %q", e.Response.TrID.ClTRID, cmd.ClTRID)
	}
	return res.Code, reason, e.Response
}

func (c *conn) login(id, pw string) int {
	code, _, _ := c.cmd(&eppxml.Command{Login: &eppxml.Login{ClID: id, PW: pw, Options: eppxml.Options{Version: "1.0", Lang: "en"},
		Svcs: eppxml.LoginSvc{ObjURI: []string{eppxml.NSDomain, eppxml.NSContact}}}})
	return code
}

// closed reports whether the server closed the connection.
func (c *conn) closed() bool {
	c.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.tc.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

func create(name string) *eppxml.Command {
	return &eppxml.Command{Create: &eppxml.CreateCmd{Domain: &eppxml.DomainCreate{Name: name, Period: &eppxml.Period{Unit: "y", Value: 1},
		AuthInfo: eppxml.AuthInfo{PW: "auth-code-1"}}}}
}

func TestSessionRules(t *testing.T) {
	r := start(t, nil)
	c := r.dial(t)
	if code, _, _ := c.cmd(create("a.test")); code != eppxml.CodeUseError {
		t.Fatalf("command before login: %d, want 2002", code)
	}
	c.write([]byte("<epp><not-xml"))
	if e := c.read(); e.Response.Results[0].Code != eppxml.CodeSyntax {
		t.Fatalf("bad XML: %d, want 2001", e.Response.Results[0].Code)
	}
	c.write([]byte(`<?xml version="1.0"?><epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello/></epp>`))
	if e := c.read(); e.Greeting == nil || e.Greeting.SvcMenu.SvcExtension.ExtURI[0] != eppxml.NSPrivacy {
		t.Fatal("hello not answered with a greeting offering the privacy extension")
	}
	for i := 1; i <= 3; i++ {
		code := c.login(testID, "wrong-pw")
		if want := map[bool]int{true: eppxml.CodeAuthClosing, false: eppxml.CodeAuthentication}[i == 3]; code != want {
			t.Fatalf("failed login %d: %d, want %d", i, code, want)
		}
	}
	if !c.closed() {
		t.Fatal("connection open after 2501")
	}

	c = r.dial(t)
	if code := c.login(testID, testPW); code != eppxml.CodeOK {
		t.Fatalf("login: %d", code)
	}
	if code := c.login(testID, testPW); code != eppxml.CodeUseError {
		t.Fatalf("second login: %d, want 2002", code)
	}
	if code, _, _ := c.cmd(&eppxml.Command{Logout: &eppxml.Empty{}}); code != eppxml.CodeBye || !c.closed() {
		t.Fatalf("logout: %d, or the connection stayed open", code)
	}

	// A frame longer than the limit closes the connection.
	c = r.dial(t)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], eppxml.MaxFrame+100)
	c.tc.Write(hdr[:])
	if !c.closed() {
		t.Fatal("connection open after an oversized frame header")
	}
}

func TestNamesAndPolicy(t *testing.T) {
	r := start(t, func(c *Config) { c.TLDs = []string{"test", "co.test"} })
	c := r.dial(t)
	c.login(testID, testPW)
	for _, tc := range []struct {
		name string
		code int
	}{
		{"ok.test", 1000}, {"OK.test", 2302}, {"x.co.test", 1000}, {"x.y.test", 2306}, {"x.com", 2306},
		{"-a.test", 2005}, {"a-.test", 2005}, {"a_b.test", 2005}, {"ab--c.test", 2005}, {"xn--abc.test", 2005},
		{"xn--bcher-kva.test", 1000}, {"bücher.test", 2005}, {strings.Repeat("a", 64) + ".test", 2005}, {"", 2005},
	} {
		code, reason, _ := c.cmd(create(tc.name))
		if code != tc.code {
			t.Errorf("create %q: %d (%s), want %d", tc.name, code, reason, tc.code)
		}
		if code >= 2000 && reason == "" {
			t.Errorf("create %q: refused without a reason", tc.name)
		}
	}
	d := create("p.test")
	d.Create.Domain.Period.Value = 11
	if code, _, _ := c.cmd(d); code != eppxml.CodeValueRange {
		t.Errorf("11 years: %d, want 2004", code)
	}
	d = create("p.test")
	d.Create.Domain.Registrant = "nobody"
	if code, _, _ := c.cmd(d); code != eppxml.CodeNotExist {
		t.Errorf("unknown registrant: %d, want 2303", code)
	}
	d = create("p.test")
	d.Create.Domain.AuthInfo.PW = ""
	if code, _, _ := c.cmd(d); code != eppxml.CodeParamMissing {
		t.Errorf("domain without an authInfo pw: %d, want 2003", code)
	}
	ct := &eppxml.Command{Create: &eppxml.CreateCmd{Contact: &eppxml.ContactCreate{ID: "c-1", Email: "a@b.test",
		PostalInfo: []eppxml.PostalInfo{{Type: "int", Name: "A", Addr: eppxml.Addr{City: "X", CC: "GB"}}}}}}
	if code, _, _ := c.cmd(ct); code != eppxml.CodeParamMissing {
		t.Errorf("contact without an authInfo pw: %d, want 2003", code)
	}
	ct.ClTRID, ct.Create.Contact.AuthInfo.PW = "", "x"
	if code, reason, _ := c.cmd(ct); code != 1000 {
		t.Errorf("contact with an authInfo pw: %d (%s)", code, reason)
	}
	code, _, resp := c.cmd(&eppxml.Command{Check: &eppxml.CheckCmd{Domain: &eppxml.DomainNames{Names: []string{"ok.test", "free.test", "x.com"}}}})
	cd := resp.ResData.DomainChk.CD
	if code != 1000 || cd[0].Name.Avail || !cd[1].Name.Avail || cd[2].Name.Avail || cd[2].Reason != "TLD not offered" {
		t.Fatalf("check: %d %+v", code, cd)
	}
}

// Down refuses connections and closes sessions; up serves again; a
// shutdown answers the command in flight first and frees the port.
func TestDownUpAndShutdown(t *testing.T) {
	r := start(t, nil)
	admin := func(path string) {
		resp, err := http.Post("http://"+r.cfg.AdminAddr+path, "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post("http://"+r.cfg.AdminAddr+"/fail?n=1&verb=domain:nope", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.HasPrefix(string(body), "verb:") {
		t.Fatalf("unknown verb: %d %s", resp.StatusCode, body)
	}
	c := r.dial(t)
	c.login(testID, testPW)
	// A fault limited to a verb leaves other commands alone.
	admin("/fail?n=1&verb=domain:create")
	if code, _, _ := c.cmd(&eppxml.Command{Check: &eppxml.CheckCmd{Domain: &eppxml.DomainNames{Names: []string{"v.test"}}}}); code != 1000 {
		t.Fatalf("check with a create fault pending: %d", code)
	}
	if code, _, _ := c.cmd(create("v.test")); code != eppxml.CodeFailed {
		t.Fatalf("create with a create fault pending: %d, want 2400", code)
	}
	admin("/down")
	if !c.closed() {
		t.Fatal("session open after down")
	}
	if _, err := net.DialTimeout("tcp", r.cfg.Addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}
	admin("/up")
	c = r.dial(t)
	c.login(testID, testPW)

	admin("/delay?n=1&d=500ms")
	b, _ := eppxml.Marshal(&eppxml.EPP{Command: create("late.test")})
	c.write(b)
	time.Sleep(100 * time.Millisecond)
	r.cancel()
	if e := c.read(); e.Response.Results[0].Code != eppxml.CodeOK {
		t.Fatalf("command in flight at shutdown: %d", e.Response.Results[0].Code)
	}
	r.stop(t)
	ln, err := net.Listen("tcp", r.cfg.Addr)
	if err != nil {
		t.Fatalf("port still taken after shutdown: %v", err)
	}
	ln.Close()
	if _, err := net.DialTimeout("tcp", r.cfg.AdminAddr, time.Second); err == nil {
		t.Fatal("admin endpoint still up after shutdown")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Addr: "127.0.0.1:700", DataDir: "/x", TLDs: []string{"test"}, Clients: map[string]string{"reg-a": "secret-1"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mod := range map[string]func(*Config){
		"admin":  func(c *Config) { c.AdminAddr = "0.0.0.0:8000" },
		"tld":    func(c *Config) { c.TLDs = []string{".test"} },
		"client": func(c *Config) { c.Clients = map[string]string{"reg-a": "short"} },
		"cert":   func(c *Config) { c.CertFile = "c.pem" },
		"addr":   func(c *Config) { c.Addr = "" },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming it", field, err)
		}
	}
}

func TestTransferOps(t *testing.T) {
	r := start(t, func(c *Config) {
		c.TransferPending = time.Hour
		c.Clients = map[string]string{testID: testPW, "reg-b": "secret-b1"}
	})
	a, b := r.dial(t), r.dial(t)
	a.login(testID, testPW)
	b.login("reg-b", "secret-b1")
	if code, _, _ := a.cmd(create("t.test")); code != 1000 {
		t.Fatal(code)
	}
	op := func(c *conn, op string, auth string) (int, string) {
		dt := &eppxml.DomainTransfer{Name: "t.test"}
		if auth != "" {
			dt.AuthInfo = &eppxml.AuthInfo{PW: auth}
		}
		code, _, resp := c.cmd(&eppxml.Command{Transfer: &eppxml.TransferCmd{Op: op, Domain: dt}})
		st := ""
		if resp.ResData != nil && resp.ResData.DomainTrn != nil {
			st = resp.ResData.DomainTrn.TrStatus
		}
		return code, st
	}
	poll := func(c *conn) string {
		code, _, resp := c.cmd(&eppxml.Command{Poll: &eppxml.Poll{Op: "req"}})
		if code != eppxml.CodeAckToDequeue {
			t.Fatalf("poll: %d", code)
		}
		c.cmd(&eppxml.Command{Poll: &eppxml.Poll{Op: "ack", MsgID: resp.MsgQ.ID}})
		return resp.ResData.DomainTrn.TrStatus
	}
	sponsor := func() string {
		_, _, resp := a.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{Name: eppxml.HostsName{Name: "t.test"}}}})
		return resp.ResData.DomainInf.ClID
	}
	if code, st := op(b, "request", "auth-code-1"); code != eppxml.CodePending || st != "pending" {
		t.Fatalf("request: %d %s", code, st)
	}
	if poll(a) != "pending" {
		t.Fatal("loser not told of the request")
	}
	if code, _ := op(b, "request", "auth-code-1"); code != eppxml.CodePendingTransfer {
		t.Fatalf("second request: %d, want 2300", code)
	}
	if code, _ := op(b, "approve", ""); code != eppxml.CodeAuthorization {
		t.Fatalf("approve by the gainer: %d, want 2201", code)
	}
	if code, st := op(a, "reject", ""); code != 1000 || st != "clientRejected" || poll(b) != "clientRejected" || sponsor() != testID {
		t.Fatalf("reject: %d %s", code, st)
	}
	op(b, "request", "auth-code-1")
	poll(a)
	if code, st := op(b, "cancel", ""); code != 1000 || st != "clientCancelled" || poll(a) != "clientCancelled" {
		t.Fatalf("cancel: %d %s", code, st)
	}
	op(b, "request", "auth-code-1")
	poll(a)
	if code, st := op(a, "approve", ""); code != 1000 || st != "clientApproved" || poll(b) != "clientApproved" || sponsor() != "reg-b" {
		t.Fatalf("approve: %d %s, sponsor %s", code, st, sponsor())
	}
	if code, st := op(b, "query", ""); code != 1000 || st != "clientApproved" {
		t.Fatalf("query: %d %s", code, st)
	}
	if code, _ := op(b, "reject", ""); code != eppxml.CodeNotPendingTransfer {
		t.Fatalf("reject with nothing pending: %d, want 2301", code)
	}
}

// With a client CA, only clients presenting a certificate it signed get a
// greeting (RFC 5734 mutual authentication).
func TestClientCertificates(t *testing.T) {
	ca, foreign := testpki.NewCA(t, "registrars", time.Hour), testpki.NewCA(t, "other", time.Hour)
	caFile := testpki.WritePEM(t, filepath.Join(t.TempDir(), "ca.pem"), "CERTIFICATE", ca.Cert.Raw)
	r := start(t, func(c *Config) { c.ClientCAFile = caFile })
	pool := r.roots(t)
	greeted := func(signer *testpki.CA) bool {
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if signer != nil {
			der, key := signer.Leaf(t, "reg-a", time.Hour, x509.ExtKeyUsageClientAuth)
			cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
		}
		tc, err := tls.Dial("tcp", r.cfg.Addr, cfg)
		if err != nil {
			return false
		}
		defer tc.Close()
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := eppxml.ReadFrame(tc, eppxml.MaxFrame)
		if err != nil {
			return false
		}
		e, err := eppxml.Unmarshal(f)
		return err == nil && e.Greeting != nil
	}
	if !greeted(ca) {
		t.Fatal("a client with a certificate of the client CA got no greeting")
	}
	if greeted(nil) || greeted(foreign) {
		t.Fatal("a client without a certificate of the client CA got a greeting")
	}
}

// A certificate given by -cert/-key is served, and none is generated.
func TestGivenCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "given.pem"), filepath.Join(dir, "given.key")
	if err := selfSigned(certFile, keyFile, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	r := start(t, func(c *Config) { c.CertFile, c.KeyFile = certFile, keyFile })
	if _, err := os.Stat(filepath.Join(r.cfg.DataDir, "cert.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a certificate was generated although one was given: %v", err)
	}
	tc, err := tls.Dial("tcp", r.cfg.Addr, &tls.Config{RootCAs: certPool(t, certFile), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("the given certificate is not served: %v", err)
	}
	tc.Close()
}

func TestHostObjectRules(t *testing.T) {
	r := start(t, nil)
	c := r.dial(t)
	c.login(testID, testPW)
	d := create("h.test")
	d.Create.Domain.NS = &eppxml.NS{HostObj: []string{"ns1.other.example"}}
	if code, _, _ := c.cmd(d); code != eppxml.CodeNotExist {
		t.Fatalf("hostObj without the host object: %d, want 2303", code)
	}
	hc := func(name string, addrs ...eppxml.HostAddr) int {
		code, _, _ := c.cmd(&eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: name, Addr: addrs}}})
		return code
	}
	if code := hc("ns1.other.example"); code != 1000 {
		t.Fatalf("host:create: %d", code)
	}
	if code := hc("ns1.other.example"); code != eppxml.CodeExists {
		t.Fatalf("host:create again (another clTRID): %d, want 2302", code)
	}
	if code := hc("ns2.other.example", eppxml.HostAddr{IP: "v4", Addr: "192.0.2.1"}); code != eppxml.CodePolicy {
		t.Fatalf("glue outside the registry: %d, want 2306", code)
	}
	if code, _, _ := c.cmd(d); code != eppxml.CodeNotExist {
		t.Fatalf("the same clTRID again: %d, want the recorded 2303", code)
	}
	d.ClTRID = ""
	if code, _, _ := c.cmd(d); code != 1000 {
		t.Fatalf("hostObj with the host object: %d", code)
	}
	if code := hc("ns1.h.test"); code != eppxml.CodeParamMissing {
		t.Fatalf("in-bailiwick host without glue: %d, want 2003", code)
	}
	if code := hc("ns1.h.test", eppxml.HostAddr{IP: "v6", Addr: "192.0.2.1"}); code != eppxml.CodeValueSyntax {
		t.Fatalf("a v4 address marked v6: %d, want 2005", code)
	}
	if code := hc("ns1.h.test", eppxml.HostAddr{IP: "v4", Addr: "192.0.2.1"}, eppxml.HostAddr{IP: "v6", Addr: "2001:db8::1"}); code != 1000 {
		t.Fatalf("in-bailiwick host with glue: %d", code)
	}
	mixed := &eppxml.Command{Update: &eppxml.UpdateCmd{Domain: &eppxml.DomainUpdate{Name: "h.test",
		Add: &eppxml.DomainAddRem{NS: eppxml.HostAttrs([]string{"ns9.x.example"})}}}}
	if code, _, _ := c.cmd(mixed); code != eppxml.CodePolicy {
		t.Fatalf("hostAttr added to a hostObj delegation: %d, want 2306", code)
	}
	_, _, resp := c.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{Name: eppxml.HostsName{Name: "h.test"}}}})
	if ns := resp.ResData.DomainInf.NS; ns == nil || len(ns.HostObj) != 1 || len(ns.HostAttr) != 0 {
		t.Fatalf("info shows the delegation as %+v, want hostObj", ns)
	}
}

// TestRecordedVerbsListEveryTransform: each verb commands.go hands to
// transform is in RecordedVerbs, so that a test asking the registry for its
// transactions of a verb (framework.EPPD.Transactions refuses an unlisted one)
// cannot miss one that exists.
func TestRecordedVerbsListEveryTransform(t *testing.T) {
	src, err := os.ReadFile("commands.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`ss\.transform\(c, "([a-z:]+)"(\+c\.Transfer\.Op)?`).FindAllStringSubmatch(string(src), -1)
	if len(calls) < 8 {
		t.Fatalf("found %d transform calls in commands.go; the pattern no longer matches them", len(calls))
	}
	for _, m := range calls {
		if m[2] != "" {
			for _, op := range []string{"request", "approve", "reject", "cancel"} {
				if !RecordedVerbs[m[1]+op] {
					t.Errorf("RecordedVerbs lacks %q", m[1]+op)
				}
			}
			continue
		}
		if !RecordedVerbs[m[1]] {
			t.Errorf("RecordedVerbs lacks %q", m[1])
		}
	}
}
