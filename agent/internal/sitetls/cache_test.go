package sitetls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// testCA is a root and an intermediate issuing leaves, as an ACME CA does
// (the chain a node serves is leaf + intermediate).
type testCA struct {
	key  crypto.Signer
	cert *x509.Certificate
	der  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hp test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl.SerialNumber, tpl.Subject = big.NewInt(2), pkix.Name{CommonName: "hp test intermediate"}
	interDER, err := x509.CreateCertificate(rand.Reader, tpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)
	return &testCA{key: interKey, cert: inter, der: interDER}
}

// issue returns name's chain (leaf, intermediate) and key as PEM.
func (ca *testCA) issue(t *testing.T, name string, key crypto.Signer) (chainPEM, keyPEM []byte) {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})...)
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestLuaCacheBounded: with a per-worker cache of 2 entries, 6 names with
// ECDSA, RSA and Ed25519 keys, all chained through one intermediate, are
// each served their own leaf and the intermediate, round after round while
// they are evicted and read again; a renewal of a cached name is served at
// once. Each key reaches nginx in the form its fast parser reads.
func TestLuaCacheBounded(t *testing.T) {
	n := startNginxCache(t, ModeLua, "", 2)
	ca := newTestCA(t)
	ctx := context.Background()
	ec := func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	ec384 := func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k }
	rsaKey := func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k }
	edKey := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	sites := []struct {
		name, block string
		key         func() crypto.Signer
	}{
		{"ec1.test", "EC PRIVATE KEY", ec}, {"ec2.test", "EC PRIVATE KEY", ec}, {"ec3.test", "EC PRIVATE KEY", ec384},
		{"rsa.test", "RSA PRIVATE KEY", rsaKey}, {"ed.test", "PRIVATE KEY", edKey}, {"ec4.test", "EC PRIVATE KEY", ec},
	}
	leaves := map[string][]byte{}
	for _, s := range sites {
		c, k := ca.issue(t, s.name, s.key())
		if err := n.store.Attach(ctx, s.name, c, k); err != nil {
			t.Fatalf("attach %s: %v\n%s", s.name, err, n.errorLog())
		}
		leaves[s.name] = leafDER(t, c)
		file, err := os.ReadFile(n.store.Path(s.name))
		if err != nil || !strings.Contains(string(file), "-----BEGIN "+s.block+"-----") {
			t.Fatalf("%s: the file's key is not a %s block (%v)", s.name, s.block, err)
		}
	}
	served := func(name string) (leaf, inter []byte) {
		t.Helper()
		d := tls.Dialer{Config: &tls.Config{ServerName: name, InsecureSkipVerify: true}} //nolint:gosec // compared by bytes
		c, err := d.DialContext(ctx, "tcp", n.addr)
		if err != nil {
			t.Fatalf("SNI %s: %v\n%s", name, err, n.errorLog())
		}
		defer c.Close()
		pc := c.(*tls.Conn).ConnectionState().PeerCertificates
		if len(pc) != 2 {
			t.Fatalf("SNI %s: %d certificates served, want leaf + intermediate", name, len(pc))
		}
		return pc[0].Raw, pc[1].Raw
	}
	for round := range 3 {
		for _, s := range sites {
			leaf, inter := served(s.name)
			if !bytes.Equal(leaf, leaves[s.name]) || !bytes.Equal(inter, ca.der) {
				t.Fatalf("round %d: SNI %s was not served its own chain", round, s.name)
			}
		}
	}
	// ec4.test was handshaken last, so it is in the cache: a renewal is
	// served on the next handshake.
	c, k := ca.issue(t, "ec4.test", ec())
	if err := n.store.Attach(ctx, "ec4.test", c, k); err != nil {
		t.Fatal(err)
	}
	if leaf, _ := served("ec4.test"); !bytes.Equal(leaf, leafDER(t, c)) {
		t.Fatal("the renewed ec4.test is not served")
	}
	if strings.Contains(n.errorLog(), "[error]") || strings.Contains(n.errorLog(), "[alert]") {
		t.Fatalf("nginx logged errors:\n%s", n.errorLog())
	}
	// Certificates were parsed the fast way (conf.go: the parse-only EC engine).
	if strings.Contains(n.errorLog(), "without the EC engine") {
		t.Fatalf("the lua cache parses certificates without its EC engine:\n%s", n.errorLog())
	}
	// ... and its EC keys sign without a provider copy (conf.go).
	for _, notice := range []string{"converted to provider keys", "parsed with a group each"} {
		if strings.Contains(n.errorLog(), notice) {
			t.Fatalf("the lua cache runs without its fast path (%q):\n%s", notice, n.errorLog())
		}
	}
}

// TestLuaCacheFileVersions: the cache tells a file's versions apart without
// reading it. A cached name whose file is rewritten in place (same inode, as
// an operator's editor may) or replaced by a file of the same size is served
// the new certificate on the next handshake; a removed file is not served
// from the cache.
func TestLuaCacheFileVersions(t *testing.T) {
	n := startNginxCache(t, ModeLua, "", 4)
	ca := newTestCA(t)
	ctx := context.Background()
	key := func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	leafOf := func(name string) []byte {
		t.Helper()
		leaf, err := ServedLeaf(ctx, n.addr, name, 3*time.Second)
		if err != nil {
			return nil
		}
		return leaf.Raw
	}
	c, k := ca.issue(t, "v.test", key())
	if err := n.store.Attach(ctx, "v.test", c, k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(leafOf("v.test"), leafDER(t, c)) {
		t.Fatal("v.test is not served its certificate")
	}
	path := n.store.Path("v.test")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Rewritten in place: the same inode.
	c2, k2 := ca.issue(t, "v.test", key())
	pair, err := tls.X509KeyPair(c2, k2)
	if err != nil {
		t.Fatal(err)
	}
	data, err := bundle(c2, pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Fatal("the in-place rewrite changed the inode")
	}
	if !bytes.Equal(leafOf("v.test"), leafDER(t, c2)) {
		t.Fatal("v.test rewritten in place is served its cached certificate")
	}
	// Replaced through the store by as many bytes: a new inode and mtime.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("no certificate of the same size in 100 tries")
		}
		c3, k3 := ca.issue(t, "v.test", key())
		p3, _ := tls.X509KeyPair(c3, k3)
		d3, _ := bundle(c3, p3.PrivateKey)
		if len(d3) != len(data) {
			continue
		}
		if err := n.store.Attach(ctx, "v.test", c3, k3); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(leafOf("v.test"), leafDER(t, c3)) {
			t.Fatal("v.test replaced by a file of the same size is served its cached certificate")
		}
		break
	}
	if err := n.store.Detach(ctx, "v.test"); err != nil {
		t.Fatal(err)
	}
	if leafOf("v.test") != nil {
		t.Fatal("a detached name is still served from the cache")
	}
}

// TestLuaCacheKeyOfItsCertificate: the lua cache builds an EC key on its
// certificate's public key, so it first checks that the file's key is that
// certificate's. A file whose key belongs to another certificate is not
// served (the handshake fails, nothing else is); a SEC 1 key written
// without its public point (optional in RFC 5915) is parsed alone and
// served.
func TestLuaCacheKeyOfItsCertificate(t *testing.T) {
	n := startNginxCache(t, ModeLua, "", 4)
	ca := newTestCA(t)
	ctx := context.Background()
	p256 := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	// foreign.test: its own certificate with another certificate's key.
	own, other := p256(), p256()
	chain, _ := ca.issue(t, "foreign.test", own)
	otherDER, err := x509.MarshalECPrivateKey(other)
	if err != nil {
		t.Fatal(err)
	}
	foreign := append(append([]byte{}, chain...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: otherDER})...)
	if err := n.store.write(n.store.Path("foreign.test"), foreign); err != nil {
		t.Fatal(err)
	}
	if leaf, err := ServedLeaf(ctx, n.addr, "foreign.test", 3*time.Second); err == nil {
		t.Fatalf("a file with another certificate's key was served (%s)", leaf.Subject.CommonName)
	}
	// nopub.test: its key without the public point.
	key := p256()
	chain, _ = ca.issue(t, "nopub.test", key)
	scalar, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	nopubDER, err := asn1.Marshal(struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	}{1, scalar, asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := x509.ParseECPrivateKey(nopubDER); err != nil || !k.Equal(key) {
		t.Fatalf("the key without its public point does not parse to the key: %v", err)
	}
	nopub := append(append([]byte{}, chain...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: nopubDER})...)
	if err := n.store.write(n.store.Path("nopub.test"), nopub); err != nil {
		t.Fatal(err)
	}
	leaf, err := ServedLeaf(ctx, n.addr, "nopub.test", 3*time.Second)
	if err != nil || !bytes.Equal(leaf.Raw, leafDER(t, chain)) {
		t.Fatalf("nopub.test is not served its certificate: %v\n%s", err, n.errorLog())
	}
	// The node still serves the rest: foreign.test broke nothing.
	c, k := ca.issue(t, "ok.test", p256())
	if err := n.store.Attach(ctx, "ok.test", c, k); err != nil {
		t.Fatalf("attach after the foreign key: %v\n%s", err, n.errorLog())
	}
	if strings.Contains(n.errorLog(), "[alert]") {
		t.Fatalf("nginx logged alerts:\n%s", n.errorLog())
	}
}
