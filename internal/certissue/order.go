package certissue

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"

	"github.com/hostplane/hostplane/pkg/validate"
)

// NewCertKey makes a certificate private key (ECDSA P-256, PEM). The key is
// made, and recorded sealed, before its order exists, so whoever finishes
// the order finalizes it with this key.
func NewCertKey() ([]byte, error) {
	k, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	if err != nil {
		return nil, err
	}
	return certcrypto.PEMEncode(k), nil
}

// OrderCreated is called with the URL of a new ACME order before any of its
// challenges is answered (note: why the recorded order was not resumed, or
// empty). An error abandons the order unanswered: an order whose URL is not
// recorded never issues a certificate.
type OrderCreated func(ctx context.Context, orderURL, note string) error

// ErrResumeOrder marks an error after which the order is to be resumed by
// its URL, not placed again (which could issue a second certificate): the
// order was finalized (or found processing or valid), so the CA issues or
// issued its certificate; or the recorded order could not be fetched for
// another reason than the server refusing it (a network error, a 5xx, a
// rate limit).
var ErrResumeOrder = errors.New("acme: the order is to be resumed")

// resumeError reads as err and is also ErrResumeOrder.
type resumeError struct{ err error }

func (e resumeError) Error() string   { return e.err.Error() }
func (e resumeError) Unwrap() []error { return []error{e.err, ErrResumeOrder} }

// refused tells whether the ACME server answered a request with a client
// error other than a rate limit: it does not know or will not serve that
// order. A 4xx without a problem document (pebble's 404 for an unknown
// order) reaches here only as lego's "<status> :: <method> :: …" text.
func refused(err error) bool {
	status := 0
	var p *acme.ProblemDetails
	if errors.As(err, &p) {
		status = p.HTTPStatus
	} else if m := bareStatusRE.FindStringSubmatch(err.Error()); m != nil {
		status, _ = strconv.Atoi(m[1])
	}
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests
}

var bareStatusRE = regexp.MustCompile(`^([0-9]{3}) ::`)

// orderPoll is how often an order or authorization in progress is fetched.
const orderPoll = 300 * time.Millisecond

// ObtainOrder gets the certificate of domain for the key keyPEM (NewCertKey)
// through the ACME order at orderURL when it can still issue (pending,
// ready, processing or valid: its authorizations are answered, it is
// finalized with keyPEM's CSR, awaited, its certificate downloaded), else
// through a new order announced to created first. A leader that took over
// another's order thus finishes that very order: one certificate per order.
// An error once the order is finalized, or while fetching the recorded
// order (other than the server refusing it), is also ErrResumeOrder; not an
// order that turned invalid or was finalized with another key (it cannot
// give this key a certificate).
func (i *Issuer) ObtainOrder(ctx context.Context, domain string, keyPEM []byte, orderURL string, replaces *x509.Certificate, created OrderCreated) (*Issued, error) {
	if ascii, err := validate.Domain(domain); err != nil || ascii != domain {
		return nil, fmt.Errorf("%w: acme: domain %q is not a validated ASCII domain", validate.ErrInvalid, domain)
	}
	key, err := certcrypto.ParsePEMPrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate key of %s: %w", domain, err)
	}
	uri, err := i.Register(ctx)
	if err != nil {
		return nil, err
	}
	hc := i.cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	core, err := api.New(hc, i.cfg.UserAgent, i.cfg.DirectoryURL, uri, i.user.key)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	var ord acme.ExtendedOrder
	note := ""
	if orderURL != "" {
		o, gerr := core.Orders.Get(ctx, orderURL)
		switch {
		case gerr != nil && ctx.Err() == nil && !refused(gerr):
			return nil, resumeError{fmt.Errorf("acme: the recorded order %s of %s: %w", orderURL, domain, gerr)}
		case gerr != nil:
			note = fmt.Sprintf("the recorded ACME order %s cannot be fetched (%v): ordered anew", orderURL, gerr)
		case o.Status == acme.StatusInvalid:
			note = fmt.Sprintf("the recorded ACME order %s is invalid: ordered anew", orderURL)
		case expired(o.Order) && o.Status != acme.StatusValid:
			note = fmt.Sprintf("the recorded ACME order %s expired: ordered anew", orderURL)
		default:
			ord = o
			ord.Location = orderURL
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if ord.Location == "" {
		opts := &api.OrderOptions{Profile: i.cfg.Profile}
		if replaces != nil {
			if id, err := api.MakeARICertID(replaces); err == nil {
				opts.ReplacesCertID = id
			}
		}
		ord, err = core.Orders.New(ctx, []string{domain}, opts)
		if err != nil && opts.ReplacesCertID != "" {
			// A server may refuse "replaces" (already replaced, unknown): order afresh.
			opts.ReplacesCertID = ""
			ord, err = core.Orders.New(ctx, []string{domain}, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("acme: order %s: %w", domain, err)
		}
		if err := created(ctx, ord.Location, note); err != nil {
			return nil, fmt.Errorf("acme: order %s of %s not recorded (left unanswered): %w", ord.Location, domain, err)
		}
	}
	loc := ord.Location
	finalized := false
	fail := func(err error) error {
		if finalized {
			return resumeError{err}
		}
		return err
	}
	for {
		switch ord.Status {
		case acme.StatusPending:
			if err := i.answer(ctx, core, domain, ord.Authorizations); err != nil {
				return nil, fmt.Errorf("acme: order %s of %s: %w", loc, domain, err)
			}
		case acme.StatusReady:
			csr, err := certcrypto.CreateCSR(key, certcrypto.CSROptions{SAN: []string{domain}})
			if err != nil {
				return nil, err
			}
			// Another leader may have finalized it meanwhile: the order is
			// fetched again either way. From here on the CA may issue.
			finalized = true
			_, _ = core.Orders.UpdateForCSR(ctx, ord.Finalize, csr)
		case acme.StatusProcessing:
			finalized = true
			if err := sleep(ctx, orderPoll); err != nil {
				return nil, fail(err)
			}
		case acme.StatusValid:
			finalized = true
			raw, err := core.Certificates.Get(ctx, ord.Certificate, true)
			if err != nil {
				return nil, fail(fmt.Errorf("acme: certificate of %s (%s): %w", domain, ord.Certificate, err))
			}
			certs, err := certcrypto.ParsePEMBundle(raw.Cert)
			if err != nil {
				return nil, fail(fmt.Errorf("acme: certificate for %s: %w", domain, err))
			}
			if !samePublicKey(certs[0], key) {
				return nil, fmt.Errorf("acme: order %s of %s was finalized with another key than the recorded one", loc, domain)
			}
			return &Issued{ChainPEM: raw.Cert, KeyPEM: keyPEM, Leaf: certs[0], CertURL: ord.Certificate, OrderURL: loc}, nil
		default:
			return nil, fmt.Errorf("acme: order %s of %s is %s: %v", loc, domain, ord.Status, ord.Err())
		}
		o, err := core.Orders.Get(ctx, loc)
		if err != nil {
			return nil, fail(fmt.Errorf("acme: order %s of %s: %w", loc, domain, err))
		}
		ord = o
		ord.Location = loc
	}
}

func expired(o acme.Order) bool {
	t, err := time.Parse(time.RFC3339, o.Expires)
	return err == nil && time.Now().After(t)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// answer answers the HTTP-01 challenge of each authorization not yet valid
// (presenting the key authorization on the node again: the one who took the
// order over may not know the node still has it) and waits for each to be
// valid. A challenge already processing is not sent again.
func (i *Issuer) answer(ctx context.Context, core *api.Core, domain string, authzURLs []string) error {
	for _, u := range authzURLs {
		a, err := core.Authorizations.Get(ctx, u)
		if err != nil {
			return err
		}
		if a.Status == acme.StatusValid {
			continue
		}
		if a.Status != acme.StatusPending {
			return fmt.Errorf("authorization %s is %s", u, a.Status)
		}
		var ch *acme.Challenge
		for k := range a.Challenges {
			if a.Challenges[k].Type == "http-01" {
				ch = &a.Challenges[k]
			}
		}
		if ch == nil {
			return fmt.Errorf("authorization %s offers no http-01 challenge", u)
		}
		keyAuth, err := core.GetKeyAuthorization(ch.Token)
		if err != nil {
			return err
		}
		if i.pres == nil {
			return errors.New("no presenter for http-01")
		}
		if err := i.pres.Present(ctx, domain, ch.Token, keyAuth); err != nil {
			return fmt.Errorf("presenting http-01 for %s: %w", domain, err)
		}
		err = i.await(ctx, core, u, *ch)
		_ = i.pres.CleanUp(context.WithoutCancel(ctx), domain, ch.Token, keyAuth)
		if err != nil {
			return err
		}
	}
	return nil
}

func (i *Issuer) await(ctx context.Context, core *api.Core, authzURL string, ch acme.Challenge) error {
	if ch.Status == acme.StatusPending {
		if _, err := core.Challenges.New(ctx, ch.URL); err != nil {
			return fmt.Errorf("starting the challenge: %w", err)
		}
	}
	for {
		a, err := core.Authorizations.Get(ctx, authzURL)
		if err != nil {
			return err
		}
		switch a.Status {
		case acme.StatusValid:
			return nil
		case acme.StatusPending, acme.StatusProcessing:
		default:
			for _, c := range a.Challenges {
				if c.Status == acme.StatusInvalid && c.Error != nil {
					return fmt.Errorf("invalid authorization: %w", c.Err())
				}
			}
			return fmt.Errorf("authorization %s is %s", authzURL, a.Status)
		}
		if err := sleep(ctx, orderPoll); err != nil {
			return err
		}
	}
}

func samePublicKey(leaf *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(leaf.PublicKey)
}
