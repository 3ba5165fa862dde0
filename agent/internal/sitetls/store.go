package sitetls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hostplane/hostplane/internal/atomicfile"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Store keeps the certificates of the node's custom domains as
// CertsDir/<name>.pem (chain then key, root:Group 0640: nginx's workers, not
// its master, read them) and checks each change with a real handshake.
type Store struct {
	CertsDir string
	// GID is the group of the directory, and so of the files (www-data's);
	// -1 leaves it.
	GID int
	// CheckAddr is where nginx's TLS server answers ("127.0.0.1:443").
	CheckAddr string
	// CheckTimeout bounds the handshake check (5 s when zero).
	CheckTimeout time.Duration

	mu sync.Mutex // one change at a time: a rollback restores what this change replaced

	stampMu sync.Mutex
	stamp   time.Time // the mtime of the last file written (write)
}

// ErrCheck means the file was written but nginx did not serve it: the
// previous state was put back.
var ErrCheck = errors.New("tls handshake check failed")

// Path is the file of a validated name.
func (s *Store) Path(name string) string { return filepath.Join(s.CertsDir, name+".pem") }

// checkName accepts only the canonical ASCII form validate.Domain returns,
// and the node's default certificate.
func checkName(name string) error {
	if name == DefaultName {
		return nil
	}
	ascii, err := validate.Domain(name)
	if err != nil {
		return err
	}
	if ascii != name {
		return fmt.Errorf("%w: domain %q: give its ASCII form %q", validate.ErrInvalid, name, ascii)
	}
	return nil
}

// ParsePair checks a PEM chain and key for name: the key matches the leaf,
// the leaf is valid now and covers name. It returns the leaf.
func ParsePair(name string, chainPEM, keyPEM []byte, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate and key: %v", validate.ErrInvalid, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", validate.ErrInvalid, err)
	}
	if name != DefaultName {
		if err := leaf.VerifyHostname(name); err != nil {
			return nil, fmt.Errorf("%w: certificate does not cover %s: %v", validate.ErrInvalid, name, err)
		}
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: certificate for %s is valid %s to %s, not now", validate.ErrInvalid, name,
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	return leaf, nil
}

// bundle is the one file nginx reads: the chain, then the key, re-encoded
// so nothing but PEM blocks we produced reaches nginx. ECDSA keys are
// written as SEC 1 ("EC PRIVATE KEY", with the curve and the public point)
// and RSA keys as PKCS #1: the lua cache builds those without OpenSSL 3.0's
// decoders (~0.6 ms for PKCS #8 through them), an EC key on its
// certificate's parsed public key. Ed25519 stays PKCS #8 (its only form).
func bundle(chainPEM []byte, key crypto.PrivateKey) ([]byte, error) {
	var out bytes.Buffer
	rest := chainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes}); err != nil {
			return nil, err
		}
	}
	var kb *pem.Block
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		kb = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case *rsa.PrivateKey:
		kb = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	default:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		kb = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	if err := pem.Encode(&out, kb); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Attach installs (or replaces) name's certificate and checks that nginx
// now serves it for SNI name; on failure the previous file is back (or none)
// and the error wraps ErrCheck.
func (s *Store) Attach(ctx context.Context, name string, chainPEM, keyPEM []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	leaf, err := ParsePair(name, chainPEM, keyPEM, time.Now())
	if err != nil {
		return err
	}
	pair, _ := tls.X509KeyPair(chainPEM, keyPEM)
	switch pair.PrivateKey.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return fmt.Errorf("%w: unsupported key type %T", validate.ErrInvalid, pair.PrivateKey)
	}
	data, err := bundle(chainPEM, pair.PrivateKey)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.Path(name)
	old, oldErr := os.ReadFile(path)
	if oldErr != nil && !errors.Is(oldErr, os.ErrNotExist) {
		return oldErr
	}
	if err := s.write(path, data); err != nil {
		return err
	}
	if err := s.check(ctx, name, leaf.Raw); err != nil {
		s.rollback(path, old, oldErr == nil)
		return err
	}
	return nil
}

func (s *Store) rollback(path string, old []byte, had bool) {
	if had {
		_ = s.write(path, old)
	} else {
		_ = os.Remove(path)
	}
}

// Detach removes name's certificate; nginx stops serving it at once (the
// next handshake finds no file).
func (s *Store) Detach(_ context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.Path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(s.CertsDir)
}

// Has tells whether name has a certificate file.
func (s *Store) Has(name string) bool {
	if checkName(name) != nil {
		return false
	}
	_, err := os.Stat(s.Path(name))
	return err == nil
}

// write replaces path atomically (a temporary file in the same directory,
// written, fsynced, renamed over), then fsyncs the directory. The file's
// group is the directory's (set-group-ID, made by Prepare), so nginx's
// workers can read it and nobody else. The new file's mtime is later, by at
// least a nanosecond, than that of any version of path this store wrote or
// found: with the new inode of the rename, that is how the lua cache tells
// a changed file from the one it parsed without reading it (a version's
// inode number can be reused once it is gone; its mtime cannot).
func (s *Store) write(path string, data []byte) error {
	s.stampMu.Lock()
	stamp := time.Now()
	if !stamp.After(s.stamp) {
		stamp = s.stamp.Add(time.Nanosecond)
	}
	if st, err := os.Stat(path); err == nil && !stamp.After(st.ModTime()) {
		stamp = st.ModTime().Add(time.Nanosecond)
	}
	s.stamp = stamp
	s.stampMu.Unlock()
	if err := atomicfile.WriteStamped(path, data, 0o640, stamp); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// checkStamps fails unless dir keeps file times to the nanosecond (ext4
// with 256-byte inodes, xfs, btrfs, tmpfs): the lua cache tells versions of
// a file apart by them.
func checkStamps(dir string) error {
	probe := filepath.Join(dir, ".mtime-probe")
	want := time.Unix(1_700_000_000, 123_456_789)
	err := atomicfile.WriteStamped(probe, nil, 0o600, want)
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(probe); err == nil && !st.ModTime().Equal(want) {
			err = fmt.Errorf("certs dir %s keeps file times to %v, not to the nanosecond: put it on ext4 (256-byte inodes), xfs, btrfs or tmpfs", dir, st.ModTime())
		}
	}
	_ = os.Remove(probe)
	return err
}

// Prepare makes CertsDir (root:GID 2750: files created in it get GID) and the node's default certificate
// (self-signed, for handshakes without a usable SNI) if it is missing.
func (s *Store) Prepare() error {
	if err := os.MkdirAll(s.CertsDir, 0o750); err != nil {
		return err
	}
	if s.GID >= 0 {
		if err := os.Chown(s.CertsDir, 0, s.GID); err != nil {
			return err
		}
	}
	if err := os.Chmod(s.CertsDir, 0o750|os.ModeSetgid); err != nil {
		return err
	}
	if err := checkStamps(s.CertsDir); err != nil {
		return err
	}
	if _, err := os.Stat(s.Path(DefaultName)); err == nil {
		return nil
	}
	return s.writeSelfSigned(DefaultName, "hostplane-default", 10*365*24*time.Hour)
}

// writeSelfSigned writes, as name's file and without a handshake check, a new
// self-signed certificate for cn valid from now for validFor, in the form
// Attach writes.
func (s *Store) writeSelfSigned(name, cn string, validFor time.Duration) error {
	chain, key, err := SelfSigned(cn, time.Now(), validFor)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return err
	}
	data, err := bundle(chain, pair.PrivateKey)
	if err != nil {
		return err
	}
	return s.write(s.Path(name), data)
}

func (s *Store) timeout() time.Duration {
	if s.CheckTimeout > 0 {
		return s.CheckTimeout
	}
	return 5 * time.Second
}

// check does a TLS handshake with SNI name and compares the served leaf
// with the one just written.
func (s *Store) check(ctx context.Context, name string, want []byte) error {
	got, err := ServedLeaf(ctx, s.CheckAddr, name, s.timeout())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCheck, name, err)
	}
	if !bytes.Equal(got.Raw, want) {
		return fmt.Errorf("%w: %s: nginx served %q, not the new certificate", ErrCheck, name, got.Subject.CommonName)
	}
	return nil
}

// ServedLeaf handshakes with addr using SNI name and returns the leaf the
// server presented (not verified: the caller compares it).
func ServedLeaf(ctx context.Context, addr, name string, timeout time.Duration) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{ServerName: name, InsecureSkipVerify: true}} //nolint:gosec // compared by bytes
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}
