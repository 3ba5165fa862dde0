package httpapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/oauth"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// OAuth 2.1 authorization server (README "Connecting AI tools: OAuth"): the
// metadata documents, dynamic client registration, the device and
// authorization-code grants, refresh rotation, revocation, and the bearer
// check of access tokens (authenticateToken). State lives in the FSM as hashes
// (fsm/oauth.go); what is kept here in memory (poll pacing, fetched client
// metadata documents) is the leader's and starts afresh after a leader change.

type oauthRuntime struct {
	mu      sync.Mutex
	polls   map[string]*devicePoll // device-code hash → pacing
	clients map[string]cachedClient
	fetch   func(ctx context.Context, clientID string) (oauth.Client, *oauth.Error) // tests may replace it
}

type devicePoll struct {
	last     time.Time
	interval time.Duration
}

type cachedClient struct {
	c   oauth.Client
	exp time.Time
}

// Issuer is the authorization server's issuer URL and the base of every
// resource identifier (--public-url).
func (a *API) Issuer() string {
	if a.cfg.Issuer != "" {
		return strings.TrimSuffix(a.cfg.Issuer, "/")
	}
	return "http://127.0.0.1"
}

// ResourceMetadataURL is the RFC 9728 metadata URL of the resource at path
// ("/mcp"), for the resource_metadata parameter of a 401's WWW-Authenticate.
func (a *API) ResourceMetadataURL(path string) string {
	return a.Issuer() + "/.well-known/oauth-protected-resource" + path
}

func (a *API) pollInterval() time.Duration {
	if a.cfg.OAuthPollInterval > 0 {
		return a.cfg.OAuthPollInterval
	}
	return oauth.PollInterval * time.Second
}

func (a *API) registerOAuth(mux *http.ServeMux) {
	// Every request to these endpoints is one without a valid key: each is
	// counted against its client address's budget (--ip-rate-limit, one
	// budget with /v1's and /mcp's), the documents on the coordinator that
	// answers them, the rest on the leader (oauthWrap, pageWrap).
	mux.Handle("GET /.well-known/oauth-authorization-server", publicCORS(a.addressCounted(a.asMetadata)))
	mux.Handle("GET /.well-known/oauth-protected-resource", publicCORS(a.addressCounted(a.resourceMetadata)))
	mux.Handle("GET /.well-known/oauth-protected-resource/{rest...}", publicCORS(a.addressCounted(a.resourceMetadata)))
	mux.Handle("POST /oauth/register", publicCORS(a.oauthWrap(a.oauthRegister, false)))
	mux.Handle("POST /oauth/device_authorization", publicCORS(a.oauthWrap(a.oauthDeviceAuthorization, true)))
	mux.Handle("POST /oauth/token", publicCORS(a.oauthWrap(a.oauthToken, true)))
	mux.Handle("POST /oauth/revoke", publicCORS(a.oauthWrap(a.oauthRevokeToken, true)))
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/{rest...}"} {
		mux.Handle("OPTIONS "+p, preflight("GET"))
	}
	for _, p := range []string{"/oauth/register", "/oauth/device_authorization", "/oauth/token", "/oauth/revoke"} {
		mux.Handle("OPTIONS "+p, preflight("POST"))
	}
	mux.Handle("GET /oauth/authorize", a.pageWrap(a.authorizePage))
	mux.Handle("POST /oauth/authorize", a.pageWrap(a.authorizeSubmit))
	mux.Handle("GET /oauth/device", a.pageWrap(a.devicePage))
	mux.Handle("POST /oauth/device", a.pageWrap(a.deviceSubmit))
}

// publicCORS lets a client running in a browser page (the MCP Inspector's
// OAuth flow runs there) read what any client may: the metadata documents and
// the registration, device, token and revocation answers. None of them takes a
// cookie or another ambient credential, so any origin may; the consent pages
// (/oauth/authorize, /oauth/device), which set a CSRF cookie, get none. The
// header is set when the answer starts, replacing one a forwarded answer
// brings, so a browser never sees two.
func publicCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&corsWriter{ResponseWriter: w}, r)
	})
}

type corsWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *corsWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corsWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *corsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// preflight answers a browser's CORS preflight of a publicCORS endpoint.
func preflight(method string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", method)
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *API) asMetadata(w http.ResponseWriter, r *http.Request) {
	iss := a.Issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/oauth/authorize",
		"token_endpoint":                                 iss + "/oauth/token",
		"registration_endpoint":                          iss + "/oauth/register",
		"revocation_endpoint":                            iss + "/oauth/revoke",
		"device_authorization_endpoint":                  iss + "/oauth/device_authorization",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken, oauth.GrantTypeDeviceCode},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"none"},
		"revocation_endpoint_auth_methods_supported":     []string{"none"},
		"scopes_supported":                               a.brand.AllScopes(),
		"client_id_metadata_document_supported":          true,
		"authorization_response_iss_parameter_supported": true,
		"service_documentation":                          iss + "/openapi.json",
	})
}

func (a *API) resourceMetadata(w http.ResponseWriter, r *http.Request) {
	iss := a.Issuer()
	resource := iss
	if rest := r.PathValue("rest"); rest != "" {
		var e *oauth.Error
		if resource, e = oauth.ParseResource(iss, iss+"/"+rest); e != nil {
			writeError(w, "", api.NewError(http.StatusNotFound, "route_not_found", "no protected resource /"+rest+" here"))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resource":                 resource,
		"authorization_servers":    []string{iss},
		"scopes_supported":         a.brand.AllScopes(),
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "hostplane API",
		"resource_documentation":   iss + "/openapi.json",
	})
}

// oauthCall is one request to a form or JSON endpoint of the server.
type oauthCall struct {
	r    *http.Request
	w    http.ResponseWriter
	rid  string
	now  time.Time
	form url.Values // form endpoints
	body []byte     // registration
}

type oauthFunc func(c *oauthCall) (int, any, *oauth.Error)

// oauthWrap serves a protocol endpoint on the leader (a follower forwards):
// the client address's budget, body limit and type, OAuth-style JSON errors,
// no-store.
func (a *API) oauthWrap(h oauthFunc, form bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r)
		w.Header().Set(headerRequestID, rid)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		if r = withRefusalShape(r, oauthShape); !a.readGate(w, r, rid) {
			return
		}
		c := &oauthCall{r: r, w: w, rid: rid, now: a.now().UTC()}
		status, out, e := a.oauthServe(c, h, form)
		if e != nil {
			if e.Status == 0 {
				e.Status = http.StatusBadRequest
			}
			if e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="hostplane"`)
			}
			if e.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
				// temporarily_unavailable (leadership lost during the
				// proposal, no quorum): retryable, as /v1's 503s say.
				w.Header().Set("Retry-After", "1")
			}
			writeJSON(w, e.Status, e)
			return
		}
		writeJSON(w, status, out)
	})
}

// oauthServe counts the request against its client address's budget (the
// one /v1's requests without a valid key spend: a guessed device code, code,
// PKCE verifier or refresh token is no cheaper here than a guessed key), with
// its X-RateLimit-* figures. Past it the request is refused before anything
// in it is looked at: a 429 rate_limited in OAuth's error format (RFC 6749
// section 5.2), except a device-code poll of the token endpoint, which is
// RFC 8628's slow_down (a 400: the answer a polling device client knows to
// back off on, by 5 s more each time), both with Retry-After.
func (a *API) oauthServe(c *oauthCall, h oauthFunc, form bool) (int, any, *oauth.Error) {
	limit, retry := a.spendAddress(c.w, c.r)
	body, status, _ := readLimited(c.w, c.r, 64<<10)
	if retry > 0 {
		if v, err := url.ParseQuery(string(body)); c.r.URL.Path == "/oauth/token" && status == 0 && err == nil && v.Get("grant_type") == oauth.GrantTypeDeviceCode {
			return 0, nil, oauth.Errorf(http.StatusBadRequest, "slow_down", "more than %d requests a minute from this address; wait %d s and poll less often", limit, retry)
		}
		return 0, nil, oauthErrorf(http.StatusTooManyRequests, "rate limit of %d requests per minute from this address exceeded; retry after %d s", limit, retry)
	}
	switch status {
	case http.StatusRequestEntityTooLarge:
		return 0, nil, oauth.Errorf(status, "invalid_request", "the request body is larger than 64 KiB")
	case http.StatusRequestTimeout:
		return 0, nil, oauth.Errorf(status, "invalid_request", "the request body did not arrive in time")
	case http.StatusBadRequest:
		return 0, nil, oauth.Errorf(status, "invalid_request", "the request body could not be read")
	}
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if form {
		if mt != "application/x-www-form-urlencoded" {
			return 0, nil, oauth.Errorf(http.StatusUnsupportedMediaType, "invalid_request", "send the parameters as Content-Type: application/x-www-form-urlencoded")
		}
		if c.r.URL.RawQuery != "" {
			return 0, nil, oauth.Errorf(http.StatusBadRequest, "invalid_request", "parameters go in the form body, not the query string")
		}
		v, e := oauth.DecodeConsentForm(body)
		if e != nil {
			return 0, nil, e
		}
		c.form = v
	} else {
		if mt != "application/json" {
			return 0, nil, oauth.Errorf(http.StatusUnsupportedMediaType, "invalid_client_metadata", "send the client metadata as Content-Type: application/json")
		}
		c.body = body
	}
	return h(c)
}

// oauthPropose commits an OAuth command and maps its refusals.
func (a *API) oauthPropose(c *oauthCall, t fsm.CommandType, payload any) (any, *oauth.Error) {
	env, err := fsm.NewEnvelope(t, c.now, payload)
	if err != nil {
		return nil, a.oauthInternal(c.rid, err)
	}
	res, err := a.apply(c.r.Context(), env)
	var oe *fsm.OAuthError
	switch {
	case errors.As(err, &oe):
		return nil, oauthRefusal(oe)
	case err != nil:
		if ae, internal := toAPIError(err); !internal && ae.StatusCode != http.StatusServiceUnavailable {
			return nil, oauth.Errorf(ae.StatusCode, "invalid_request", "%s", ae.Message)
		}
		return nil, a.oauthInternal(c.rid, err)
	}
	if oe, ok := res.Value.(*fsm.OAuthError); ok {
		return nil, oauthRefusal(oe)
	}
	return res.Value, nil
}

func oauthRefusal(oe *fsm.OAuthError) *oauth.Error {
	return &oauth.Error{Status: http.StatusBadRequest, Code: oe.Code, Description: oe.Description}
}

// oauthInternal maps an error that is no OAuth refusal: a 503 (leadership
// changing) stays one, anything else is logged and a server_error.
func (a *API) oauthInternal(rid string, err error) *oauth.Error {
	if ae, internal := toAPIError(err); !internal && ae.StatusCode == http.StatusServiceUnavailable {
		return oauthErrorf(http.StatusServiceUnavailable, "%s", ae.Message)
	}
	a.log.Error("oauth request failed", "request_id", rid, "err", err)
	return oauthErrorf(http.StatusInternalServerError, "internal error (request %s)", rid)
}

// client resolves a client_id: a registered client, or a client ID metadata
// document fetched (under the webhook SSRF rules) from the https URL it is.
func (a *API) client(ctx context.Context, id string) (oauth.Client, *oauth.Error) {
	if oauth.IsMetadataURL(id) {
		a.oauthRT.mu.Lock()
		cc, ok := a.oauthRT.clients[id]
		a.oauthRT.mu.Unlock()
		if ok && time.Now().Before(cc.exp) {
			return cc.c, nil
		}
		fetch := a.oauthRT.fetch
		if fetch == nil {
			fetch = a.fetchClientMetadata
		}
		c, e := fetch(ctx, id)
		if e != nil {
			return c, e
		}
		a.oauthRT.mu.Lock()
		if len(a.oauthRT.clients) > 1000 {
			clear(a.oauthRT.clients)
		}
		a.oauthRT.clients[id] = cachedClient{c: c, exp: time.Now().Add(5 * time.Minute)}
		a.oauthRT.mu.Unlock()
		return c, nil
	}
	var cl store.OAuthClient
	err := a.state.Read(func(r store.ReadTx) (err error) { cl, err = r.OAuthClient(id); return })
	if err != nil {
		return oauth.Client{}, oauth.Errorf(http.StatusUnauthorized, "invalid_client", "unknown client_id; register at /oauth/register or use a client ID metadata document URL")
	}
	return oauth.Client{ID: cl.ID, Name: cl.Name, RedirectURIs: cl.RedirectURIs, GrantTypes: cl.GrantTypes}, nil
}

func (a *API) fetchClientMetadata(ctx context.Context, id string) (oauth.Client, *oauth.Error) {
	deps, err := a.webhookDeps()
	if err != nil || deps.Guard == nil {
		return oauth.Client{}, oauthErrorf(http.StatusServiceUnavailable, "client metadata documents cannot be fetched yet; retry shortly")
	}
	refuse := func(why string) (oauth.Client, *oauth.Error) {
		return oauth.Client{}, oauth.Errorf(http.StatusBadRequest, "invalid_client", "client metadata document %s: %s", id, why)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := deps.Guard.CheckURL(ctx, id); err != nil {
		return refuse(err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return refuse("not a URL")
	}
	req.Header.Set("Accept", "application/json")
	hc := deps.Fetch
	if hc == nil {
		hc = deps.Guard.Client(5*time.Second, nil, 4)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return refuse("fetch failed: " + err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return refuse("fetch answered " + resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, oauth.MaxMetadataDocument+1))
	if err != nil {
		return refuse("read failed")
	}
	return oauth.ParseMetadataDocument(id, body)
}

func (a *API) oauthRegister(c *oauthCall) (int, any, *oauth.Error) {
	cl, reg, e := oauth.ParseRegistration(c.body)
	if e != nil {
		return 0, nil, e
	}
	id := ids.New("hpc", c.now)
	if _, e := a.oauthPropose(c, fsm.CmdOAuthClientRegister, fsm.OAuthClientRegister{Client: store.OAuthClient{
		ID: id, Name: cl.Name, RedirectURIs: cl.RedirectURIs, GrantTypes: cl.GrantTypes,
	}}); e != nil {
		return 0, nil, e
	}
	out := map[string]any{
		"client_id":                  id,
		"client_id_issued_at":        c.now.Unix(),
		"client_name":                cl.Name,
		"redirect_uris":              cl.RedirectURIs,
		"grant_types":                cl.GrantTypes,
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	if reg.Scope != "" {
		out["scope"] = reg.Scope
	}
	return http.StatusCreated, out, nil
}

// brandScopes refuses a scope of another brand (oauth.ParseScope knows every
// brand's names).
func (a *API) brandScopes(scopes []string) *oauth.Error {
	for _, s := range scopes {
		if !a.brand.IsScope(s) {
			return oauth.Errorf(http.StatusBadRequest, "invalid_scope", "scope %q is not a scope of this API (see /openapi.json)", s)
		}
	}
	return nil
}

func (a *API) oauthDeviceAuthorization(c *oauthCall) (int, any, *oauth.Error) {
	req, e := oauth.ParseDeviceRequest(c.form)
	if e == nil {
		e = a.brandScopes(req.Scopes)
	}
	if e != nil {
		return 0, nil, e
	}
	cl, e := a.client(c.r.Context(), req.ClientID)
	if e != nil {
		return 0, nil, e
	}
	if !cl.AllowsGrant(oauth.GrantTypeDeviceCode) {
		return 0, nil, oauth.Errorf(http.StatusBadRequest, "unauthorized_client", "this client did not register the device_code grant type")
	}
	resource, e := oauth.ParseResource(a.Issuer(), req.Resource)
	if e != nil {
		return 0, nil, e
	}
	device, deviceHash := oauth.NewDeviceCode(a.cfg.KeyPrefix)
	user, userHash := oauth.NewUserCode()
	interval := int(a.pollInterval() / time.Second)
	if interval < 1 {
		interval = 1
	}
	if _, e := a.oauthPropose(c, fsm.CmdOAuthDeviceStart, fsm.OAuthDeviceStart{
		OAuthDeviceRequest: store.OAuthDeviceRequest{
			ID: ids.New("dev", c.now), DeviceHash: deviceHash, UserCodeHash: userHash, ClientID: cl.ID, ClientName: cl.Name,
			Scopes: req.Scopes, Resource: resource, Interval: interval,
		},
		TTL: oauth.DeviceCodeTTL,
	}); e != nil {
		return 0, nil, e
	}
	return http.StatusOK, map[string]any{
		"device_code":      device,
		"user_code":        user,
		"verification_uri": a.Issuer() + "/oauth/device",
		"expires_in":       int(oauth.DeviceCodeTTL / time.Second),
		"interval":         interval,
	}, nil
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Resource     string `json:"resource"`
}

func (a *API) newIssue(grantID string) (fsm.OAuthIssue, string, string) {
	access, ah := oauth.NewAccessToken(a.cfg.KeyPrefix)
	refresh, rh := oauth.NewRefreshToken(a.cfg.KeyPrefix)
	return fsm.OAuthIssue{GrantID: grantID, AccessHash: ah, RefreshHash: rh, AccessTTL: oauth.AccessTTL, RefreshTTL: oauth.RefreshTTL}, access, refresh
}

func (a *API) oauthToken(c *oauthCall) (int, any, *oauth.Error) {
	req, e := oauth.ParseTokenRequest(c.form)
	if e != nil {
		return 0, nil, e
	}
	resource := ""
	if req.Resource != "" {
		if resource, e = oauth.ParseResource(a.Issuer(), req.Resource); e != nil {
			return 0, nil, e
		}
	}
	issue, access, refresh := a.newIssue(ids.New("app", c.now))
	var payload any
	var cmd fsm.CommandType
	switch req.GrantType {
	case oauth.GrantTypeDeviceCode:
		if e := a.devicePending(c, req); e != nil {
			return 0, nil, e
		}
		cmd, payload = fsm.CmdOAuthDeviceRedeem, fsm.OAuthDeviceRedeem{DeviceHash: oauth.Hash(req.DeviceCode), ClientID: req.ClientID, Issue: issue}
	case oauth.GrantTypeAuthorizationCode:
		cmd, payload = fsm.CmdOAuthCodeRedeem, fsm.OAuthCodeRedeem{
			CodeHash: oauth.Hash(req.Code), ClientID: req.ClientID, RedirectURI: req.RedirectURI,
			Challenge: oauth.ChallengeS256(req.CodeVerifier), Resource: resource, Issue: issue,
		}
	case oauth.GrantTypeRefreshToken:
		if !oauth.WellFormedToken(oauth.RefreshPrefix(a.cfg.KeyPrefix), req.RefreshToken) {
			return 0, nil, oauth.Errorf(http.StatusBadRequest, "invalid_grant", "parameter \"refresh_token\" is not a refresh token of this server")
		}
		issue.GrantID = ""
		if msg := a.refreshApproverExpired(req.RefreshToken, req.ClientID, c.now); msg != "" {
			return 0, nil, oauth.Errorf(http.StatusBadRequest, "invalid_grant", "%s", msg)
		}
		cmd, payload = fsm.CmdOAuthRefresh, fsm.OAuthRefresh{RefreshHash: oauth.Hash(req.RefreshToken), ClientID: req.ClientID, Resource: resource, Issue: issue}
	}
	v, e := a.oauthPropose(c, cmd, payload)
	if e != nil {
		return 0, nil, e
	}
	is, ok := v.(fsm.OAuthIssued)
	if !ok {
		return 0, nil, a.oauthInternal(c.rid, errors.New("token command returned no tokens"))
	}
	if cmd == fsm.CmdOAuthDeviceRedeem {
		a.oauthRT.mu.Lock()
		delete(a.oauthRT.polls, oauth.Hash(req.DeviceCode))
		a.oauthRT.mu.Unlock()
	}
	return http.StatusOK, tokenResponse{
		AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(is.AccessExpiresAt.Sub(c.now) / time.Second),
		RefreshToken: refresh, Scope: strings.Join(is.Scopes, " "), Resource: is.Resource,
	}, nil
}

// devicePending answers a device-code poll from the state without a Raft
// write while the user has not decided: authorization_pending, slow_down
// (polled faster than the interval; the interval grows by 5 s), expired_token,
// access_denied. nil means "approved: redeem it".
func (a *API) devicePending(c *oauthCall, req oauth.TokenRequest) *oauth.Error {
	hash := oauth.Hash(req.DeviceCode)
	var d store.OAuthDevice
	err := a.state.Read(func(r store.ReadTx) (err error) { d, err = r.OAuthDevice(hash); return })
	if err != nil || d.ClientID != req.ClientID {
		return oauth.Errorf(http.StatusBadRequest, "invalid_grant", "unknown device_code for this client")
	}
	if d.Status == store.DeviceApproved || d.Status == store.DeviceRedeemed || d.Status == store.DeviceDenied {
		return nil // the FSM answers (and expires) these
	}
	if !c.now.Before(d.ExpiresAt) {
		return oauth.Errorf(http.StatusBadRequest, "expired_token", "the device_code expired; start a new device authorization")
	}
	// The time between polls is the wall clock's, as the rate limits'
	// windows are: c.now (hlc) jumps forward to the entries applied here
	// while this coordinator's clock is behind them.
	now := a.wall()
	a.oauthRT.mu.Lock()
	defer a.oauthRT.mu.Unlock()
	if len(a.oauthRT.polls) > 10000 {
		clear(a.oauthRT.polls)
	}
	p := a.oauthRT.polls[hash]
	if p == nil {
		p = &devicePoll{interval: time.Duration(d.Interval) * time.Second}
		a.oauthRT.polls[hash] = p
	} else if now.Sub(p.last) < p.interval {
		p.interval += oauth.SlowDownStep * time.Second
		p.last = now
		return oauth.Errorf(http.StatusBadRequest, "slow_down", "polling faster than every %d s; wait %d s between polls", d.Interval, int(p.interval/time.Second))
	}
	p.last = now
	return oauth.Errorf(http.StatusBadRequest, "authorization_pending", "the user has not approved the request yet")
}

func (a *API) oauthRevokeToken(c *oauthCall) (int, any, *oauth.Error) {
	req, e := oauth.ParseRevokeRequest(c.form)
	if e != nil {
		return 0, nil, e
	}
	if _, e := a.oauthPropose(c, fsm.CmdOAuthRevoke, fsm.OAuthRevoke{TokenHash: oauth.Hash(req.Token), ClientID: req.ClientID}); e != nil {
		return 0, nil, e
	}
	return http.StatusOK, struct{}{}, nil
}

// headerAudiencePath carries, between coordinators, the path an in-process
// request was made for (ViaResource), trusted only from a coordinator.
const headerAudiencePath = "X-Hostplane-Audience-Path"

type audienceKey struct{}

// ViaResource marks an in-process request made on behalf of a call to path
// (/mcp dispatching a tool call to its /v1 route): an OAuth token's audience
// is checked against path instead of the request's own. Only code in this
// process can set it; a forwarded request carries it to the leader.
func ViaResource(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, audienceKey{}, path)
}

func forwardAudience(pr *httputil.ProxyRequest) {
	if p, ok := pr.In.Context().Value(audienceKey{}).(string); ok {
		pr.Out.Header.Set(headerAudiencePath, p)
	}
}

// audiencePath is the path an access token's audience must cover.
func (a *API) audiencePath(r *http.Request) string {
	if p, ok := r.Context().Value(audienceKey{}).(string); ok {
		return p
	}
	if p := r.Header.Get(headerAudiencePath); p != "" && a.clusterTokenOK(r) {
		return p
	}
	return r.URL.Path
}

// authenticateToken resolves an OAuth access token to a caller: its grant's
// account and scopes, if the token is live and its audience covers the path.
func (a *API) authenticateToken(rq *request, tok string) (*caller, error) {
	bad := func(code, msg string) error {
		if rq.w == nil {
			return errf(http.StatusUnauthorized, code, "%s", msg)
		}
		rq.w.Header().Set("WWW-Authenticate", `Bearer realm="hostplane", error="invalid_token", error_description="`+msg+`"`)
		return errf(http.StatusUnauthorized, code, "%s", msg)
	}
	if !oauth.WellFormedToken(oauth.AccessPrefix(a.cfg.KeyPrefix), tok) {
		return nil, bad("invalid_token", "invalid access token")
	}
	var t store.OAuthToken
	var g store.OAuthGrant
	var key api.KeyInfo
	approver := true
	err := a.state.Read(func(r store.ReadTx) (err error) {
		if t, g, err = r.OAuthToken(oauth.Hash(tok)); err == nil {
			key, approver = fsm.ApprovingKey(r, g)
		}
		return
	})
	if errors.Is(err, store.ErrNotFound) || err == nil && (t.Kind != oauth.KindAccess || g.RevokedAt != nil || !approver) {
		return nil, bad("invalid_token", "invalid or revoked access token")
	} else if err != nil {
		return nil, err
	}
	if !rq.now.Before(t.ExpiresAt) {
		return nil, bad("expired_token", "this access token expired at "+t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if msg := approverExpired(key, rq.now); msg != "" {
		return nil, bad("expired_token", msg) // not "invalid_token": nothing a follower waits for
	}
	if !oauth.Covers(a.Issuer(), g.Resource, a.audiencePath(rq.Request)) {
		return nil, bad("invalid_token", "this access token is for "+g.Resource+", not this resource")
	}
	// The app gets no more than the key that approved it, as a key minted
	// with a key does: that key's allow-list and per-minute limit (counted
	// per app). An app the operator approved has the defaults.
	limit := key.RateLimitPerMin
	if limit <= 0 {
		limit = a.cfg.DefaultRateLimit
	}
	return &caller{keyID: g.ID, accountID: g.AccountID, scopes: g.Scopes, limit: limit, cidrs: key.AllowedCIDRs, token: true}, nil
}

// approverExpired says why an app's credentials no longer work once the API
// key that approved it has expired ("" while it has not, or has no expiry).
func approverExpired(k api.KeyInfo, now time.Time) string {
	if k.ExpiresAt == nil || now.Before(*k.ExpiresAt) {
		return ""
	}
	return "the API key that approved this app expired at " + k.ExpiresAt.UTC().Format(time.RFC3339)
}

// refreshApproverExpired is the refresh grant's check of the approving key's
// expiry, made before the command is proposed (the FSM checks revocation;
// an expiry depends on a clock, so it is read here, at the request's time).
// Only a refresh token of this client's live grant is answered: anything
// else goes on to the FSM's own refusal.
func (a *API) refreshApproverExpired(refresh, clientID string, now time.Time) string {
	var key api.KeyInfo
	err := a.state.Read(func(r store.ReadTx) error {
		_, g, err := r.OAuthToken(oauth.Hash(refresh))
		if err != nil || g.ClientID != clientID || g.RevokedAt != nil {
			return store.ErrNotFound
		}
		key, _ = fsm.ApprovingKey(r, g)
		return nil
	})
	if err != nil {
		return ""
	}
	return approverExpired(key, now)
}

// Connected apps (/v1/account/connected-apps): the customer's grants.

func (a *API) oauthRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/account/connected-apps", Scope: api.ScopeAccountRead, handler: a.listConnectedApps},
		{Method: "DELETE", Path: "/v1/account/connected-apps/{id}", Scope: api.ScopeAccountWrite, handler: a.revokeConnectedApp},
	}
}

func (a *API) listConnectedApps(rq *request) (int, any, error) {
	var apps []api.ConnectedApp
	err := a.state.Read(func(r store.ReadTx) (err error) { apps, err = r.ConnectedApps(rq.caller.accountID); return })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.ConnectedAppList{Data: apps}, nil
}

func (a *API) revokeConnectedApp(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("app", id) {
		return 0, nil, notFound("connected app")
	}
	return a.propose(rq.Context(), rq, fsm.CmdOAuthRevoke, fsm.OAuthRevoke{GrantID: id, AccountID: rq.caller.accountID}, http.StatusOK)
}
