// Package certissue obtains and renews the certificates of custom domains
// from an ACME server with lego (github.com/go-acme/lego/v5): one account for
// the cluster, HTTP-01 answered on the hosting node (the Presenter hands the
// token to the node), renewal when the server's ACME Renewal Information
// (RFC 9773) says so, else 30 days before expiry (a third of the lifetime
// for short-lived certificates), and a back-off that keeps within Let's
// Encrypt's limits.
package certissue

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"

	"github.com/hostplane/hostplane/internal/signerkey"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Presenter hands an HTTP-01 key authorization to the hosting node that
// serves domain (over the agent's session), and takes it back.
type Presenter interface {
	Present(ctx context.Context, domain, token, keyAuth string) error
	CleanUp(ctx context.Context, domain, token, keyAuth string) error
}

// Account is the cluster's ACME account: its key (PKCS#8 PEM; sealed under
// the KEK wherever it is stored) and, once registered, its URI.
type Account struct {
	Email  string
	KeyPEM []byte
	URI    string
}

// NewAccountKey makes an ECDSA P-256 account key (PKCS#8 PEM).
func NewAccountKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

type user struct {
	email string
	key   crypto.Signer
	reg   *acme.ExtendedAccount
}

func (u *user) GetEmail() string                       { return u.email }
func (u *user) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer           { return u.key }

// Config says which ACME server to use and how.
type Config struct {
	DirectoryURL string       // e.g. Let's Encrypt's; configuration, never a constant
	HTTPClient   *http.Client // trusts the server's TLS (pebble's own CA in tests)
	Profile      string       // ACME profile ("" for the server's default; "shortlived")
	UserAgent    string
}

// Issuer talks to the ACME server as the cluster's account.
type Issuer struct {
	cfg    Config
	user   *user
	client *lego.Client
	pres   Presenter
}

type provider struct{ p Presenter }

func (p provider) Present(ctx context.Context, domain, token, keyAuth string) error {
	return p.p.Present(ctx, domain, token, keyAuth)
}

func (p provider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	return p.p.CleanUp(ctx, domain, token, keyAuth)
}

// New makes an Issuer for acc. An account without a URI is registered (or
// found by its key) on the first call of Register.
func New(cfg Config, acc Account, pres Presenter) (*Issuer, error) {
	if cfg.DirectoryURL == "" {
		return nil, errors.New("acme: no directory URL configured")
	}
	key, err := parseKey(acc.KeyPEM)
	if err != nil {
		return nil, err
	}
	u := &user{email: acc.Email, key: key}
	if acc.URI != "" {
		u.reg = &acme.ExtendedAccount{Location: acc.URI}
	}
	lc := lego.NewConfig(u)
	lc.CADirURL = cfg.DirectoryURL
	if cfg.HTTPClient != nil {
		lc.HTTPClient = cfg.HTTPClient
	}
	lc.UserAgent = cfg.UserAgent
	client, err := lego.NewClient(lc)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if err := client.Challenge.SetHTTP01Provider(provider{pres}); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	return &Issuer{cfg: cfg, user: u, client: client, pres: pres}, nil
}

func parseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("acme: account key is not PEM")
	}
	s, err := signerkey.ParsePKCS8(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	return s, nil
}

// Register makes sure the account exists on the server and returns its URI
// (the same key finds the same account: registering twice is harmless).
func (i *Issuer) Register(ctx context.Context) (string, error) {
	if i.user.reg != nil {
		return i.user.reg.Location, nil
	}
	reg, err := i.client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return "", fmt.Errorf("acme: register: %w", err)
	}
	i.user.reg = reg
	return reg.Location, nil
}

// Issued is an obtained certificate: the chain (leaf first) and its key, PEM.
type Issued struct {
	ChainPEM []byte
	KeyPEM   []byte
	Leaf     *x509.Certificate
	CertURL  string
	OrderURL string // the ACME order that issued it (ObtainOrder)
}

// Obtain orders a certificate for domain (validated: the ASCII form
// validate.Domain returns). replaces, when set, is the certificate this one
// renews (RFC 9773's "replaces", so the server's limits count it as a
// renewal).
func (i *Issuer) Obtain(ctx context.Context, domain string, replaces *x509.Certificate) (*Issued, error) {
	if ascii, err := validate.Domain(domain); err != nil || ascii != domain {
		return nil, fmt.Errorf("%w: acme: domain %q is not a validated ASCII domain", validate.ErrInvalid, domain)
	}
	if _, err := i.Register(ctx); err != nil {
		return nil, err
	}
	req := certificate.ObtainRequest{Domains: []string{domain}, Bundle: true, KeyType: certcrypto.EC256, Profile: i.cfg.Profile}
	if replaces != nil {
		id, err := api.MakeARICertID(replaces)
		if err == nil {
			req.ReplacesCertID = id
		}
	}
	res, err := i.client.Certificate.Obtain(ctx, req)
	if err != nil && req.ReplacesCertID != "" {
		// A server may refuse "replaces" (already replaced, unknown): order afresh.
		req.ReplacesCertID = ""
		res, err = i.client.Certificate.Obtain(ctx, req)
	}
	if err != nil {
		return nil, fmt.Errorf("acme: obtain %s: %w", domain, err)
	}
	certs, err := certcrypto.ParsePEMBundle(res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate for %s: %w", domain, err)
	}
	return &Issued{ChainPEM: res.Certificate, KeyPEM: res.PrivateKey, Leaf: certs[0], CertURL: res.CertURL}, nil
}

// FallbackBefore is how long before expiry a certificate is renewed when the
// server gives no renewal information.
const FallbackBefore = 30 * 24 * time.Hour

// Fallback is the renewal time without ARI: 30 days before expiry, or with
// a third of the lifetime left for certificates shorter-lived than 90 days.
func Fallback(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	before := FallbackBefore
	if life < 90*24*time.Hour {
		before = life / 3
	}
	return leaf.NotAfter.Add(-before)
}

// RenewAt asks the server's renewal information (RFC 9773) when leaf should
// be renewed: a time in the suggested window (now if the window has begun).
// Without ARI, or when the server cannot answer, it is Fallback; the bool
// says whether ARI answered.
func (i *Issuer) RenewAt(ctx context.Context, leaf *x509.Certificate, now time.Time) (time.Time, bool) {
	info, err := i.client.Certificate.GetRenewalInfo(ctx, leaf)
	if err != nil || info == nil {
		return Fallback(leaf), false
	}
	at := info.ShouldRenewAt(now, 365*24*time.Hour)
	if at == nil {
		return Fallback(leaf), false
	}
	return *at, true
}
