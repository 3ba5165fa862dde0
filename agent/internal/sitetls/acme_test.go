package sitetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/internal/dnstest"
)

// repoFile finds path (".bin/pebble") in the repository above this package.
func repoFile(tb testing.TB, path string) string {
	tb.Helper()
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, path)
			if _, err := os.Stat(p); err != nil {
				tb.Fatalf("%s is missing: run scripts/install-acme-test-deps.sh (pebble %s)", p, "v2.10.1")
			}
			return p
		}
	}
	tb.Fatal("repository root not found")
	return ""
}

type pebble struct {
	dir, mgmt string
	client    *http.Client // trusts pebble's own TLS (its minica)
}

// startPebble runs pebble (the ACME test server) validating HTTP-01 on
// httpPort of the addresses dns (the test's authoritative server) gives.
func startPebble(t *testing.T, dns, httpPort string, shortLived time.Duration) *pebble {
	t.Helper()
	bin := repoFile(t, ".bin/pebble")
	certs := repoFile(t, ".bin/pebble-certs")
	dir := t.TempDir()
	listen, mgmt := freePort(t), freePort(t)
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
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
	p := &pebble{dir: "https://" + listen + "/dir", mgmt: "https://" + mgmt,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := p.client.Get(p.dir)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// root is pebble's issuing root for this run (it makes a new one each start).
func (p *pebble) root(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
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

// presenter hands tokens to the node's challenge responder, as the
// coordinator does over the agent's session.
type presenter struct{ c *Challenges }

func (p presenter) Present(_ context.Context, _, token, keyAuth string) error {
	return p.c.Put(token, keyAuth)
}

func (p presenter) CleanUp(_ context.Context, _, token, _ string) error {
	p.c.Delete(token)
	return nil
}

// TestACMEPebble: a certificate ordered from pebble (a real ACME server)
// with HTTP-01 answered through nginx by the agent's responder, attached
// without a reload, serves HTTPS with a chain to pebble's root; renewed when
// pebble's renewal information (ARI) says so, with its short-lived profile,
// again without a reload.
func TestACMEPebble(t *testing.T) {
	needLua(t)
	ctx := context.Background()
	// The agent's challenge responder on a unix socket nginx forwards to.
	ch := &Challenges{}
	sockDir := t.TempDir()
	openDir(t, sockDir)
	sock := filepath.Join(sockDir, "acme.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(sock, 0o666)
	srv := &http.Server{Handler: ch, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	chConf, err := ChallengeConf(sock)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := freePort(t)
	n := startNginx(t, ModeLua, fmt.Sprintf("server { listen %s; %s location / { return 404; } }", httpAddr, chConf))
	workers := n.workers(t)

	// The customer's DNS: shop.example.test at this host.
	dns := dnstest.Start(t, "example.test")
	dns.Add(t, "shop.example.test. 60 IN A 127.0.0.1")
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	life := 40 * time.Second // an order takes about 6 s (lego polls)
	pb := startPebble(t, dns.Addr, httpPort, life)

	key, err := certissue.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certissue.New(certissue.Config{DirectoryURL: pb.dir, HTTPClient: pb.client, Profile: "shortlived"},
		certissue.Account{Email: "ops@hostplane.test", KeyPEM: key}, presenter{ch})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	first, err := iss.Obtain(ctx, "shop.example.test", nil)
	if err != nil {
		t.Fatalf("obtain: %v", err)
	}
	t.Logf("issued in %v, valid %v to %v", time.Since(start), first.Leaf.NotBefore, first.Leaf.NotAfter)
	if err := n.store.Attach(ctx, "shop.example.test", first.ChainPEM, first.KeyPEM); err != nil {
		t.Fatal(err)
	}
	roots := pb.root(t)
	get := func() *x509.Certificate {
		t.Helper()
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "shop.example.test"}}}
		req, _ := http.NewRequest("GET", "https://"+n.addr+"/", nil)
		req.Host = "shop.example.test"
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("HTTPS with SNI shop.example.test, verified against pebble's root: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "host=shop.example.test") {
			t.Fatalf("HTTPS: %d %s", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := get(); !bytes.Equal(got.Raw, first.Leaf.Raw) {
		t.Fatal("served another certificate than the one issued")
	}

	// Renewal: pebble's ARI window for a 40 s certificate; lego's choice in it.
	at, ari := iss.RenewAt(ctx, first.Leaf, time.Now())
	if !ari {
		t.Fatal("pebble gave no renewal information (ARI)")
	}
	if at.After(first.Leaf.NotAfter) || at.Before(first.Leaf.NotBefore) {
		t.Fatalf("renew at %v, outside the certificate's life %v-%v", at, first.Leaf.NotBefore, first.Leaf.NotAfter)
	}
	t.Logf("ARI says renew at %v (in %v)", at, time.Until(at).Round(time.Second))
	time.Sleep(time.Until(at))
	second, err := iss.Obtain(ctx, "shop.example.test", first.Leaf)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := n.store.Attach(ctx, "shop.example.test", second.ChainPEM, second.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if got := get(); !bytes.Equal(got.Raw, second.Leaf.Raw) || time.Now().After(first.Leaf.NotAfter) {
		t.Fatalf("renewed certificate not served before the first expired (now %v, expiry %v)", time.Now(), first.Leaf.NotAfter)
	}
	if n.workers(t) != workers || n.reloads() != 0 {
		t.Fatalf("nginx reloaded during issue and renewal: workers %s → %s, %d reloads", workers, n.workers(t), n.reloads())
	}
	// The key nginx was given is the one issued, and the chain verifies.
	b, _ := pem.Decode(second.ChainPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("chain does not start with a certificate")
	}
}
