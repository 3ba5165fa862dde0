package nodes

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
)

// caSealID binds the sealed CA key to its certificate.
func caSealID(fp string) string { return "node-ca/" + fp }

// loadCA returns the CA from the FSM, unsealed (nil, nil when there is none).
func (s *Service) loadCA() (*session.CA, error) {
	var rec store.NodeCA
	err := s.deps.State.Read(func(r store.ReadTx) (err error) { rec, err = r.NodeCA(); return })
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load node ca: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ca != nil && s.ca.Fingerprint == rec.Fingerprint {
		return s.ca, nil
	}
	sl, err := s.deps.Sealer()
	if err != nil {
		return nil, err
	}
	keyText, err := sl.Open(caSealID(rec.Fingerprint), rec.SealedKey)
	if err != nil {
		return nil, fmt.Errorf("unseal node ca key (every coordinator needs the same --webhook-kek-file): %w", err)
	}
	ca, err := session.LoadCA(rec.CertDER, []byte(keyText))
	if err != nil {
		return nil, err
	}
	s.ca = ca
	return ca, nil
}

// EnsureCA creates the CA on first use (leader only: it proposes) and returns
// its fingerprint.
func (s *Service) EnsureCA(ctx context.Context) (string, error) {
	ca, err := s.loadCA()
	if err != nil || ca != nil {
		if ca != nil {
			return ca.Fingerprint, nil
		}
		return "", err
	}
	ca, keyDER, err := session.NewCA(s.now())
	if err != nil {
		return "", err
	}
	sl, err := s.deps.Sealer()
	if err != nil {
		return "", err
	}
	sealed, err := sl.Seal(caSealID(ca.Fingerprint), string(keyDER))
	if err != nil {
		return "", fmt.Errorf("seal node ca key: %w", err)
	}
	if _, err := s.propose(ctx, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: ca.DER, SealedKey: sealed, Fingerprint: ca.Fingerprint}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		return "", fmt.Errorf("create node ca: %w", err)
	}
	ca, err = s.loadCA() // another request may have won
	if err != nil || ca == nil {
		return "", fmt.Errorf("create node ca: %w", errors.Join(err, errors.New("not found after create")))
	}
	return ca.Fingerprint, nil
}

// publicKeyHash identifies a node's key (base64url SHA-256 of its PKIX form).
func publicKeyHash(pub any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("node public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// CAKeyOpens reports whether sl (this coordinator's key-encryption key) opens
// the node CA's sealed key, i.e. whether it is the KEK the CA was sealed under.
func CAKeyOpens(sl *webhook.Sealer, rec store.NodeCA) bool {
	_, err := sl.Open(caSealID(rec.Fingerprint), rec.SealedKey)
	return err == nil
}
