package server

import (
	"crypto/ed25519"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/internal/consoletoken"
)

// consoleKey is the browser console's signing key (from the KEK).
func (s *Server) consoleKey() (ed25519.PrivateKey, error) {
	if err := s.initWebhooks(); err != nil {
		return nil, fmt.Errorf("console key: key-encryption key: %w", err)
	}
	return s.cfg.Webhooks.rt.console, nil
}

// consolePublicKey is what agents are told in their HelloAck (nil without a KEK).
func (s *Server) consolePublicKey() []byte {
	k, err := s.consoleKey()
	if err != nil {
		return nil
	}
	return k.Public().(ed25519.PublicKey)
}

// console signs a console token for c and returns the base URL of the
// console listener of c.Node's agent, as it announced it in its session.
func (s *Server) console(c consoletoken.Claims) (base, token string, err error) {
	sess := s.AgentSessions()
	if sess == nil {
		return "", "", httpapi.ErrNodeOffline
	}
	base, ok := sess.ConsoleURL(c.Node)
	if !ok {
		return "", "", httpapi.ErrNodeOffline
	}
	if base == "" {
		return "", "", httpapi.ErrNoConsole
	}
	k, err := s.consoleKey()
	if err != nil {
		return "", "", err
	}
	tok, err := consoletoken.Sign(k, c)
	if err != nil {
		return "", "", err
	}
	return base, tok, nil
}
