package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/hostplane/hostplane/proto"
)

func TestBackoffJitterAndCap(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second, Rand: func() float64 { return 0 }}
	want := []time.Duration{50, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Delay(i); got != w*time.Millisecond {
			t.Errorf("attempt %d, rand 0: %s, want %s", i, got, w*time.Millisecond)
		}
	}
	b.Rand = func() float64 { return 0.999999 }
	if got := b.Delay(50); got > 2*time.Second || got < 1999*time.Millisecond {
		t.Errorf("attempt 50, rand ~1: %s, want just under the 2 s cap", got)
	}
	// Real jitter spreads a fleet out.
	b.Rand = nil
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		seen[b.Delay(3)] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays from 50 draws", len(seen))
	}
}

// fakeClock fires After at once and records the waits.
type fakeClock struct{ waits []time.Duration }

func (c *fakeClock) Now() time.Time { return time.Now() }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

// TestEnrolRetriesWithBackoff: with no coordinator answering, enrolment keeps
// cycling through the list with growing, jittered waits until ctx ends.
func TestEnrolRetriesWithBackoff(t *testing.T) {
	clock := &fakeClock{}
	a, err := New(Config{
		Coordinators: []string{"127.0.0.1:1", "127.0.0.1:2"}, JoinToken: pb.JoinToken{ID: "jt_0123456789", Secret: "abcdefghijklmnopqrstuvwxyz", CAFingerprint: pb.CAFingerprint([]byte("x"))}.String(),
		NodeID: "hv-1", Dir: t.TempDir(), DialTimeout: 50 * time.Millisecond, Clock: clock,
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond, Rand: func() float64 { return 0.5 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if err := a.Enrol(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enrol: %v", err)
	}
	if len(clock.waits) < 4 {
		t.Fatalf("waits %v", clock.waits)
	}
	bo := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond, Rand: func() float64 { return 0.5 }}
	for i, w := range clock.waits[:4] {
		if want := bo.Delay(i); w != want {
			t.Errorf("wait %d = %s, want %s", i, w, want)
		}
	}
}

func TestNewNeedsTokenOrCreds(t *testing.T) {
	if _, err := New(Config{Coordinators: []string{"x:1"}, NodeID: "hv-1", Dir: t.TempDir()}); err == nil {
		t.Fatal("no token and no credentials accepted")
	}
	if _, err := New(Config{Coordinators: []string{"x:1"}, NodeID: "Bad/ID", JoinToken: "t", Dir: t.TempDir()}); err == nil {
		t.Fatal("bad node id accepted")
	}
	if _, err := New(Config{NodeID: "hv-1", JoinToken: "t", Dir: t.TempDir()}); err == nil {
		t.Fatal("no coordinators accepted")
	}
}

func selfSigned(t *testing.T, cn string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames, tmpl.ExtKeyUsage = []string{serverName}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func TestEnrolTLSPinsTheCA(t *testing.T) {
	ca, caKey := selfSigned(t, "ca", true, nil, nil)
	leaf, _ := selfSigned(t, serverName, false, ca, caKey)
	other, otherKey := selfSigned(t, "other", true, nil, nil)
	otherLeaf, _ := selfSigned(t, serverName, false, other, otherKey)
	verify := enrolTLS(pb.CAFingerprint(ca.Raw)).VerifyPeerCertificate
	if err := verify([][]byte{leaf.Raw, ca.Raw}, nil); err != nil {
		t.Fatalf("pinned chain refused: %v", err)
	}
	if err := verify([][]byte{otherLeaf.Raw, other.Raw}, nil); err == nil {
		t.Fatal("a chain to another CA was accepted")
	}
	// The right CA sent along, but a leaf signed by another: refused.
	if err := verify([][]byte{otherLeaf.Raw, ca.Raw}, nil); err == nil {
		t.Fatal("a leaf of another CA was accepted with the pinned CA in the chain")
	}
	if err := verify([][]byte{leaf.Raw}, nil); err == nil {
		t.Fatal("a chain without the CA was accepted")
	}
}

func TestCredsRoundTrip(t *testing.T) {
	ca, caKey := selfSigned(t, "ca", true, nil, nil)
	leaf, key := selfSigned(t, "hv-1", false, ca, caKey)
	dir := filepath.Join(t.TempDir(), "creds")
	c := &Creds{NodeID: "hv-1", Cert: leaf, Key: key, CA: ca}
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"node.key", "node.crt", "ca.crt"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, st)
		}
	}
	got, err := LoadCreds(dir)
	if err != nil || got.NodeID != "hv-1" || !got.Cert.Equal(leaf) || !got.CA.Equal(ca) {
		t.Fatalf("load: %v %+v", err, got)
	}
	if _, err := LoadCreds(t.TempDir()); !errors.Is(err, ErrNoCreds) {
		t.Fatalf("empty dir: %v", err)
	}
	if !got.RenewAt().After(leaf.NotBefore) || !got.RenewAt().Before(leaf.NotAfter) {
		t.Fatalf("renew at %s", got.RenewAt())
	}
}
