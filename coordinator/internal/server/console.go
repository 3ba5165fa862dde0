package server

import (
	"crypto/ed25519"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/internal/consoletoken"
	pb "github.com/hostplane/hostplane/proto"
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

// consoleSealKey is what agents of protocol 1.5 are told in their HelloAck
// (nil without a KEK).
func (s *Server) consoleSealKey() []byte {
	if _, err := s.consoleKey(); err != nil {
		return nil
	}
	return s.cfg.Webhooks.rt.consoleSeal
}

// console signs a console token for c and returns the base URL of the
// console listener of c.Node's agent, as it announced it in its session.
// The token is hpc2, its claims (the node id, the VM name) sealed, when the
// agent's session is of protocol 1.5 or later (it was told the sealing key
// in its HelloAck); hpc1, which any agent accepts, for an older agent.
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
	var tok string
	if v, ok := sess.ProtocolVersion(c.Node); ok && v >= pb.ProtocolConsoleSealed && s.cfg.Webhooks.rt.consoleSeal != nil {
		tok, err = consoletoken.Seal(k, s.cfg.Webhooks.rt.consoleSeal, c)
	} else {
		tok, err = consoletoken.Sign(k, c)
	}
	if err != nil {
		return "", "", err
	}
	return base, tok, nil
}
