package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/domains"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func (a *API) customDomainRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/hosting/{id}/custom-domain", Scope: api.ScopeHostingRead, handler: a.getCustomDomain},
		{Method: "PUT", Path: "/v1/hosting/{id}/custom-domain", Scope: api.ScopeHostingWrite, Idempotent: true, handler: a.putCustomDomain},
		{Method: "POST", Path: "/v1/hosting/{id}/custom-domain/verify", Scope: api.ScopeHostingWrite, handler: a.verifyCustomDomain},
		{Method: "DELETE", Path: "/v1/hosting/{id}/custom-domain", Scope: api.ScopeHostingWrite, Idempotent: true, handler: a.deleteCustomDomain},
		{Method: "POST", Path: "/v1/hosting/{id}/ssl/retry", Scope: api.ScopeHostingWrite, handler: a.retryCertificate},
	}
}

// DecodeCustomDomain validates a PUT /v1/hosting/:id/custom-domain body and
// returns the domain's canonical ASCII form (validate.HostingDomainInput:
// capitals and one trailing dot are accepted).
func DecodeCustomDomain(body []byte) (string, error) {
	var req api.CustomDomainRequest
	if err := decodeStrict(body, &req); err != nil {
		return "", err
	}
	if req.Domain == "" {
		return "", invalidField("domain", "is required")
	}
	ascii, err := validate.HostingDomainInput(req.Domain)
	if err != nil {
		return "", invalidField("domain", "%s", strings.TrimPrefix(validate.Reason(err), "domain "))
	}
	return ascii, nil
}

// resolver is the DNS verification's resolver (Config.DNSResolver).
func (a *API) resolver() *domains.Resolver {
	addr := a.cfg.DNSResolver
	if addr == "" {
		addr = "127.0.0.1:53"
	}
	return &domains.Resolver{Addr: addr, NSPort: a.cfg.DNSNSPort, Timeout: 2 * time.Second}
}

// expect is what the custom domain's DNS must say: the token, and the
// addresses of the account's own domain (which points at its node) or a
// CNAME to that domain.
func (a *API) expect(ctx context.Context, h store.HostingAccount, domain, token string) domains.Expect {
	e := domains.Expect{Domain: domain, Token: token, CNAME: h.Domain}
	e.IPv4, e.IPv6 = a.resolver().Addresses(ctx, h.Domain)
	return e
}

func records(rs []domains.Record) []api.DNSRecord {
	out := make([]api.DNSRecord, len(rs))
	for i, r := range rs {
		out[i] = api.DNSRecord{Type: r.Type, Name: r.Name, Value: r.Value, Alternative: r.Alternative}
	}
	return out
}

func (a *API) getCustomDomain(rq *request) (int, any, error) {
	h, err := a.loadHosting(rq)
	if err != nil {
		return 0, nil, err
	}
	d, err := readOne(a, "custom domain", func(r store.ReadTx) (store.CustomDomain, error) {
		return r.CustomDomain(rq.caller.accountID, h.ID)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d.CustomDomain, nil
}

func (a *API) putCustomDomain(rq *request) (int, any, error) {
	h, domain, err := loadAndBody(rq, a.loadHosting, DecodeCustomDomain)
	if err != nil {
		return 0, nil, err
	}
	if err := a.deleteUnderway(h); err != nil {
		return 0, nil, err
	}
	if err := a.domainNotReserved(domain); err != nil {
		return 0, nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := "hpv-" + hex.EncodeToString(b)
	// The same domain again keeps its token: read it first so the records agree.
	if d, err := readOne(a, "custom domain", func(r store.ReadTx) (store.CustomDomain, error) {
		return r.CustomDomain(rq.caller.accountID, h.ID)
	}); err == nil && d.Domain == domain {
		token = d.Token
	}
	ctx, cancel := context.WithTimeout(rq.Context(), 5*time.Second)
	defer cancel()
	recs := records(domains.Required(a.expect(ctx, h, domain, token)))
	// Another customer's verified custom domain: attachable (pending) once
	// its ownership record is gone from the name's DNS, at every nameserver.
	var lapsed *fsm.LapsedClaim
	var unshown string // why the record is not shown gone
	if held, ok := a.verifiedHolder(rq, h, domain); ok {
		switch txt, silent, err := a.resolver().OwnershipTXT(ctx, domain); {
		case err != nil:
			unshown = err.Error()
		case len(silent) > 0:
			unshown = strings.Join(silent, ", ") + " did not answer"
		default:
			lapsed = lapsedClaim(held, txt)
		}
	}
	detach, kick := a.detachAction(rq)
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdCustomDomainSet, fsm.CustomDomainSet{HostingID: h.ID, AccountID: rq.caller.accountID,
		Domain: domain, Token: token, Records: recs, Detach: detach, Lapsed: lapsed}, http.StatusOK)
	kick()
	return status, v, unshownLapse(err, unshown)
}

// unshownLapse adds to err, a conflict over a name another customer's
// verified custom domain holds, why its ownership record was not shown gone
// (unshown: a nameserver did not answer); other errors are as they are.
func unshownLapse(err error, unshown string) error {
	var fc *fsm.FieldConflictError
	if unshown == "" || !errors.As(err, &fc) {
		return err
	}
	return &fsm.FieldConflictError{Field: fc.Field, Msg: fc.Msg + "; " + unshown + " (the ownership record is gone only when gone from every nameserver)"}
}

// verifiedHolder is the verified custom domain of another customer's
// hosting account that holds domain, if that is what holds it
// (fsm.levelLapsedClaims).
func (a *API) verifiedHolder(rq *request, h store.HostingAccount, domain string) (store.CustomDomain, bool) {
	var d store.CustomDomain
	ok := false
	_ = a.state.Read(func(r store.ReadTx) error {
		id := r.HostingDomainTaken(domain)
		if id == "" || id == h.ID {
			return nil
		}
		holder, err := r.HostingAccountByID(id)
		if err != nil || holder.AccountID == rq.caller.accountID {
			return nil
		}
		if d, err = r.CustomDomain(holder.AccountID, id); err == nil && d.Domain == domain && d.Status == api.CustomDomainVerified {
			ok = true
		}
		return nil
	})
	return d, ok
}

// lapsedClaim is held as a fsm.LapsedClaim when none of txt, the values at
// the name's ownership record, is its token (its DNS proof no longer
// holds); nil otherwise.
func lapsedClaim(held store.CustomDomain, txt []string) *fsm.LapsedClaim {
	if held.Token == "" || slices.Contains(txt, held.Token) {
		return nil
	}
	return &fsm.LapsedClaim{HostingID: held.HostingID, Token: held.Token}
}

// detachAction is the hosting.uncert action a custom domain's replacement or
// removal opens when the domain it drops was verified (fsm.DetachAction),
// and the dispatcher's wake-up to call after the proposal.
func (a *API) detachAction(rq *request) (*fsm.DetachAction, func()) {
	deadline, kick := defaultActionDeadline, func() {}
	if deps, err := a.serverDeps(); err == nil {
		deadline, kick = deps.actionDeadline(), deps.Kick
	}
	return &fsm.DetachAction{ID: ids.New(actionIDPrefix, rq.now), Deadline: rq.now.Add(deadline)}, kick
}

// loadHostingNoBody reads the caller's hosting account for a request that
// takes no body: an account not found is its 404 whatever the body, then the
// body must pass decodeNoBody (nothing, or an empty object).
func (a *API) loadHostingNoBody(rq *request) (store.HostingAccount, error) {
	h, err := a.loadHosting(rq)
	if err != nil {
		return h, err
	}
	return h, decodeNoBody(rq.body)
}

// deleteUnderway is the 409 action_in_progress naming h's delete while it
// is under way (fsm.HostingDeleteUnderway), as every other change of the
// account is then: a custom domain set on it was a 200 with the DNS
// records to create for a site that was gone a moment later, the domain
// dropped with it; one verified then could take the name over from another
// account's claim (and start a certificate order) for a site about to go.
// A fast answer before the DNS is read: from semantics level 6 the apply
// refuses the command likewise (a delete committed after this check). The
// action h names that cannot be read is a 500, not "no delete under way".
func (a *API) deleteUnderway(h store.HostingAccount) error {
	return a.state.Read(func(r store.ReadTx) error { return fsm.HostingDeleteUnderway(r, h) })
}

// loadCustomDomain reads the caller's hosting account and its custom domain
// for a POST that takes no body.
func (a *API) loadCustomDomain(rq *request) (store.HostingAccount, store.CustomDomain, error) {
	h, err := a.loadHostingNoBody(rq)
	if err != nil {
		return h, store.CustomDomain{}, err
	}
	d, err := readOne(a, "custom domain", func(r store.ReadTx) (store.CustomDomain, error) {
		return r.CustomDomain(rq.caller.accountID, h.ID)
	})
	return h, d, err
}

// verifyCustomDomain checks the records at the domain's authoritative
// nameservers; missing or wrong ones are a 422 naming each, and nothing
// changes.
func (a *API) verifyCustomDomain(rq *request) (int, any, error) {
	h, d, err := a.loadCustomDomain(rq)
	if err != nil {
		return 0, nil, err
	}
	if err := a.deleteUnderway(h); err != nil {
		return 0, nil, err
	}
	// A name reserved since it was attached is not verified either.
	if err := a.domainNotReserved(d.Domain); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(rq.Context(), 15*time.Second)
	defer cancel()
	res, err := a.resolver().Verify(ctx, a.expect(ctx, h, d.Domain, d.Token))
	if err != nil {
		if errors.Is(err, domains.ErrNoNameserver) {
			return 0, nil, &httpError{status: http.StatusUnprocessableEntity, code: "dns_unreachable",
				msg: "cannot verify " + d.Domain + ": " + err.Error()}
		}
		// The coordinator's own resolver did not answer: the provider's
		// trouble, retryable, not a bug of the request (a 500). The
		// resolver's address stays in the log.
		a.log.Warn("custom domain verify: DNS resolver failed", "request_id", rq.id, "domain", d.Domain, "err", err)
		return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "dns_unavailable",
			msg: "cannot verify " + d.Domain + " now: the DNS resolver did not answer; retry shortly"}
	}
	if !res.OK() {
		return 0, nil, &httpError{status: http.StatusUnprocessableEntity, code: "dns_records_missing",
			msg: "DNS of " + d.Domain + " is not ready: " + res.Message()}
	}
	// The name may be held by another account's unverified claim (its
	// primary domain, or a custom domain not verified): the proven one takes
	// it over (fsm levelDomainClaims), taking it off that account's node
	// with this hosting.uncert.
	// So may another customer's verified custom domain whose ownership
	// record is gone from the DNS just read (fsm.levelLapsedClaims).
	var holder string
	_ = a.state.Read(func(r store.ReadTx) error { holder = r.HostingDomainTaken(d.Domain); return nil })
	// (Only when every nameserver answered: a silent one may still hold
	// the token.)
	var lapsed *fsm.LapsedClaim
	var unshown string
	if held, ok := a.verifiedHolder(rq, h, d.Domain); ok {
		if len(res.TXTSilent) > 0 {
			unshown = strings.Join(res.TXTSilent, ", ") + " did not answer"
		} else {
			lapsed = lapsedClaim(held, res.TXT)
		}
	}
	takeover, kick := a.detachAction(rq)
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdCustomDomainVerified, fsm.CustomDomainVerified{HostingID: h.ID,
		AccountID: rq.caller.accountID, Domain: d.Domain, Takeover: takeover, Lapsed: lapsed}, http.StatusOK)
	kick()
	if err != nil {
		return status, v, unshownLapse(err, unshown)
	}
	switch {
	case lapsed != nil:
		a.log.Info("custom domain verified over another hosting account's verified custom domain whose ownership record is gone from its DNS: the name moved",
			"domain", d.Domain, "hosting", h.ID, "account", rq.caller.accountID, "released_from", holder)
	case holder != "" && holder != h.ID:
		a.log.Info("custom domain verified over another hosting account's unverified claim: the name moved", "domain", d.Domain,
			"hosting", h.ID, "account", rq.caller.accountID, "released_from", holder)
	}
	if cd, ok := v.(api.CustomDomain); ok {
		v = api.CustomDomainVerification{CustomDomain: cd, Nameservers: res.Nameservers}
	}
	return status, v, nil
}

func (a *API) deleteCustomDomain(rq *request) (int, any, error) {
	h, err := a.loadHostingNoBody(rq)
	if err != nil {
		return 0, nil, err
	}
	detach, kick := a.detachAction(rq)
	status, _, err := a.propose(rq.Context(), rq, fsm.CmdCustomDomainDelete, fsm.CustomDomainDelete{HostingID: h.ID,
		AccountID: rq.caller.accountID, Detach: detach}, http.StatusNoContent)
	kick()
	return status, nil, err
}

// retryCertificate makes the custom domain's certificate due now (a failed
// order is tried again, an issued certificate renewed) unless the name's
// failed validations of the last hour leave no room under Let's Encrypt's
// limit (429 saying from when). The caller's hosting account without a
// custom domain, or deleted, is a 409 saying so, as one whose domain is not
// verified: it exists, and a 404 ("custom domain not found") read as the
// account being gone or not the caller's (seed: "404 … does not exist or
// is not yours").
func (a *API) retryCertificate(rq *request) (int, any, error) {
	h, err := a.loadHostingNoBody(rq)
	if err != nil {
		return 0, nil, err
	}
	var d store.CustomDomain
	err = a.state.Read(func(r store.ReadTx) (err error) { d, err = r.CustomDomain(rq.caller.accountID, h.ID); return })
	switch {
	case errors.Is(err, store.ErrNotFound) && h.Status == api.HostingDeleted:
		return 0, nil, errf(http.StatusConflict, "conflict", "hosting account %s is deleted", h.ID)
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, errf(http.StatusConflict, "no_custom_domain", "hosting account %s has no custom domain: certificates are issued for a verified custom domain (PUT /v1/hosting/%s/custom-domain, then POST …/custom-domain/verify)", h.ID, h.ID)
	case err != nil:
		return 0, nil, err
	}
	if d.Status != api.CustomDomainVerified {
		return 0, nil, &httpError{status: http.StatusConflict, code: "conflict",
			msg: "custom domain " + d.Domain + " is not verified yet: POST /v1/hosting/" + h.ID + "/custom-domain/verify first"}
	}
	if d.Cert != nil {
		if ok, from := certissue.ManualRetryAllowed(d.Cert.FailedAt, time.Now()); !ok {
			return 0, nil, &httpError{status: http.StatusTooManyRequests, code: "retry_limited",
				msg: "the certificate of " + d.Domain + " failed validation too often in the last hour; retry after " + from.UTC().Format(time.RFC3339)}
		}
	}
	return a.propose(rq.Context(), rq, fsm.CmdCertRetry, fsm.CertRetry{HostingID: h.ID, AccountID: rq.caller.accountID}, http.StatusOK)
}
