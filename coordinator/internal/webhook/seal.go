package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KEKSize is the size of the key-encryption key (AES-256).
const KEKSize = 32

// sealedPrefix versions the sealed format: "v1." + base64(nonce || ciphertext).
const sealedPrefix = "v1."

// Sealer encrypts webhook secrets under the coordinators' key-encryption key with
// AES-256-GCM. The subscription id is authenticated with the ciphertext, so a
// sealed secret cannot be moved to another subscription.
type Sealer struct {
	aead cipher.AEAD
	fp   string
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(kek []byte) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("webhook kek: want %d bytes, got %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("webhook kek: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webhook kek: %w", err)
	}
	mac := hmac.New(sha256.New, kek)
	mac.Write([]byte(kekFingerprintLabel))
	return &Sealer{aead: aead, fp: hex.EncodeToString(mac.Sum(nil)[:16])}, nil
}

// kekFingerprintLabel is what the KEK fingerprint authenticates.
const kekFingerprintLabel = "hostplane key-encryption key fingerprint v1"

// Fingerprint identifies the key-encryption key without revealing it: the
// first 16 bytes of HMAC-SHA256(KEK, a fixed label), in hex. Coordinators
// compare fingerprints to find one started with another --webhook-kek-file.
func (s *Sealer) Fingerprint() string { return s.fp }

func aad(webhookID string) []byte { return []byte("hostplane webhook secret " + webhookID) }

// Seal encrypts secret for the subscription webhookID.
func (s *Sealer) Seal(webhookID, secret string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal webhook secret: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(secret), aad(webhookID))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// ErrUnseal means a sealed secret could not be opened: another KEK sealed it, or
// it was altered.
var ErrUnseal = errors.New("webhook secret cannot be unsealed with this coordinator's key-encryption key")

// Open decrypts a sealed secret of webhookID.
func (s *Sealer) Open(webhookID, sealed string) (string, error) {
	raw, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", ErrUnseal
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", ErrUnseal
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, b[:n], b[n:], aad(webhookID))
	if err != nil {
		return "", ErrUnseal
	}
	return string(pt), nil
}

// LoadOrCreateKEK reads the key-encryption key file (64 hex characters). When
// the file is absent and create is true, a fresh key is written with mode 0600.
// Every coordinator of a cluster must be given the same file.
func LoadOrCreateKEK(path string, create bool) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key := make([]byte, KEKSize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("webhook kek %s: %w", path, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("webhook kek %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKEK(path, false) // another process won the race
		}
		if err != nil {
			return nil, fmt.Errorf("webhook kek %s: %w", path, err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("webhook kek %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("webhook kek %s: %w", path, err)
		}
		return key, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("webhook kek: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("webhook kek %s: mode %04o lets other users read it; chmod 600", path, st.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != KEKSize {
		return nil, fmt.Errorf("webhook kek %s: want %d hex characters", path, 2*KEKSize)
	}
	return key, nil
}

// SecretPrefix starts every webhook signing secret.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh signing secret (32 random bytes, base64url) and the
// hint (its last 4 characters) kept for the masked form.
func NewSecret() (secret, hint string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("webhook: crypto/rand failed: " + err.Error())
	}
	secret = SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, secret[len(secret)-4:]
}
