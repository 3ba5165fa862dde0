package session

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hostplane/hostplane/internal/atomicfile"
	"github.com/hostplane/hostplane/internal/signerkey"
)

// Creds are the node's certificate, its key and the coordinators' CA.
type Creds struct {
	NodeID string
	Cert   *x509.Certificate
	Key    crypto.Signer
	CA     *x509.Certificate
}

// TLS returns the certificate for a TLS client.
func (c *Creds) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
}

// RenewAt is when two thirds of the certificate's lifetime has passed.
func (c *Creds) RenewAt() time.Time {
	life := c.Cert.NotAfter.Sub(c.Cert.NotBefore)
	return c.Cert.NotBefore.Add(life * 2 / 3)
}

const (
	keyFile  = "node.key"
	certFile = "node.crt"
	caFile   = "ca.crt"
)

// ErrNoCreds means the node has not enrolled yet.
var ErrNoCreds = errors.New("node has no certificate yet")

// LoadCreds reads the credentials from dir.
func LoadCreds(dir string) (*Creds, error) {
	read := func(name, typ string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoCreds
		}
		if err != nil {
			return nil, fmt.Errorf("load node credentials: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != typ {
			return nil, fmt.Errorf("load node credentials: %s is not a PEM %s", name, typ)
		}
		return blk.Bytes, nil
	}
	keyDER, err := read(keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	certDER, err := read(certFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	caDER, err := read(caFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	signer, err := signerkey.ParsePKCS8(keyDER)
	if err != nil {
		return nil, fmt.Errorf("load node credentials: key: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("load node credentials: certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("load node credentials: ca: %w", err)
	}
	return &Creds{NodeID: cert.Subject.CommonName, Cert: cert, Key: signer, CA: ca}, nil
}

// Save writes the credentials to dir (mode 0600, each file replaced atomically,
// the certificate last so a crash leaves the old pair or the new one usable).
func (c *Creds) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{caFile, "CERTIFICATE", c.CA.Raw}, {keyFile + ".new", "PRIVATE KEY", keyDER}, {certFile + ".new", "CERTIFICATE", c.Cert.Raw}} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return fmt.Errorf("save node credentials: %w", err)
		}
	}
	if err := os.Rename(filepath.Join(dir, keyFile+".new"), filepath.Join(dir, keyFile)); err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	if err := os.Rename(filepath.Join(dir, certFile+".new"), filepath.Join(dir, certFile)); err != nil {
		return fmt.Errorf("save node credentials: %w", err)
	}
	return nil
}

// newKeyAndCSR makes a fresh key and a CSR naming nodeID.
func newKeyAndCSR(nodeID string) (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("node csr: %w", err)
	}
	return key, csr, nil
}
