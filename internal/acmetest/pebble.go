// Package acmetest runs pebble (github.com/letsencrypt/pebble/v2, the ACME
// test server, installed by scripts/install-acme-test-deps.sh into .bin)
// for the tests that order certificates.
package acmetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// PebbleVersion is the pebble the scripts install: v2.10.2 or later. In
// v2.10.1 an order's handler read-locks the order twice (pebble issue 554):
// a poll of the order while the CA stores its certificate could block for
// good, and with it every later request for that order and then pebble's
// whole store (tests/hosting TestCustomDomainCertificate's order "context
// deadline exceeded", never answered again).
const PebbleVersion = "v2.10.3"

// RepoFile finds path (".bin/pebble") in the repository above the test's
// package; a missing file fails the test saying how to install it.
func RepoFile(tb testing.TB, path string) string {
	tb.Helper()
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, path)
			if _, err := os.Stat(p); err != nil {
				tb.Fatalf("%s is missing: run scripts/install-acme-test-deps.sh (pebble %s)", p, PebbleVersion)
			}
			return p
		}
	}
	tb.Fatal("repository root not found")
	return ""
}

// Pebble is a running pebble.
type Pebble struct {
	Dir    string       // the ACME directory URL
	Mgmt   string       // the management API's base URL
	Client *http.Client // trusts pebble's own TLS (its minica)
	Log    string       // pebble's log file
}

// Start runs pebble validating HTTP-01 on httpPort of the addresses dns
// (the test's authoritative server) gives, with a "shortlived" profile of
// that lifetime (the default profile: 90 days), until the test ends (its
// log is shown if the test failed).
func Start(t *testing.T, dns, httpPort string, shortLived time.Duration) *Pebble {
	t.Helper()
	bin := RepoFile(t, ".bin/pebble")
	certs := RepoFile(t, ".bin/pebble-certs")
	dir := t.TempDir()
	listen, mgmt := freeport.Addr(t, "tcp"), freeport.Addr(t, "tcp")
	var port int
	fmt.Sscan(httpPort, &port)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certs + "/localhost/cert.pem", "privateKey": certs + "/localhost/key.pem",
		"httpPort": port, "tlsPort": 0, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "default", "validityPeriod": 7776000},
			"shortlived": map[string]any{"description": "short-lived", "validityPeriod": int(shortLived.Seconds())},
		},
	}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	logf, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dns)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startPebble(cmd); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Logf("pebble log:\n%s", out)
		}
	})
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(certs + "/pebble.minica.pem")
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(ca)
	p := &Pebble{Dir: "https://" + listen + "/dir", Mgmt: "https://" + mgmt, Log: filepath.Join(dir, "pebble.log"),
		Client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	if err := awaitAnswer(p.Client.Transport, p.Dir, startWait, exited, func() error { return waitErr }); err != nil {
		t.Fatal(err) // the Cleanup shows pebble's log
	}
	return p
}

// startWait bounds how long Start waits for pebble's directory to answer
// (it answers within a second on an idle machine; a loaded one, up to 40 on
// 2 cores, takes a few).
const startWait = 30 * time.Second

// awaitAnswer polls url through rt until it answers, each try bounded to
// a second (a pebble that accepts but never answers does not hold a try for
// the client's 30 s), for at most wait: an error saying so when it does not
// answer in that time, or at once when the process exits first (exited is
// closed; waitErr is its exit status).
func awaitAnswer(rt http.RoundTripper, url string, wait time.Duration, exited <-chan struct{}, waitErr func() error) error {
	probe := &http.Client{Timeout: time.Second, Transport: rt}
	deadline := time.Now().Add(wait)
	for {
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pebble exited before it answered at %s (%v): see its log", url, waitErr())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pebble did not answer at %s within %s (last: %v): see its log", url, wait, err)
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Root is pebble's issuing root for this run (it makes a new one each start).
func (p *Pebble) Root(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.Client.Get(p.Mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: %s", b)
	}
	return pool
}

// SetRenewalWindow makes pebble's renewal information (ARI) for leaf suggest
// the window start–end (through its management API's /set-renewal-info/),
// in place of its own: for a certificate shorter than two days that is the
// whole lifetime, where a client's random pick may fall in its last seconds.
func (p *Pebble) SetRenewalWindow(t *testing.T, leaf *x509.Certificate, start, end time.Time) {
	t.Helper()
	type window struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	}
	ari, _ := json.Marshal(map[string]window{"suggestedWindow": {start.UTC(), end.UTC()}})
	body, _ := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"ARIResponse": string(ari),
	})
	resp, err := p.Client.Post(p.Mgmt+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("pebble set-renewal-info: %d %s", resp.StatusCode, b)
	}
}

// Issued lists the certificates pebble issued so far, one line of its log
// each ("Issued certificate serial S for order O").
func (p *Pebble) Issued(t *testing.T) []string { return p.logged(t, "Issued certificate serial ") }

// Orders lists the orders pebble was asked for so far, one line of its log
// each ("Added order "ID" to the db").
func (p *Pebble) Orders(t *testing.T) []string { return p.logged(t, "Added order ") }

func (p *Pebble) logged(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, marker); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// startPebble starts cmd in a process group of its own, to be SIGKILLed by
// the kernel when the test binary dies (Pdeathsig, as tests/framework's
// daemons are): a test killed by go test's -timeout runs no cleanup, and
// pebble went on holding its ports until someone killed it.
func startPebble(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd.Start()
}
