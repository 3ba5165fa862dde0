package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/oauth"
	"github.com/hostplane/hostplane/pkg/api"
)

type mount struct {
	pattern string
	handler http.Handler
}

// Mount serves h at pattern (a net/http pattern such as "/mcp") on the public
// listener, inside the same request-id, security-header and metrics wrapping as
// /v1. Call it before Handler.
func (a *API) Mount(pattern string, h http.Handler) {
	a.mounts = append(a.mounts, mount{pattern: pattern, handler: h})
}

// Caller is who an authenticated request acts for.
type Caller struct {
	KeyID     string
	AccountID string
	Scopes    []string // shared with the key's cached record: read only
	limit     int      // requests per minute (CountRequest)
}

// CountRequest counts a request that Authenticate let in, and that no /v1
// route will count (an /mcp request other than a tool call), against the
// caller's per-minute limit as /v1 counts its own: it sets the X-RateLimit-*
// headers and is a 429 (with Retry-After) beyond the limit.
//
// It may be called after the request's body was read, or failed to be: a
// body that stalls past --http-body-timeout ends the request's context (net/http
// cancels it on the read error), and a follower's lease from the leader asked
// under that context would be refused at once (a 429 for a 408). The count
// runs under the request's context without its cancellation, bounded by
// countWait.
func (a *API) CountRequest(w http.ResponseWriter, r *http.Request, c Caller) *api.Error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), countWait)
	defer cancel()
	rq := &request{Request: r.WithContext(ctx), w: w, now: a.now().UTC()}
	if err := a.rateLimit(rq, &caller{keyID: c.KeyID, limit: c.limit}); err != nil {
		ae, _ := toAPIError(err)
		return ae
	}
	return nil
}

// CountUnauthenticated counts a request refused for its credentials (none, or
// a key or token that is not valid, or used from outside its allow-list: /mcp's
// 401s and 403 ip_not_allowed) against its client address's budget, as /v1
// counts its requests without a valid key (limitUnkeyed): it sets the
// X-RateLimit-* headers and is a 429 (with Retry-After) beyond the budget.
func (a *API) CountUnauthenticated(w http.ResponseWriter, r *http.Request) *api.Error {
	if err := a.limitUnkeyed(w, r); err != nil {
		ae, _ := toAPIError(err)
		return ae
	}
	return nil
}

// Authenticate resolves r's credentials exactly as every /v1 route does (the
// same key look-up, revocation and expiry rules): a *api.Error, 401 when
// they are missing or not valid, 403 from an address the key's allow-list
// does not hold.
//
// A follower authenticates from its own state, which may not hold a key the
// leader created a moment ago: an unknown credential there is looked up again
// for up to followerAuthWait while replication catches up.
func (a *API) Authenticate(r *http.Request) (Caller, *api.Error) {
	c, err := a.authenticate(&request{Request: r, now: a.now().UTC()})
	for deadline := time.Now().Add(followerAuthWait); err != nil && a.unknownCredential(r, err) && !a.raft.IsLeader() && time.Now().Before(deadline); {
		select {
		case <-r.Context().Done():
			return Caller{}, api.NewError(http.StatusServiceUnavailable, "canceled", "request canceled")
		case <-time.After(25 * time.Millisecond):
		}
		c, err = a.authenticate(&request{Request: r, now: a.now().UTC()})
	}
	if err != nil {
		ae, internal := toAPIError(err)
		if internal {
			a.log.Error("authenticate", "err", err)
		}
		return Caller{}, ae
	}
	if ip := a.clientIP(r); !auth.IPAllowed(c.cidrs, ip) {
		return Caller{}, api.NewError(http.StatusForbidden, "ip_not_allowed", "this API key may not be used from "+ip)
	}
	return Caller{KeyID: c.keyID, AccountID: c.accountID, Scopes: c.scopes, limit: c.limit}, nil
}

// countWait bounds CountRequest's wait for a follower's lease from the
// leader: the lease's own fetch is bounded too (ratelimit.Leases Timeout, 2 s),
// a request of a key whose tokens other requests took meanwhile asks again.
const countWait = 5 * time.Second

// followerAuthWait bounds a follower's wait for a credential it does not know
// yet (about a few heartbeats).
const followerAuthWait = time.Second

// unknownCredential: a well-formed API key or access token that this node's
// state does not hold (or, for a token, holds revoked), not a malformed,
// expired or revoked key.
func (a *API) unknownCredential(r *http.Request, err error) bool {
	ae, _ := toAPIError(err)
	cred := auth.FromRequest(r)
	switch ae.Code {
	case "invalid_api_key":
		return auth.WellFormed(a.cfg.KeyPrefix, cred)
	case "invalid_token":
		return oauth.WellFormedToken(oauth.AccessPrefix(a.cfg.KeyPrefix), cred)
	}
	return false
}
