package session

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/hostplane/hostplane/internal/signerkey"
	"github.com/hostplane/hostplane/pkg/validate"
	pb "github.com/hostplane/hostplane/proto"
)

// CA is the coordinators' certificate authority for agent sessions. Its key is
// kept sealed in the FSM; a coordinator opens it with the KEK to sign node
// certificates and its own serving certificate.
type CA struct {
	Cert        *x509.Certificate
	DER         []byte
	Key         crypto.Signer
	Fingerprint string
}

// ServerCommonName is the subject of every coordinator's session certificate;
// agents check it and the CA, not a host name, since they dial addresses.
const ServerCommonName = "hostplane-coordinator"

// clockSkew backdates certificates so a node whose clock is slightly behind accepts them.
const clockSkew = 5 * time.Minute

// NewCA creates a CA valid for ten years and returns it with its PKCS#8 key.
func NewCA(now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("create node ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "hostplane node CA"},
		NotBefore: now.Add(-clockSkew), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create node ca certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode node ca key: %w", err)
	}
	ca, err := LoadCA(der, keyDER)
	return ca, keyDER, err
}

// LoadCA parses a CA certificate and its PKCS#8 key (keyDER may be nil for a
// verify-only CA).
func LoadCA(certDER, keyDER []byte) (*CA, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("parse node ca certificate: %w", err)
	}
	ca := &CA{Cert: cert, DER: certDER, Fingerprint: pb.CAFingerprint(certDER)}
	if keyDER != nil {
		signer, err := signerkey.ParsePKCS8(keyDER)
		if err != nil {
			return nil, fmt.Errorf("parse node ca key: %w", err)
		}
		ca.Key = signer
	}
	return ca, nil
}

// Pool is a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// SerialString is the form serials take in the FSM.
func SerialString(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// ValidNodeID reports whether id is an acceptable node id (it is the
// certificate's common name and a bbolt key): validate.NodeID.
func ValidNodeID(id string) bool { return validate.NodeID(id) == nil }

// ParseNodeCSR checks a PKCS#10 request's signature and returns it with the
// node id in its common name.
func ParseNodeCSR(der []byte) (*x509.CertificateRequest, string, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, "", fmt.Errorf("parse node csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("node csr signature: %w", err)
	}
	id := csr.Subject.CommonName
	if !ValidNodeID(id) {
		return nil, "", fmt.Errorf("node csr: common name %q is not a valid node id (a-z0-9._-, up to 63)", id)
	}
	return csr, id, nil
}

// IssuedCert is a signed certificate and what the FSM records of it.
type IssuedCert struct {
	DER      []byte
	Serial   string
	NotAfter time.Time
}

// SignNode signs a node certificate (client auth) for the CSR's key. The caller
// does this before proposing the command that records the serial.
func (ca *CA) SignNode(csr *x509.CertificateRequest, nodeID string, now time.Time, ttl time.Duration) (IssuedCert, error) {
	if ca.Key == nil {
		return IssuedCert{}, errors.New("sign node certificate: ca key not loaded")
	}
	serial, err := newSerial()
	if err != nil {
		return IssuedCert{}, err
	}
	notAfter := now.Add(ttl).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: nodeID},
		// Backdated a little for clocks behind ours, but not so much that the
		// agent's "renew after two thirds" point moves far.
		NotBefore: now.Add(-min(clockSkew, ttl/10)), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return IssuedCert{}, fmt.Errorf("sign node certificate %s: %w", nodeID, err)
	}
	return IssuedCert{DER: der, Serial: hex.EncodeToString(serial.Bytes()), NotAfter: notAfter}, nil
}

// ServerCert makes a coordinator's serving certificate (with the CA in its chain).
func (ca *CA) ServerCert(now time.Time, ttl time.Duration) (*tls.Certificate, error) {
	if ca.Key == nil {
		return nil, errors.New("server certificate: ca key not loaded")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server certificate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: ServerCommonName},
		NotBefore: now.Add(-clockSkew), NotAfter: now.Add(ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{ServerCommonName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, ca.DER}, PrivateKey: key, Leaf: leaf}, nil
}
