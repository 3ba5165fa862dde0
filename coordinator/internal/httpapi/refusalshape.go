package httpapi

import (
	"context"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/oauth"
	"github.com/hostplane/hostplane/pkg/api"
)

// The answers the read gate and the forwarder write themselves, for an
// endpoint whose own handler never ran (a follower that cannot reach the
// leader, a cluster without a leader, a read the leader could not confirm, a
// body the follower could not read), are in the error shape of the
// endpoint's family, with the same status, Retry-After, X-Request-Id and
// Cache-Control as before: /v1, admin and /mcp's own HTTP answers the
// api.Error body (an MCP tool call's /v1 answer becomes its error result);
// the OAuth protocol endpoints (/oauth/token, /oauth/revoke, /oauth/register,
// /oauth/device_authorization) RFC 6749 section 5.2's {"error",
// "error_description"}, as every other answer of theirs; the consent pages
// (/oauth/authorize, /oauth/device) an HTML page, as their other refusals.
// The well-known documents are served by every coordinator itself.

// refusalShape writes e in an endpoint family's error shape.
type refusalShape func(w http.ResponseWriter, rid string, e *api.Error)

type refusalShapeKey struct{}

// withRefusalShape is r, whose gate and forwarding refusals are written by s.
func withRefusalShape(r *http.Request, s refusalShape) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), refusalShapeKey{}, s))
}

// writeRefusal writes e, a refusal of the gate or the forwarder, in the
// shape of r's endpoint family (writeError's, the /v1 body, by default).
func writeRefusal(w http.ResponseWriter, r *http.Request, rid string, e *api.Error) {
	if s, ok := r.Context().Value(refusalShapeKey{}).(refusalShape); ok {
		s(w, rid, e)
		return
	}
	writeError(w, rid, e)
}

// oauthShape writes e as an OAuth protocol endpoint's error (oauthErrorf:
// its code follows from its status), e's message the description.
func oauthShape(w http.ResponseWriter, _ string, e *api.Error) {
	writeJSON(w, e.StatusCode, oauthErrorf(e.StatusCode, "%s", e.Message))
}

// oauthErrorf is an OAuth protocol endpoint's error whose code follows from
// its status: 503 temporarily_unavailable, 429 rate_limited, another 5xx
// server_error, any other status invalid_request. The one table of the
// refusals that have no code of their own: the gate's and the forwarder's
// (oauthShape), the address budget's 429 (oauthServe), leadership lost or
// an internal error (oauthInternal), a metadata document not fetchable yet.
func oauthErrorf(status int, format string, args ...any) *oauth.Error {
	code := "invalid_request"
	switch {
	case status == http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status == http.StatusTooManyRequests:
		code = "rate_limited"
	case status >= 500:
		code = "server_error"
	}
	return oauth.Errorf(status, code, format, args...)
}

// pageShape writes e as a consent page's error page.
func (a *API) pageShape(w http.ResponseWriter, _ string, e *api.Error) {
	a.renderError(w, e.StatusCode, e.Message)
}
