package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/registrar/epp"
)

// newEPPRegistrar is the EPP client (registrar/epp) configured by c; it
// connects on first use.
func newEPPRegistrar(c *DomainRegConfig, log *slog.Logger) (registrar.Registrar, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.EPPServerName}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(c.EPPAddr)
	}
	if c.EPPCAFile != "" {
		pemBytes, err := os.ReadFile(c.EPPCAFile)
		if err != nil {
			return nil, fmt.Errorf("registrar-epp-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("registrar-epp-ca-file %s: no PEM certificate in it", c.EPPCAFile)
		}
		tc.RootCAs = pool
	}
	if c.EPPCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.EPPCertFile, c.EPPKeyFile)
		if err != nil {
			return nil, fmt.Errorf("registrar-epp-cert-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return epp.New(epp.Config{Addr: c.EPPAddr, TLS: tc, ClientID: c.EPPClientID, Password: c.password, HostObjects: c.EPPHostObjects, Logger: log})
}
