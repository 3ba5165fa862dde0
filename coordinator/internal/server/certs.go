package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/certjob"
	"github.com/hostplane/hostplane/coordinator/internal/domains"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/pflag"
)

// ACMEConfig is where the leader orders the certificates of verified custom
// domains. Without a directory URL no certificate is ordered.
type ACMEConfig struct {
	Directory string
	// CAFile is a PEM bundle the ACME server's TLS certificate chains to
	// (pebble's own CA in tests); empty: the system roots.
	CAFile   string
	Email    string
	Profile  string
	Interval time.Duration

	roots *x509.CertPool
}

func acmeDefaults() ACMEConfig { return ACMEConfig{Interval: time.Minute} }

// fillDefaults gives a zero interval its default: before the flags are bound
// (so --help shows it) and in validate (a Config built in code).
func (c *ACMEConfig) fillDefaults() { c.Interval = cmp.Or(c.Interval, acmeDefaults().Interval) }

func bindACMEFlags(fs *pflag.FlagSet, c *ACMEConfig) {
	c.fillDefaults()
	fs.StringVar(&c.Directory, "acme-directory", c.Directory, "ACME directory URL the leader orders custom domains' certificates from, e.g. https://acme-v02.api.letsencrypt.org/directory (empty: none ordered)")
	fs.StringVar(&c.CAFile, "acme-ca-file", c.CAFile, "PEM file of the CA the ACME server's HTTPS certificate chains to (empty: the system's roots)")
	fs.StringVar(&c.Email, "acme-email", c.Email, "contact e-mail of the cluster's ACME account (optional)")
	fs.StringVar(&c.Profile, "acme-profile", c.Profile, "ACME certificate profile to ask for, e.g. shortlived (empty: the server's default)")
	fs.DurationVar(&c.Interval, "acme-interval", c.Interval, "how often the leader looks for custom domains whose certificate is due")
}

func (c *ACMEConfig) validate() error {
	c.fillDefaults()
	if c.Interval < 100*time.Millisecond {
		return errors.New("acme-interval must be at least 100ms")
	}
	if c.Directory == "" {
		return nil
	}
	if u, err := url.Parse(c.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("acme-directory %q: give an https:// URL", c.Directory)
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("acme-ca-file: %w", err)
		}
		c.roots = x509.NewCertPool()
		if !c.roots.AppendCertsFromPEM(b) {
			return fmt.Errorf("acme-ca-file %s: no PEM certificate in it", c.CAFile)
		}
	}
	return nil
}

// certJobs is the leader's certificate job (none without --acme-directory
// or agent sessions).
func (s *Server) certJobs() []func(ctx context.Context) {
	if s.cfg.ACME.Directory == "" || s.AgentSessions() == nil {
		return nil
	}
	return []func(ctx context.Context){s.certLoop}
}

func (s *Server) certLoop(ctx context.Context) {
	log := s.log.With("component", "certjob")
	owner := certjob.NewOwner() // this leadership's run: it takes over the orders of the ones before
	clock.Every(ctx, s.cfg.ACME.Interval, func() {
		s.certPass(ctx, log, owner)
	})
}

// certState is the replicated state as the certificate job and the ACME
// account need it.
type certState struct{ s *Server }

func (c certState) Propose(ctx context.Context, t fsm.CommandType, p any) error {
	_, err := c.s.propose(ctx, t, p)
	return err
}

func (c certState) ACMEAccount() (store.ACMEAccount, error) {
	var a store.ACMEAccount
	err := c.s.Node.FSM.Read(func(r store.ReadTx) (err error) { a, err = r.ACMEAccount(); return })
	return a, err
}

func (s *Server) certPass(ctx context.Context, log *slog.Logger, owner string) {
	var ds []store.CustomDomain
	if err := s.Node.FSM.Read(func(r store.ReadTx) (err error) { ds, err = r.CustomDomains(); return }); err != nil {
		log.Warn("reading custom domains", "err", err)
		return
	}
	due, waiting := certjob.DueFor(ds, time.Now(), owner)
	for _, w := range waiting {
		log.Info("certificate held back by the weekly limit of its registered domain", "domain", w.Domain, "until", w.Until)
	}
	if len(due) == 0 {
		return
	}
	c := s.cfg.ACME
	sealer, err := s.sealer()
	if err != nil {
		log.Warn("no key-encryption key: certificates cannot be ordered", "err", err)
		return
	}
	st := certState{s}
	acc, err := domains.ClusterAccount(ctx, st, sealer, c.Directory, c.Email)
	if err != nil {
		log.Warn("acme account", "err", err)
		return
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if c.roots != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12}}
	}
	cfg := certissue.Config{DirectoryURL: c.Directory, HTTPClient: hc, Profile: c.Profile, UserAgent: "hostplane"}
	if acc.URI == "" {
		iss, err := certissue.New(cfg, acc, nil)
		if err == nil {
			var uri string
			if uri, err = iss.Register(ctx); err == nil {
				acc.URI = uri
				err = domains.AccountRegistered(ctx, st, uri)
			}
		}
		if err != nil {
			log.Warn("acme account registration", "err", err)
			return
		}
	}
	r := &certjob.Runner{State: st, Node: &sessionNode{s: s}, Sealer: sealer, Config: cfg, Account: acc, Now: time.Now, Owner: owner}
	for _, o := range due {
		if ctx.Err() != nil {
			return
		}
		err := r.Run(ctx, o)
		if errors.Is(err, certjob.ErrInFlight) {
			continue
		}
		if err != nil {
			log.Warn("certificate", "domain", o.Domain.Domain, "reason", o.Reason, "err", err)
			continue
		}
		log.Info("certificate installed", "domain", o.Domain.Domain, "reason", o.Reason)
	}
}

// sessionNode reaches a custom domain's hosting node through hosting actions
// dispatched over its agent session.
type sessionNode struct{ s *Server }

// actionWait bounds one hosting action of the certificate job.
const actionWait = 2 * time.Minute

func (n *sessionNode) do(ctx context.Context, hostingID, command string, p action.Params, secret []byte) error {
	var h store.HostingAccount
	if err := n.s.Node.FSM.Read(func(r store.ReadTx) (err error) { h, err = r.HostingAccountByID(hostingID); return }); err != nil {
		return err
	}
	params, err := action.Encode(p)
	if err != nil {
		return err
	}
	now := n.s.now()()
	a := store.Action{Action: api.Action{ID: ids.New("act", now), Command: command, ResourceType: fsm.ResourceHosting, ResourceID: h.ID},
		AccountID: h.AccountID, NodeID: h.NodeID, Target: h.Username, Params: params, NeedsSecret: secret != nil,
		Mutating: true, Deadline: now.Add(actionWait)}
	deps := n.s.cfg.Nodes.rt.disp.ServerDeps()
	if secret != nil {
		deps.PutSecret(a.ID, secret)
		defer deps.DropSecret(a.ID)
	}
	if _, err := n.s.propose(ctx, fsm.CmdHostingAction, fsm.HostingAction{Action: a}); err != nil {
		return fmt.Errorf("%s for %s: %w", command, h.ID, err)
	}
	deps.Kick()
	wctx, cancel := context.WithTimeout(ctx, actionWait+10*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var cur store.Action
		if err := n.s.Node.FSM.Read(func(r store.ReadTx) (err error) { cur, err = r.Action(a.ID); return }); err != nil {
			return err
		}
		if cur.Finished() {
			if cur.Status == api.ActionSuccess {
				return nil
			}
			msg := "failed"
			if cur.Error != nil {
				msg = cur.Error.Code + ": " + cur.Error.Message
				if cur.Error.Code == api.NodeErrInterrupted {
					return fmt.Errorf("%s on node %s: %s: %w", command, h.NodeID, msg, errInterrupted)
				}
			}
			return fmt.Errorf("%s on node %s: %s", command, h.NodeID, msg)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s on node %s: no answer: %w", command, h.NodeID, wctx.Err())
		case <-tick.C:
		}
	}
}

func (n *sessionNode) Present(ctx context.Context, hostingID, _, token, keyAuth string) error {
	return n.do(ctx, hostingID, api.ActionHostingChallenge, &action.HostingChallenge{Token: token, KeyAuthorization: keyAuth}, nil)
}

func (n *sessionNode) CleanUp(ctx context.Context, hostingID, _, token string) error {
	return n.do(ctx, hostingID, api.ActionHostingChallenge, &action.HostingChallenge{Token: token, Remove: true}, nil)
}

func (n *sessionNode) Install(ctx context.Context, hostingID, domain string, chain, key []byte) error {
	secret, err := action.EncodeSecret(api.ActionHostingCert, string(key))
	if err != nil {
		return err
	}
	p := &action.HostingCert{Domain: domain, ChainPEM: string(chain)}
	err = n.do(ctx, hostingID, api.ActionHostingCert, p, secret)
	if errors.Is(err, errInterrupted) {
		// The agent restarted during the install (its journal answers the
		// action sent again "interrupted": the key is never journaled), so
		// it is sent once more, with the key, as a new action.
		err = n.do(ctx, hostingID, api.ActionHostingCert, p, secret)
	}
	return err
}

// errInterrupted: the node's agent restarted while it ran the action.
var errInterrupted = errors.New("interrupted by an agent restart")
