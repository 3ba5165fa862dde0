package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// SetSiteTLS gives the manager the hosting role's TLS part (nil: none).
func (m *Manager) SetSiteTLS(n *sitetls.Node) { m.siteTLS = n }

// SiteTLS is the hosting role's TLS part, or nil.
func (m *Manager) SiteTLS() *sitetls.Node { return m.siteTLS }

// HostingCertRequest installs (or with Detach removes) a custom domain's
// certificate; the key is in plain text here and never journaled.
type HostingCertRequest struct {
	OpID, Username, Domain string
	Detach                 bool
	ChainPEM, KeyPEM       []byte
}

// certInput is what the journal keeps of a hosting.cert: digests of the
// chain and key, never the key.
type certInput struct {
	Domain      string `json:"domain"`
	Detach      bool   `json:"detach,omitempty"`
	ChainSHA256 string `json:"chain_sha256,omitempty"`
	KeySHA256   string `json:"key_sha256,omitempty"`
}

func digest(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// HostingCert (hosting.cert; hosting.uncert with Detach) routes a custom domain to the account (hosts/<domain>) and
// installs its certificate, checked by a TLS handshake with that SNI and
// rolled back if nginx does not serve it; with Detach it removes both. Bad
// input (a name that is not canonical, a certificate that does not cover it
// or does not match its key, a domain routed to another account) is refused
// before anything is journaled.
func (m *Manager) HostingCert(ctx context.Context, req HostingCertRequest) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if m.siteTLS == nil && !req.Detach {
		return nil, apiErr(api.NodeErrUnsupported, "this hosting node has no TLS listener (--hosting-tls-listen)")
	}
	if err := validate.HostingUsername(req.Username); err != nil {
		return nil, err
	}
	if ascii, err := validate.Domain(req.Domain); err != nil {
		return nil, err
	} else if ascii != req.Domain {
		return nil, fmt.Errorf("%w: domain %q: give its ASCII form %q", validate.ErrInvalid, req.Domain, ascii)
	}
	if owner := m.hosting.L.HostUser(req.Domain); owner != "" && owner != req.Username && !req.Detach {
		return nil, fmt.Errorf("%w: domain %s is routed to another account on this node", validate.ErrInvalid, req.Domain)
	}
	if !req.Detach {
		if _, err := sitetls.ParsePair(req.Domain, req.ChainPEM, req.KeyPEM, time.Now()); err != nil {
			return nil, err
		}
	}
	stored := certInput{Domain: req.Domain, Detach: req.Detach, ChainSHA256: digest(req.ChainPEM), KeySHA256: digest(req.KeyPEM)}
	kind := api.NodeOpHostingCert
	if req.Detach {
		kind = api.NodeOpHostingUncert
	}
	return m.do(ctx, spec{id: req.OpID, kind: kind, target: req.Username, lock: hostingLock(req.Username),
		input: stored, stored: stored,
		precheck: func(context.Context) error {
			_, err := m.hosting.View(req.Username)
			return hostingErr(err)
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.certRun(ctx, r, req)
		}})
}

// certRun does it; r (nil when recovering a detach) journals the step
// "routed" between routing the domain and installing its certificate.
func (m *Manager) certRun(ctx context.Context, r *run, req HostingCertRequest) (*api.NodeOpResult, error) {
	l := m.hosting.L
	if req.Detach {
		// The name routed to another account (the cluster gave it to an
		// account whose DNS proved control): its route and certificate are
		// that account's, and nothing of this one's is left to remove.
		switch owner := l.HostUser(req.Domain); {
		case owner == req.Username:
			if err := l.RemoveHost(req.Domain); err != nil {
				return nil, err
			}
		case owner != "":
			return &api.NodeOpResult{Message: req.Domain + " is routed to another account; nothing to detach"}, nil
		}
		if m.siteTLS != nil {
			if err := m.siteTLS.Store.Detach(ctx, req.Domain); err != nil {
				return nil, err
			}
		}
		return &api.NodeOpResult{Message: "domain " + req.Domain + " detached"}, nil
	}
	st := m.siteTLS.Store
	if err := l.SetHost(req.Domain, req.Username); err != nil {
		return nil, err
	}
	if r != nil {
		if err := r.step("routed"); err != nil {
			return nil, err
		}
	}
	if err := st.Attach(ctx, req.Domain, req.ChainPEM, req.KeyPEM); err != nil {
		if errors.Is(err, validate.ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("custom domain %s: %w", req.Domain, err)
	}
	return &api.NodeOpResult{Message: "certificate of " + req.Domain + " installed"}, nil
}

// recoverCert: a detach is redone from the journal; an install cannot be
// (the key was never journaled), so it is reported interrupted and the
// coordinator sends it again with its secret.
func (m *Manager) recoverCert(ctx context.Context, r *run) (*api.NodeOpResult, error) {
	var in certInput
	if err := json.Unmarshal(r.rec.Input, &in); err != nil {
		return nil, fmt.Errorf("recover %s: input: %w", r.rec.ID, err)
	}
	if !in.Detach {
		return nil, interrupted("hosting.cert %s for %s interrupted by an agent restart; send it again", in.Domain, r.rec.Target)
	}
	res, err := m.certRun(ctx, nil, HostingCertRequest{Username: r.rec.Target, Domain: in.Domain, Detach: true})
	if res != nil {
		res.Message = "resumed after an agent restart; " + res.Message
	}
	return res, err
}

// HostingChallenge (hosting.challenge) puts an ACME HTTP-01 key
// authorization in the node's responder for the account's custom domain
// order, or with remove forgets the token. It is not journaled: the token
// lives in memory only, is public and doing it again changes nothing.
func (m *Manager) HostingChallenge(_ context.Context, id, username, token, keyAuth string, remove bool) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if m.siteTLS == nil {
		return nil, apiErr(api.NodeErrUnsupported, "this hosting node has no TLS listener (--hosting-tls-listen)")
	}
	if err := validate.HostingUsername(username); err != nil {
		return nil, err
	}
	if _, err := m.hosting.View(username); err != nil {
		return nil, hostingErr(err)
	}
	msg := "acme challenge served"
	if remove {
		m.siteTLS.Challenges.Delete(token)
		msg = "acme challenge removed"
	} else if err := m.siteTLS.Challenges.Put(token, keyAuth); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	return &api.NodeOperation{ID: id, Kind: api.NodeOpHostingChallenge, Target: username, State: api.NodeOpSucceeded,
		StartedAt: now, FinishedAt: &now, Result: &api.NodeOpResult{Message: msg}}, nil
}
