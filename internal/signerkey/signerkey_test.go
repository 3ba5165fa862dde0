package signerkey

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"
)

// TestParsePKCS8: the keys that can sign come back as signers that sign;
// an X25519 key, which cannot, and bytes that are no PKCS#8 key are refused.
func TestParsePKCS8(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, k := range map[string]any{"ed25519": ed, "ecdsa": ec, "rsa": rs} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParsePKCS8(der)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		msg, opts := []byte("hostplane"), crypto.Hash(0)
		if name != "ed25519" {
			d := sha256.Sum256(msg)
			msg, opts = d[:], crypto.SHA256
		}
		if _, err := s.Sign(rand.Reader, msg, opts); err != nil {
			t.Errorf("%s: the parsed key does not sign: %v", name, err)
		}
	}
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(x)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ParsePKCS8(der); s != nil || err == nil || err.Error() != "a *ecdh.PrivateKey cannot sign" {
		t.Errorf("x25519 key: %v, %v; want the refusal 'a *ecdh.PrivateKey cannot sign'", s, err)
	}
	if s, err := ParsePKCS8([]byte("not a key")); s != nil || err == nil || strings.Contains(err.Error(), "cannot sign") {
		t.Errorf("bytes that are no key: %v, %v; want the parse error", s, err)
	}
}
