package httpapi

import (
	"net/http"

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
	Scopes    []string
}

// Authenticate resolves r's credentials exactly as every /v1 route does (the
// same key look-up, revocation and expiry rules): a *api.Error (401) when
// they are missing or not valid.
func (a *API) Authenticate(r *http.Request) (Caller, *api.Error) {
	c, err := a.authenticate(&request{Request: r, now: a.now().UTC()})
	if err != nil {
		ae, internal := toAPIError(err)
		if internal {
			a.log.Error("authenticate", "err", err)
		}
		return Caller{}, ae
	}
	return Caller{KeyID: c.keyID, AccountID: c.accountID, Scopes: append([]string(nil), c.scopes...)}, nil
}
