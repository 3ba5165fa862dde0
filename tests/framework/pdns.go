package framework

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// PowerDNS is a real PowerDNS Authoritative server (Debian's pdns-server with
// pdns-backend-sqlite3) run by a test: its own directory, config and sqlite
// database, DNS and the HTTP API on loopback ports, no syslog, and an empty
// security-poll-suffix so it never sends a query outside. Stop and Start keep
// the database and ports; the test's cleanup stops it and removes the
// directory.
type PowerDNS struct {
	t       testing.TB
	Dir     string
	DNSAddr string // 127.0.0.1:port, UDP and TCP
	APIURL  string // http://127.0.0.1:port
	APIKey  string
	webAddr string
	cmd     *exec.Cmd
	done    chan struct{}
	logf    *os.File
}

// PowerDNSSchema is where Debian's pdns-backend-sqlite3 keeps the schema.
const PowerDNSSchema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

// RequirePowerDNS fails the test, saying how to install them, when
// pdns_server, the sqlite backend or the sqlite3 tool is missing.
func RequirePowerDNS(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("pdns_server"); err != nil {
		missing = append(missing, "pdns_server (pdns-server)")
	}
	if _, err := os.Stat(PowerDNSSchema); err != nil {
		missing = append(missing, PowerDNSSchema+" (pdns-backend-sqlite3)")
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		missing = append(missing, "sqlite3")
	}
	if len(missing) > 0 {
		t.Fatalf("PowerDNS is needed for this test and is missing: %s; install it as root with scripts/install-pdns.sh (or scripts/install-test-deps.sh)", strings.Join(missing, ", "))
	}
}

// StartPowerDNS starts a PowerDNS server for the test and waits until its API
// answers.
func StartPowerDNS(t testing.TB) *PowerDNS {
	t.Helper()
	RequirePowerDNS(t)
	dir, err := MkdirTemp("hp-pdns-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PowerDNS{t: t, Dir: dir, DNSAddr: FreeAddr(t, "udp"), webAddr: FreeAddr(t, "tcp"), APIKey: "hp-test-pdns-key"}
	p.APIURL = "http://" + p.webAddr
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("powerdns log (tail):\n%s", Tail(filepath.Join(dir, "pdns.log"), 30))
		}
		_ = RemoveTemp(dir)
	})
	schema, err := os.ReadFile(PowerDNSSchema)
	if err != nil {
		t.Fatal(err)
	}
	sq := exec.Command("sqlite3", filepath.Join(dir, "pdns.sqlite3"))
	sq.Stdin = bytes.NewReader(schema)
	if out, err := sq.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 schema: %v: %s", err, out)
	}
	dnsHost, dnsPort, _ := net.SplitHostPort(p.DNSAddr)
	webHost, webPort, _ := net.SplitHostPort(p.webAddr)
	conf := strings.Join([]string{
		"launch=gsqlite3",
		"gsqlite3-database=" + filepath.Join(dir, "pdns.sqlite3"),
		"local-address=" + dnsHost,
		"local-port=" + dnsPort,
		"socket-dir=" + dir,
		"guardian=no", "daemon=no", "disable-syslog=yes", "loglevel=4",
		"api=yes", "api-key=" + p.APIKey,
		"webserver=yes", "webserver-address=" + webHost, "webserver-port=" + webPort,
		"webserver-allow-from=127.0.0.1/32",
		"default-soa-content=ns1.example.test. hostmaster.@ 0 10800 3600 604800 3600",
		"security-poll-suffix=", // empty: no DNS query to the outside at start
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "pdns.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	return p
}

// Start starts the server again (after Stop) and waits for its API.
func (p *PowerDNS) Start() {
	p.t.Helper()
	if p.cmd != nil {
		p.t.Fatal("powerdns: already running")
	}
	lf, err := os.OpenFile(filepath.Join(p.Dir, "pdns.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command("pdns_server", "--config-dir="+p.Dir)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		p.t.Fatalf("start pdns_server: %v", err)
	}
	p.cmd, p.logf, p.done = cmd, lf, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.done) }()
	gone, err := waitUp(p.done, 15*time.Second, 50*time.Millisecond, func() error {
		return answers200(http.DefaultClient, p.APIURL+"/api/v1/servers/localhost", "X-API-Key", p.APIKey)
	})
	switch {
	case gone:
		p.cmd = nil
		p.t.Fatalf("pdns_server exited at start:\n%s", Tail(filepath.Join(p.Dir, "pdns.log"), 20))
	case err != nil:
		p.t.Fatalf("pdns_server API did not answer within 15s:\n%s", Tail(filepath.Join(p.Dir, "pdns.log"), 20))
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (p *PowerDNS) Stop() {
	if p.cmd == nil {
		return
	}
	terminate(p.cmd, p.done, 10*time.Second, false)
	p.cmd = nil
	p.logf.Close()
}

// String describes the server for messages.
func (p *PowerDNS) String() string {
	return fmt.Sprintf("powerdns dns=%s api=%s", p.DNSAddr, p.APIURL)
}

// AskDNS sends one query for name (fully qualified) of type typ to the DNS
// server at addr (UDP, 2 s timeout) and returns its answer; a query that
// gets none fails t.
func AskDNS(t testing.TB, addr, name string, typ uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, typ)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("DNS %s %s at %s: %v", dns.TypeToString[typ], name, addr, err)
	}
	return r
}
