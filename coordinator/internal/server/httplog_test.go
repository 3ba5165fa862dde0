package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/testpki"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// TestNetHTTPErrorsInTheCoordinatorsLog: what net/http logs itself goes to the
// coordinator's log, a JSON line of component "http" naming the listener,
// not a plain line on stderr between the JSON ones. A client that opens TLS
// to the API port of a coordinator with Raft TLS (the port takes the
// coordinators' forwarding over mutual TLS) without a cluster certificate
// makes net/http log the failed handshake.
func TestNetHTTPErrorsInTheCoordinatorsLog(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test cluster CA", 24*time.Hour)
	der, key := ca.Leaf(t, "h1", 24*time.Hour, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.NodeID, cfg.DataDir, cfg.AdminSocket = "h1", dir, filepath.Join(dir, "admin.sock")
	cfg.APIAddr, cfg.RaftAddr, cfg.MetricsAddr = freeport.Addr(t, "tcp"), freeport.Addr(t, "tcp"), ""
	cfg.BootstrapAccount = false
	cfg.RaftTLSCert = testpki.WritePEM(t, filepath.Join(dir, "h1.pem"), "CERTIFICATE", der)
	cfg.RaftTLSKey = testpki.WritePEM(t, filepath.Join(dir, "h1-key.pem"), "EC PRIVATE KEY", kder)
	cfg.RaftTLSCA = testpki.WritePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Cert.Raw)
	cfg.LogFormat, cfg.LogLevel = "json", "info"
	var logs framework.SyncBuilder // the coordinator's goroutines write it while the test reads
	s, err := Start(cfg, NewLogger(cfg, &logs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// No client certificate. The wait stays under the API port's header
	// timeout (cfg.HTTP.ReadHeader, 10 s): a port that took the client
	// closes the connection then, which Refusal would read as a refusal
	// had it waited as long; a refusal itself comes at once.
	if testpki.Refusal(cfg.APIAddr, &tls.Config{InsecureSkipVerify: true}, cfg.HTTP.ReadHeader/2) == nil {
		t.Fatal("a TLS client without a cluster certificate was served")
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			if !strings.Contains(line, "TLS handshake error") {
				continue
			}
			var rec struct{ Level, Msg, Component, Listener string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("net/http's line is not a JSON log line (%v): %s", err, line)
			}
			if rec.Level != "WARN" || rec.Component != "http" || rec.Listener != "api" {
				t.Fatalf("net/http's line: level %q component %q listener %q, want WARN http api: %s", rec.Level, rec.Component, rec.Listener, line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake error in the coordinator's log 10 s after the refused client; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
