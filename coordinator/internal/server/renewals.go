package server

import (
	"context"
	"errors"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/renewal"
	"github.com/spf13/pflag"
)

// RenewalConfig is the leader's renewal job (issue 14): invoices of bought
// servers' next periods, payment from the wallet on the due date,
// suspension and termination of unpaid ones.
type RenewalConfig struct {
	InvoiceDays   int
	SuspendDays   int
	TerminateDays int
	Interval      time.Duration
}

func renewalDefaults() RenewalConfig {
	return RenewalConfig{InvoiceDays: 7, SuspendDays: 3, Interval: time.Minute}
}

func bindRenewalFlags(fs *pflag.FlagSet, c *RenewalConfig) {
	fs.IntVar(&c.InvoiceDays, "renewal-invoice-days", c.InvoiceDays, "issue a bought server's renewal invoice this many days before its paid_until (0-60); the wallet pays it on paid_until if it can")
	fs.IntVar(&c.SuspendDays, "suspend-after-days", c.SuspendDays, "suspend a server (stopped, power-on refused) whose renewal is unpaid this many days after paid_until (0-365; 0: on the due date)")
	fs.IntVar(&c.TerminateDays, "terminate-after-days", c.TerminateDays, "terminate a server whose renewal is unpaid this many days after paid_until (0: never; else at least --suspend-after-days)")
	fs.DurationVar(&c.Interval, "renewal-interval", c.Interval, "how often the leader sweeps renewals")
}

func (c *RenewalConfig) policy() fsm.RenewalPolicy {
	return fsm.RenewalPolicy{InvoiceDays: c.InvoiceDays, SuspendDays: c.SuspendDays, TerminateDays: c.TerminateDays}
}

func (c *RenewalConfig) validate() error {
	if c.Interval == 0 {
		c.Interval = renewalDefaults().Interval
	}
	if c.Interval < 100*time.Millisecond {
		return errors.New("renewal-interval must be at least 100ms")
	}
	return fsm.CheckRenewalPolicy(c.policy())
}

// renewalJobs is the leader's renewal sweep.
func (s *Server) renewalJobs() []func(ctx context.Context) {
	now := s.now()
	var kick func()
	if s.cfg.Nodes.rt.disp != nil {
		kick = s.cfg.Nodes.rt.disp.Kick
	}
	every := s.cfg.Renewals.Interval
	if every <= 0 {
		every = renewalDefaults().Interval
	}
	j := &renewal.Job{Policy: s.cfg.Renewals.policy(), Interval: every, Now: now,
		View: s.Node.FSM.View, Apply: s.API.Apply, Log: s.log.With("component", "renewals")}
	if s.domainDriver != nil {
		pol := s.cfg.DomainReg.policy()
		j.Domains, j.KickDomains = &pol, s.domainDriver.Kick
	}
	return []func(ctx context.Context){func(ctx context.Context) { j.Run(ctx, kick) }}
}
