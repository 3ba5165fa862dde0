package framework

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	"github.com/hostplane/hostplane/tests/eppd"
)

// PkgEPPD is the EPP test registry's binary.
const PkgEPPD = "./tests/eppd/cmd/eppd"

// EPPDOptions configure StartEPPD.
type EPPDOptions struct {
	// TLDs offered (default: "test").
	TLDs []string
	// Clients are the registrar accounts, clID → password (default: the
	// one account EPPDClientID / EPPDPassword).
	Clients map[string]string
	// IdleTimeout closes sessions idle this long (0: the registry's 10
	// minutes).
	IdleTimeout time.Duration
	// TransferPending keeps transfer requests pending this long for the
	// losing registrar before the registry approves them (0: at once).
	TransferPending time.Duration
}

// The default registrar account of StartEPPD.
const (
	EPPDClientID = "hp-test"
	EPPDPassword = "hp-test-pw1"
)

// EPPD is a running tests/eppd registry process: EPP over TLS on Addr
// (loopback), failure injection on AdminURL. Objects live in DataDir and
// survive Restart; the process is stopped and DataDir removed when the test
// ends.
type EPPD struct {
	Addr     string
	AdminURL string
	DataDir  string
	// CertFile is the registry's self-signed certificate (PEM), generated
	// on first start; TLSConfig trusts it.
	CertFile string
	Clients  map[string]string
	TLDs     []string
	idle     time.Duration
	trWait   time.Duration

	t    testing.TB
	bin  string
	dir  string
	proc Child
}

// StartEPPD builds tests/eppd/cmd/eppd (once per test binary; call
// framework.Main from TestMain to remove it) and starts it on free loopback
// ports; it fails the test if the registry does not come up.
func StartEPPD(t testing.TB, o EPPDOptions) *EPPD {
	t.Helper()
	if len(o.TLDs) == 0 {
		o.TLDs = []string{"test"}
	}
	if len(o.Clients) == 0 {
		o.Clients = map[string]string{EPPDClientID: EPPDPassword}
	}
	dir, err := MkdirTemp("hp-eppd")
	if err != nil {
		t.Fatal(err)
	}
	e := &EPPD{t: t, bin: Binary(t, PkgEPPD, BuildOptions{}), dir: dir, DataDir: filepath.Join(dir, "data"),
		Addr: FreeAddr(t, "tcp"), Clients: o.Clients, TLDs: o.TLDs, idle: o.IdleTimeout, trWait: o.TransferPending}
	e.CertFile = filepath.Join(e.DataDir, "cert.pem")
	e.AdminURL = "http://" + FreeAddr(t, "tcp")
	stopThenClean(t, "eppd", dir, e.LogPath(), e.Stop)
	e.Start()
	return e
}

// CoordinatorFlags are the `run` flags that make a coordinator the registrar
// EPPDClientID at this registry: its EPP address, the client id, a file
// holding EPPDPassword (written beside the registry's data) and its
// certificate as the CA to trust.
func (e *EPPD) CoordinatorFlags() []string {
	e.t.Helper()
	pw := filepath.Join(e.dir, "epp-password")
	if err := os.WriteFile(pw, []byte(EPPDPassword+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return []string{"--registrar-epp-addr", e.Addr, "--registrar-epp-client-id", EPPDClientID,
		"--registrar-epp-password-file", pw, "--registrar-epp-ca-file", e.CertFile}
}

// LogPath is the registry's log (appended across restarts).
func (e *EPPD) LogPath() string { return filepath.Join(e.dir, "eppd.log") }

// Start starts the registry process (after Stop or Kill) and waits until it
// serves.
func (e *EPPD) Start() {
	e.t.Helper()
	if e.proc.Started() {
		e.t.Fatal("eppd already running")
	}
	args := []string{"-addr", e.Addr, "-admin", e.AdminURL[len("http://"):], "-data-dir", e.DataDir, "-v"}
	for _, tld := range e.TLDs {
		args = append(args, "-tld", tld)
	}
	if e.idle > 0 {
		args = append(args, "-idle-timeout", e.idle.String())
	}
	if e.trWait > 0 {
		args = append(args, "-transfer-pending", e.trWait.String())
	}
	ids := make([]string, 0, len(e.Clients))
	for id := range e.Clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		args = append(args, "-client", id+":"+e.Clients[id])
	}
	cmd := exec.Command(e.bin, args...)
	if err := e.proc.Start(cmd, e.LogPath()); err != nil {
		e.t.Fatalf("start eppd: %v", err)
	}
	gone, err := waitUp(e.proc.Exited(), 20*time.Second, 30*time.Millisecond, func() error {
		return answers200(http.DefaultClient, e.AdminURL+"/healthz", "", "")
	})
	switch {
	case gone:
		e.proc.Forget()
		e.t.Fatalf("eppd exited while starting; log:\n%s", Tail(e.LogPath(), 30))
	case err != nil:
		e.t.Fatalf("eppd not serving after 20s: %v; log:\n%s", err, Tail(e.LogPath(), 30))
	}
}

// Stop stops the registry gracefully (SIGTERM; SIGKILL after 10 s).
func (e *EPPD) Stop() { e.proc.Stop(10 * time.Second) }

// Kill SIGKILLs the registry (a crash) and waits for it.
func (e *EPPD) Kill() { e.proc.Kill() }

// Restart stops the registry gracefully and starts it again on the same
// addresses and data.
func (e *EPPD) Restart() {
	e.t.Helper()
	e.Stop()
	e.Start()
}

// TLSConfig trusts the registry's certificate.
func (e *EPPD) TLSConfig() *tls.Config {
	e.t.Helper()
	pemBytes, err := os.ReadFile(e.CertFile)
	if err != nil {
		e.t.Fatalf("eppd certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		e.t.Fatalf("eppd certificate %s holds no certificate", e.CertFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// admin posts to the failure injection endpoint (see eppd.Server.Admin).
func (e *EPPD) admin(method, path string, q url.Values) eppd.AdminState {
	e.t.Helper()
	u := e.AdminURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("eppd admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("eppd admin %s %s: %s %s", method, path, resp.Status, b)
	}
	var st eppd.AdminState
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatalf("eppd admin %s %s: %v", method, path, err)
	}
	return st
}

// adminGet is the registry admin listener's answer to GET path (the status
// is the caller's to check: Reply.Decode fails on any but a 2xx, with the
// answer's body).
func (e *EPPD) adminGet(path string) Reply {
	e.t.Helper()
	resp, err := http.Get(e.AdminURL + path)
	if err != nil {
		e.t.Fatalf("eppd admin GET %s: %v", path, err)
	}
	rep, err := ReadReply(resp)
	if err != nil {
		e.t.Fatalf("eppd admin: %v", err)
	}
	return rep
}

// Stats returns the registry's counters and pending faults.
func (e *EPPD) Stats() eppd.AdminState { return e.admin("GET", "/stats", nil) }

// Down makes the registry refuse connections and closes every session.
func (e *EPPD) Down() { e.admin("POST", "/down", nil) }

// Up makes the registry accept connections again.
func (e *EPPD) Up() { e.admin("POST", "/up", nil) }

// FailNext answers the next n commands (after login) with code (2400 when
// 0), without applying them.
func (e *EPPD) FailNext(n, code int) { e.FailNextOn("", n, code) }

// FailNextOn is FailNext counting only commands of verb ("domain:update",
// one of eppd.Verbs; "" for any).
func (e *EPPD) FailNextOn(verb string, n, code int) {
	q := url.Values{"n": {fmt.Sprint(n)}, "verb": {verb}}
	if code != 0 {
		q.Set("code", fmt.Sprint(code))
	}
	e.admin("POST", "/fail", q)
}

// DropNext closes the connection on the next n commands: before applying
// them (after=false), or after applying them without answering (after=true).
func (e *EPPD) DropNext(n int, after bool) { e.DropNextOn("", n, after) }

// DropNextOn is DropNext counting only commands of verb.
func (e *EPPD) DropNextOn(verb string, n int, after bool) {
	when := "before"
	if after {
		when = "after"
	}
	e.admin("POST", "/drop", url.Values{"n": {fmt.Sprint(n)}, "when": {when}, "verb": {verb}})
}

// DelayNext delays the next n commands' answers by d.
func (e *EPPD) DelayNext(n int, d time.Duration) { e.DelayNextOn("", n, d) }

// DelayNextOn is DelayNext counting only commands of verb.
func (e *EPPD) DelayNextOn(verb string, n int, d time.Duration) {
	e.admin("POST", "/delay", url.Values{"n": {fmt.Sprint(n)}, "d": {d.String()}, "verb": {verb}})
}

// Reset clears every pending fault.
func (e *EPPD) Reset() { e.admin("POST", "/reset", nil) }

// Domain is the registry's own record of a domain (nil when it has none).
func (e *EPPD) Domain(name string) *eppd.AdminDomain {
	e.t.Helper()
	rep := e.adminGet("/domains/" + url.PathEscape(name))
	if rep.Status == http.StatusNotFound {
		return nil
	}
	var d eppd.AdminDomain
	rep.Decode(e.t, &d)
	return &d
}

// Transactions lists every transform command the registry answered (each
// clTRID once; Code 1xxx applied, 2xxx refused), optionally only those of
// verb on object ("" matches any).
func (e *EPPD) Transactions(verb, object string) []eppd.AdminTransaction {
	e.t.Helper()
	if verb != "" && !eppd.RecordedVerbs[verb] {
		// A verb the registry never records matches nothing, and a check that
		// counts none would pass for the wrong reason.
		e.t.Fatalf("eppd records no transactions of verb %q; see eppd.RecordedVerbs", verb)
	}
	var all []eppd.AdminTransaction
	e.adminGet("/transactions").Decode(e.t, &all)
	var out []eppd.AdminTransaction
	for _, t := range all {
		if (verb == "" || t.Verb == verb) && (object == "" || t.Object == object) {
			out = append(out, t)
		}
	}
	return out
}

// Applied is how many of the registry's recorded transactions of verb on
// object ("" matches any) it applied (refusals are recorded too, with a
// 2xxx code).
func (e *EPPD) Applied(verb, object string) int {
	e.t.Helper()
	n := 0
	for _, tx := range e.Transactions(verb, object) {
		if tx.Code < 2000 {
			n++
		}
	}
	return n
}

// RegisterAs registers name at the registry as another registrar account
// (clID, pw, one of Clients) with the auth code code, over EPP as any
// registrar would: a few raw commands (RFC 5730/5731) written with
// internal/eppxml, none of the coordinator's client. It fails the test
// unless the login and the create both answer 1000.
func (e *EPPD) RegisterAs(clID, pw, name, code string) {
	t := e.t
	t.Helper()
	conn, err := tls.Dial("tcp", e.Addr, e.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := eppxml.ReadFrame(conn, eppxml.MaxFrame); err != nil { // the greeting
		t.Fatal(err)
	}
	send := func(cmd *eppxml.Command) {
		t.Helper()
		b, err := eppxml.Marshal(&eppxml.EPP{Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		if err := eppxml.WriteFrame(conn, b); err != nil {
			t.Fatal(err)
		}
		raw, err := eppxml.ReadFrame(conn, eppxml.MaxFrame)
		if err != nil {
			t.Fatal(err)
		}
		e, err := eppxml.Unmarshal(raw)
		if err != nil || e.Response == nil || len(e.Response.Results) == 0 || e.Response.Results[0].Code != 1000 {
			t.Fatalf("EPP %s answered %s (%v)", cmd.ClTRID, raw, err)
		}
	}
	send(&eppxml.Command{ClTRID: clID + "-login", Login: &eppxml.Login{ClID: clID, PW: pw, Options: eppxml.Options{Version: "1.0", Lang: "en"},
		Svcs: eppxml.LoginSvc{ObjURI: []string{eppxml.NSDomain, eppxml.NSContact}}}})
	send(&eppxml.Command{ClTRID: clID + "-create-" + name, Create: &eppxml.CreateCmd{Domain: &eppxml.DomainCreate{
		Name: name, Period: &eppxml.Period{Unit: "y", Value: 1}, AuthInfo: eppxml.AuthInfo{PW: code}}}})
}
