package server

import (
	"errors"
	"log/slog"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
)

// newEPPRegistrar connects the EPP client (registrar/epp) configured by c.
func newEPPRegistrar(c *DomainRegConfig, log *slog.Logger) (registrar.Registrar, error) {
	_ = log
	return nil, errors.New("the EPP client is not built into this coordinator yet; --registrar-epp-addr " + c.EPPAddr + " cannot be used")
}
