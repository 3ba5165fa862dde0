package sitetls

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/acmetest"
	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/tests/framework"
)

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
// again without a reload, and served before the first certificate expired.
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
	// An order takes about 3-7 s (lego polls), more under load; the renewal
	// window (below) ends about 10 s after issue, so the renewed certificate
	// has well over a minute to be served before the first one expires.
	life := 2 * time.Minute
	pb := acmetest.Start(t, dns.Addr, httpPort, life)

	key, err := certissue.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certissue.New(certissue.Config{DirectoryURL: pb.Dir, HTTPClient: pb.Client, Profile: "shortlived"},
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
	roots := pb.Root(t)
	get := func() *x509.Certificate {
		t.Helper()
		resp, body := framework.GetHTTPS(t, n.addr, "shop.example.test", roots)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "host=shop.example.test") {
			t.Fatalf("HTTPS: %d %s", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := get(); !bytes.Equal(got.Raw, first.Leaf.Raw) {
		t.Fatal("served another certificate than the one issued")
	}

	// Renewal when pebble's renewal information (ARI) says so. Pebble's own
	// window for a certificate shorter than two days is its whole life, and
	// lego picks a uniformly random time in it: a pick in the last seconds
	// (33.7 s and 34.8 s into a 39 s life in two failed CI runs, with orders
	// of 7 s) left no time to order, at any load. So pebble is told to suggest a window of its own, 3-6 s from
	// now; RenewAt must pick in it, which the fallback without ARI (a third
	// of the life before expiry) would not.
	now := time.Now().Round(0) // wall clock only: ARI's times have no monotonic reading
	winStart, winEnd := now.Add(3*time.Second), now.Add(6*time.Second)
	if fb := certissue.Fallback(first.Leaf); !fb.After(winEnd) {
		t.Fatalf("the fallback renewal time %v falls in the window %v-%v: the test cannot tell ARI from it", fb, winStart, winEnd)
	}
	pb.SetRenewalWindow(t, first.Leaf, winStart, winEnd)
	at, ari := iss.RenewAt(ctx, first.Leaf, now)
	if !ari {
		t.Fatal("pebble gave no renewal information (ARI)")
	}
	if at.Before(winStart) || at.After(winEnd) {
		t.Fatalf("renew at %v, outside ARI's suggested window %v-%v", at, winStart, winEnd)
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
