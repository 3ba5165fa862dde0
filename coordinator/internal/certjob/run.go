package certjob

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/certissue"
)

// OrderTimeout bounds one order: past it, another leader may take it over.
const OrderTimeout = 10 * time.Minute

// State is what an order needs of the replicated state.
type State interface {
	Propose(ctx context.Context, t fsm.CommandType, payload any) error
}

// Node is the hosting node's side of an order, over the agent's session:
// the HTTP-01 tokens of the domain's account's node, and the install of the
// certificate (hosting.cert, key in secret_params only).
type Node interface {
	Present(ctx context.Context, hostingID, domain, token, keyAuth string) error
	CleanUp(ctx context.Context, hostingID, domain, token string) error
	Install(ctx context.Context, hostingID, domain string, chainPEM, keyPEM []byte) error
}

// Runner runs the orders Due returns, as the leader.
type Runner struct {
	State   State
	Node    Node
	Sealer  *webhook.Sealer
	Config  certissue.Config
	Account certissue.Account
	Now     func() time.Time
	// Owner names this leadership's run of the job (a fresh random name
	// each time a coordinator becomes leader): orders it records carry it,
	// and DueFor hands it another leadership's orders at once.
	Owner string
}

// NewOwner names a leadership's run of the job.
func NewOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "lead_" + hex.EncodeToString(b[:])
}

// SealID is the associated data a domain's certificate key is sealed under.
func SealID(domain string) string { return "cert:" + domain }

type presenter struct {
	n         Node
	hostingID string
}

func (p presenter) Present(ctx context.Context, domain, token, keyAuth string) error {
	return p.n.Present(ctx, p.hostingID, domain, token, keyAuth)
}

func (p presenter) CleanUp(ctx context.Context, domain, token, _ string) error {
	return p.n.CleanUp(ctx, p.hostingID, domain, token)
}

// ErrInFlight is returned when another order of the domain is in flight.
var ErrInFlight = errors.New("certjob: an order of the domain is in flight")

// Run orders the certificate of o: the intent is recorded through Raft
// first (a conflict means another leader's order runs: ErrInFlight), then
// the ACME order with HTTP-01 through the node, the certificate recorded
// with its key sealed, and installed on the node. A failure is recorded
// with the back-off's next try and returned. An Order of ReasonInstall only
// installs the recorded certificate.
func (r *Runner) Run(ctx context.Context, o Order) error {
	d := o.Domain
	if o.Reason == ReasonInstall {
		key, err := r.Sealer.Open(SealID(d.Domain), d.Cert.SealedKey)
		if err != nil {
			return fmt.Errorf("certificate key of %s cannot be unsealed (is the KEK file the same on every coordinator?): %w", d.Domain, err)
		}
		return r.install(ctx, d, []byte(d.Cert.Chain), []byte(key))
	}
	// The certificate key is made and recorded (sealed) with the order's
	// intent, before the ACME order exists: whoever finishes the order
	// finalizes it with this key. A takeover keeps the order's name, URL
	// and key, and resumes it.
	var orderID, sealed, orderURL string
	var keyPEM []byte
	if o.Reason == ReasonTakeover && d.Cert != nil && d.Cert.OrderID != "" && d.Cert.OrderKey != "" {
		key, err := r.Sealer.Open(SealID(d.Domain), d.Cert.OrderKey)
		if err != nil {
			return fmt.Errorf("certificate key of the order of %s cannot be unsealed (is the KEK file the same on every coordinator?): %w", d.Domain, err)
		}
		orderID, sealed, orderURL, keyPEM = d.Cert.OrderID, d.Cert.OrderKey, d.Cert.OrderURL, []byte(key)
	} else {
		var idb [8]byte
		_, _ = rand.Read(idb[:])
		orderID = "ord_" + hex.EncodeToString(idb[:])
		if o.Reason == ReasonTakeover && d.Cert != nil && d.Cert.OrderID != "" {
			orderID = d.Cert.OrderID // recorded before keys were: taken over, ordered anew
		}
		var err error
		if keyPEM, err = certissue.NewCertKey(); err != nil {
			return err
		}
		if sealed, err = r.Sealer.Seal(SealID(d.Domain), string(keyPEM)); err != nil {
			return err
		}
	}
	now := r.Now()
	if err := r.State.Propose(ctx, fsm.CmdCertOrderStart, fsm.CertOrderStart{HostingID: d.HostingID, Domain: d.Domain,
		OrderID: orderID, Until: now.Add(OrderTimeout), Owner: r.Owner, SealedKey: sealed}); err != nil {
		if errors.Is(err, fsm.ErrConflict) {
			return fmt.Errorf("%w: %v", ErrInFlight, err)
		}
		return err
	}
	created := func(ctx context.Context, url, note string) error {
		return r.State.Propose(ctx, fsm.CmdCertOrderStart, fsm.CertOrderStart{HostingID: d.HostingID, Domain: d.Domain,
			OrderID: orderID, Until: r.Now().Add(OrderTimeout), Owner: r.Owner, OrderURL: url, Note: note})
	}
	issued, err := r.obtain(ctx, d, keyPEM, orderURL, created)
	if err != nil {
		if ctx.Err() != nil {
			// The lead is lost (or the job stops): the order stays recorded
			// for the next leader to resume.
			return err
		}
		failures := 1
		if d.Cert != nil {
			failures = d.Cert.Failures + 1
		}
		at := r.Now()
		// Once the order is finalized the CA issues its certificate (and a
		// recorded order that could not be fetched may be so): the order
		// stays recorded and the retry resumes it by its URL.
		if perr := r.State.Propose(ctx, fsm.CmdCertFailed, fsm.CertFailed{HostingID: d.HostingID, Domain: d.Domain,
			OrderID: orderID, Reason: err.Error(), RetryAt: certissue.RetryAfter(failures, at),
			KeepOrder: errors.Is(err, certissue.ErrResumeOrder)}); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	if err := r.State.Propose(ctx, fsm.CmdCertIssued, fsm.CertIssued{HostingID: d.HostingID, Domain: d.Domain, OrderID: orderID,
		Chain: string(issued.ChainPEM), SealedKey: sealed, NotAfter: issued.Leaf.NotAfter, RenewAt: issued.renewAt}); err != nil {
		return err
	}
	return r.install(ctx, d, issued.ChainPEM, issued.KeyPEM)
}

// install hands the certificate to the node and records the outcome (a
// failure is retried with the same certificate after the first back-off).
func (r *Runner) install(ctx context.Context, d store.CustomDomain, chain, key []byte) error {
	ierr := r.Node.Install(ctx, d.HostingID, d.Domain, chain, key)
	rec := fsm.CertInstalled{HostingID: d.HostingID, Domain: d.Domain, Chain: string(chain)}
	if ierr != nil {
		rec.Error, rec.RetryAt = ierr.Error(), certissue.RetryAfter(1, r.Now())
	}
	if err := r.State.Propose(ctx, fsm.CmdCertInstalled, rec); err != nil {
		return errors.Join(ierr, err)
	}
	return ierr
}

type obtained struct {
	*certissue.Issued
	renewAt time.Time
}

func (r *Runner) obtain(ctx context.Context, d store.CustomDomain, keyPEM []byte, orderURL string, created certissue.OrderCreated) (*obtained, error) {
	iss, err := certissue.New(r.Config, r.Account, presenter{n: r.Node, hostingID: d.HostingID})
	if err != nil {
		return nil, err
	}
	var replaces *x509.Certificate
	if d.Cert != nil && d.Cert.Chain != "" {
		if b, _ := pem.Decode([]byte(d.Cert.Chain)); b != nil {
			replaces, _ = x509.ParseCertificate(b.Bytes)
		}
	}
	res, err := iss.ObtainOrder(ctx, d.Domain, keyPEM, orderURL, replaces, created)
	if err != nil {
		return nil, err
	}
	at, _ := iss.RenewAt(ctx, res.Leaf, r.Now())
	return &obtained{Issued: res, renewAt: at}, nil
}
