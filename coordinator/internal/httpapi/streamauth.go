package httpapi

import (
	"fmt"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/pkg/api"
)

// StreamRefusal checks again the credentials of r, the request that opened a
// long-lived stream (a stats stream, an MCP session's GET stream), by the
// rules each new request of the same client meets: Authenticate's (the key or
// access token known, not revoked, not expired, used from an address its
// allow-list holds) and, unless scope is "", that it grants scope. An answer
// is a 4xx refusal the stream ends with; nil lets it go on, also when the
// check itself failed (a 5xx says nothing of the credentials), so the next
// check decides.
//
// Both streams re-check through here: the stats stream once checked only
// revocation and expiry, so a key whose allow-list no longer held the client
// went on streaming to it while the same client's requests got a 403.
func (a *API) StreamRefusal(r *http.Request, scope string) *api.Error {
	c, e := a.Authenticate(r)
	if e == nil && scope != "" && !auth.HasScope(c.Scopes, scope) {
		e = api.NewError(http.StatusForbidden, "missing_scope", fmt.Sprintf("this API key lacks the %q scope", scope))
	}
	if e != nil && e.StatusCode < 500 {
		return e
	}
	return nil
}
