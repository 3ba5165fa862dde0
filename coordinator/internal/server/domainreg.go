package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/domainreg"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/spf13/pflag"
)

// DomainRegConfig is how the coordinator reaches the domain registry (an
// EPP server, RFC 5730-5734 over TLS) and its renewal policy for domains.
// The password is read from a file at start, sent only in the EPP login
// and never logged or written to Raft.
type DomainRegConfig struct {
	// EPPAddr is the registry's host:port; empty: no registrar, the
	// /v1/domains routes that need one answer 503.
	EPPAddr       string
	EPPClientID   string
	EPPPassFile   string
	EPPCAFile     string // PEM roots the registry's certificate must chain to (empty: the system's)
	EPPServerName string // TLS server name (empty: EPPAddr's host)
	EPPCertFile   string // client certificate (registries that require one)
	EPPKeyFile    string
	// EPPHostObjects delegates with RFC 5732 host objects (host:create
	// before a domain names a host) instead of host attributes; a domain's
	// child name servers with glue addresses (PUT /v1/domains/:id/hosts/:name)
	// need it.
	EPPHostObjects bool
	// RenewDays: auto-renewing domains are paid and renewed this many days
	// before expiry; ReminderDays: the others get domain.expiring then.
	RenewDays    int
	ReminderDays string
	// FailpointFile (crash tests only): when the file holds a step name
	// (domainreg.Step*) as the driver reaches it, the file is removed and
	// the process is killed there.
	FailpointFile string

	password string
	// Registrar, when set in code (tests), is used instead of EPP.
	Registrar registrar.Registrar
}

func domainRegDefaults() DomainRegConfig {
	return DomainRegConfig{RenewDays: 30, ReminderDays: "30,7,1"}
}

func bindDomainRegFlags(fs *pflag.FlagSet, c *DomainRegConfig) {
	fs.StringVar(&c.EPPAddr, "registrar-epp-addr", c.EPPAddr, "domain registry's EPP server, host:port (RFC 5734 TLS, usually port 700); empty: domain registration is off")
	fs.StringVar(&c.EPPClientID, "registrar-epp-client-id", c.EPPClientID, "registrar account at the registry (EPP clID)")
	fs.StringVar(&c.EPPPassFile, "registrar-epp-password-file", c.EPPPassFile, "file holding the registrar account's EPP password on one line (read at start; never logged or replicated)")
	fs.StringVar(&c.EPPCAFile, "registrar-epp-ca-file", c.EPPCAFile, "PEM file of the CA certificates the registry's TLS certificate must chain to (empty: the system's)")
	fs.StringVar(&c.EPPServerName, "registrar-epp-server-name", c.EPPServerName, "TLS server name of the registry (empty: the host of --registrar-epp-addr)")
	fs.StringVar(&c.EPPCertFile, "registrar-epp-cert-file", c.EPPCertFile, "client certificate (PEM) for registries that authenticate registrars by certificate")
	fs.StringVar(&c.EPPKeyFile, "registrar-epp-key-file", c.EPPKeyFile, "key (PEM) of --registrar-epp-cert-file")
	fs.BoolVar(&c.EPPHostObjects, "registrar-epp-host-objects", c.EPPHostObjects, "delegate with RFC 5732 host objects instead of host attributes (needed for a domain's child name servers with glue addresses)")
	fs.IntVar(&c.RenewDays, "domain-renew-days", c.RenewDays, "renew an auto-renewing domain (paid from the wallet) this many days before it expires (1-90)")
	fs.StringVar(&c.ReminderDays, "domain-reminder-days", c.ReminderDays, "days before expiry at which a domain that will not renew gets a domain.expiring event, comma-separated")
	fs.StringVar(&c.FailpointFile, "failpoint-file", c.FailpointFile, "crash tests only: kill the process when a step named in this file is reached")
	_ = fs.MarkHidden("failpoint-file")
}

func (c *DomainRegConfig) policy() fsm.DomainPolicy {
	p := fsm.DomainPolicy{RenewDays: c.RenewDays}
	for _, s := range strings.Split(c.ReminderDays, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			n = -1 // refused by CheckDomainPolicy
		}
		p.ReminderDays = append(p.ReminderDays, n)
	}
	return p
}

func (c *DomainRegConfig) validate() error {
	var errs []error
	if err := fsm.CheckDomainPolicy(c.policy()); err != nil {
		errs = append(errs, fmt.Errorf("domain-renew-days / domain-reminder-days: %w", err))
	}
	if c.EPPAddr == "" {
		return errors.Join(errs...)
	}
	if _, _, err := net.SplitHostPort(c.EPPAddr); err != nil {
		errs = append(errs, fmt.Errorf("registrar-epp-addr %q: must be host:port", c.EPPAddr))
	}
	if c.EPPClientID == "" {
		errs = append(errs, errors.New("registrar-epp-client-id is required with registrar-epp-addr"))
	}
	var err error
	if c.password, err = secretLine(c.EPPPassFile, "registrar-epp-password-file", "registrar-epp-addr", "password"); err != nil {
		errs = append(errs, err)
	}
	if (c.EPPCertFile == "") != (c.EPPKeyFile == "") {
		errs = append(errs, errors.New("registrar-epp-cert-file and registrar-epp-key-file go together"))
	}
	return errors.Join(errs...)
}

// domainRegistrar is the configured registry client (nil without one).
func (s *Server) domainRegistrar() (registrar.Registrar, error) {
	c := &s.cfg.DomainReg
	if c.Registrar != nil {
		return c.Registrar, nil
	}
	if c.EPPAddr == "" {
		return nil, nil
	}
	return newEPPRegistrar(c, s.log.With("component", "epp"))
}

// startDomainReg wires the registered-domain routes and the leader's driver.
func (s *Server) startDomainReg() error {
	reg, err := s.domainRegistrar()
	if err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	if reg == nil {
		return nil
	}
	s.domainRegistry = reg
	s.domainDriver = &domainreg.Driver{Registrar: reg, State: s.Node.FSM, Apply: s.API.Apply, Now: s.now(),
		Log: s.log.With("component", "domains"), Failpoint: failpoint(s.cfg.DomainReg.FailpointFile, s.log),
		ClientID: s.cfg.DomainReg.EPPClientID}
	deps := &httpapi.DomainDeps{Registrar: reg, Kick: s.domainDriver.Kick}
	if rt := s.cfg.Webhooks.rt; rt != nil && rt.sealer != nil {
		// Transfer auth codes are sealed with the coordinators' KEK, as
		// webhook secrets are: never in Raft in the clear.
		s.domainDriver.OpenAuthCode, deps.SealAuthCode = rt.sealer.Open, rt.sealer.Seal
	}
	s.API.SetDomainDeps(deps)
	return nil
}

// domainRegJobs is the leader's registry driver.
func (s *Server) domainRegJobs() []func(ctx context.Context) {
	if s.domainDriver == nil {
		return nil
	}
	return []func(ctx context.Context){s.domainDriver.Run}
}

// now is the clock the coordinator's own commands carry and their ids are
// made at: the API's (Config.Clock when set, --test-clock-file, else the
// wall clock; never earlier than the latest time of an applied entry).
func (s *Server) now() func() time.Time { return s.API.Now }

// failpoint returns the crash-test hook of file (nil without one): the
// process kills itself at the step the file names.
func failpoint(file string, log interface{ Warn(string, ...any) }) func(step string) {
	if file == "" {
		return nil
	}
	var mu sync.Mutex
	return func(step string) {
		mu.Lock()
		defer mu.Unlock()
		raw, err := os.ReadFile(file)
		if err != nil || strings.TrimSpace(string(raw)) != step {
			return
		}
		_ = os.Remove(file)
		log.Warn("failpoint reached: killing the process", "step", step)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
