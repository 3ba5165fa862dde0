package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/oauth"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// The consent pages: /oauth/device (enter the user code, see the client and
// the scopes it asks for, approve with an API key holding them) and
// /oauth/authorize (the same for the authorization-code grant). The API key is
// posted in the form body, never put in a URL, and never logged. CSRF: the
// Origin of a POST must be this server, and a double-submit token (an
// HttpOnly SameSite=Strict cookie and a hidden field, compared in constant
// time) must match; the pages may not be framed.

const csrfCookie = "hp_oauth_csrf"

type page struct {
	w    http.ResponseWriter
	r    *http.Request
	rid  string
	now  time.Time
	form url.Values
}

type pageFunc func(p *page)

func (a *API) pageWrap(h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r)
		h0 := w.Header()
		h0.Set(headerRequestID, rid)
		h0.Set("Cache-Control", "no-store")
		h0.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer Chromium sends Origin: null
		// on the form posts, which the Origin check must refuse.
		h0.Set("Referrer-Policy", "same-origin")
		// form-action is left out: Chromium applies it to the redirect to the
		// client's redirect_uri after the authorize form.
		h0.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
		// Each request spends its client address's budget (--ip-rate-limit),
		// on the leader, which serves the pages (a follower forwards them),
		// or, for a cross-site form refused before, where it is refused.
		tooMany := func(retry int) {
			a.renderError(w, http.StatusTooManyRequests, fmt.Sprintf("Too many attempts from your address. Wait %d seconds and try again.", retry))
		}
		if r.Method == http.MethodPost && !sameOrigin(r) {
			// Checked where the browser's request arrived (a follower rewrites
			// Host when it forwards).
			if _, retry := a.spendAddress(w, r); retry > 0 {
				tooMany(retry)
				return
			}
			a.renderError(w, http.StatusForbidden, "This form was posted from another site.")
			return
		}
		if r = withRefusalShape(r, a.pageShape); !a.readGate(w, r, rid) {
			return
		}
		p := &page{w: w, r: r, rid: rid, now: a.now().UTC()}
		if _, retry := a.spendAddress(w, r); retry > 0 {
			tooMany(retry)
			return
		}
		if r.Method == http.MethodPost {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10+1))
			if err != nil || mt != "application/x-www-form-urlencoded" {
				a.renderError(w, http.StatusBadRequest, "The form could not be read.")
				return
			}
			form, e := oauth.DecodeConsentForm(body)
			if e != nil {
				a.renderError(w, http.StatusBadRequest, e.Description)
				return
			}
			p.form = form
			if !csrfOK(r, form) {
				a.renderError(w, http.StatusForbidden, "This form expired or was not sent from this page. Reload the page and try again.")
				return
			}
		}
		h(p)
	})
}

// sameOrigin: a POST without an Origin header is a non-browser client (no
// CSRF risk); with one, its host must be the host the request was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func csrfOK(r *http.Request, form url.Values) bool {
	c, err := r.Cookie(csrfCookie)
	v := form.Get("csrf")
	return err == nil && len(c.Value) == 64 && len(v) == 64 && subtle.ConstantTimeCompare([]byte(c.Value), []byte(v)) == 1
}

func (a *API) csrfToken(w http.ResponseWriter) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: tok, Path: "/oauth/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: strings.HasPrefix(a.Issuer(), "https://"), MaxAge: 1800,
	})
	return tok
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:34em;margin:3em auto;padding:0 1em;color:#222}
input{font-size:1.1em;padding:.3em;width:100%;box-sizing:border-box}button{font-size:1.1em;padding:.4em 1.2em;margin:.8em .5em 0 0}
.err{color:#a00}.ok{color:#070}code{font-size:1.1em}</style></head><body>
<h1>{{if .Heading}}{{.Heading}}{{else}}{{.Title}}{{end}}</h1>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
{{if .Done}}<p class="ok" id="done">{{.Done}}</p>{{end}}
{{if eq .Step "code"}}
<form method="post" action="/oauth/device">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label for="user_code">Enter the code shown on your device:</label></p>
<input id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" placeholder="XXXX-XXXX" value="{{.UserCode}}">
<button id="continue" type="submit">Continue</button>
</form>
{{else if eq .Step "consent"}}
<p><strong id="client_name"><bdi>{{.ClientName}}</bdi></strong> asks to access your account{{if .Resource}} at <code id="resource"><bdi>{{.Resource}}</bdi></code>{{end}} with these scopes:</p>
<ul id="scopes">{{range .Scopes}}<li>{{.}}</li>{{else}}<li>every scope of the API key you approve with</li>{{end}}</ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<p><label for="api_key">Prove it is your account: an API key that holds these scopes (it is not stored or shared with the app):</label></p>
<input id="api_key" name="api_key" type="password" autocomplete="off">
<button id="approve" type="submit" name="decision" value="approve">Approve</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button>
</form>
{{end}}
</body></html>
`))

// pageData is what a page shows. A client chooses its name (client_name), and
// a bidi control in it (U+202E) would reorder the words after it: the
// template shows ClientName and Resource in <bdi>, and Heading and Done are
// built by named, which puts the name in <bdi> too. Title (the <title>, text
// only) ends with the name, so there is nothing after it to reorder.
type pageData struct {
	Title      string
	Heading    template.HTML // the <h1> when set (named); Title otherwise
	Step       string        // "code", "consent" or "" (a message)
	Error      string
	Done       template.HTML // constant text, or built by named
	CSRF       string
	UserCode   string
	ClientName string
	Resource   string
	Scopes     []string
	Action     string
	Hidden     map[string]string
}

// named is before, name and after, each HTML-escaped, the name (a client's
// choice) isolated in <bdi> so its bidi characters cannot reorder the rest.
func named(before, name, after string) template.HTML {
	return template.HTML(template.HTMLEscapeString(before) + "<bdi>" + template.HTMLEscapeString(name) + "</bdi>" + template.HTMLEscapeString(after))
}

func (a *API) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

func (a *API) renderError(w http.ResponseWriter, status int, msg string) {
	a.render(w, status, pageData{Title: "Authorization failed", Error: msg})
}

// consentDecision acts on a submitted consent form's decision, the same for
// the authorization code and the device flows: "deny" runs deny, an unknown
// decision is a 400 page, and "approve" checks the typed API key against the
// scopes asked (approver). A refused key shows the consent page again (the
// one consent builds) with the reason, as a 403. ok says the request was
// approved: the approval is then the grant; otherwise the answer has been
// written.
func (a *API) consentDecision(p *page, asked []string, deny func(), consent func() pageData) (approval, bool) {
	switch p.form.Get("decision") {
	case "deny":
		deny()
		return approval{}, false
	case "approve":
	default:
		a.renderError(p.w, http.StatusBadRequest, "Unknown decision.")
		return approval{}, false
	}
	ap, msg := a.approver(p, asked)
	if msg != "" {
		d := consent()
		d.Error = msg
		a.render(p.w, http.StatusForbidden, d)
		return approval{}, false
	}
	return ap, true
}

// approval is what a consent form's API key approved: the account, the
// scopes to grant and the key's id (the grant lives no longer than the key).
type approval struct {
	account, keyID string
	scopes         []string
}

// approver checks the API key typed into a consent form: live, usable from
// the client's address, and holding every scope asked (none asked: the key's
// scopes are granted). It returns the approval, or why there is none.
func (a *API) approver(p *page, asked []string) (approval, string) {
	key := strings.TrimSpace(p.form.Get("api_key"))
	if key == "" {
		return approval{}, "Enter an API key of your account to approve."
	}
	if !auth.WellFormed(a.cfg.KeyPrefix, key) {
		return approval{}, "That is not an API key of this provider."
	}
	k, err := a.lookupKey(auth.Hash(key))
	if err != nil || k.RevokedAt != nil || (k.ExpiresAt != nil && !p.now.Before(*k.ExpiresAt)) {
		return approval{}, "That API key is unknown, revoked or expired."
	}
	if !auth.IPAllowed(k.AllowedCIDRs, a.clientIP(p.r)) {
		return approval{}, "That API key may not be used from your address."
	}
	if len(asked) == 0 {
		return approval{account: k.AccountID, keyID: k.ID, scopes: oauth.CanonicalScopes(k.Scopes)}, ""
	}
	if miss := oauth.Missing(asked, k.Scopes); len(miss) > 0 {
		return approval{}, "That API key lacks the scopes " + strings.Join(miss, ", ") + "; use a key that holds every scope asked."
	}
	return approval{account: k.AccountID, keyID: k.ID, scopes: asked}, ""
}

func (a *API) devicePage(p *page) {
	a.render(p.w, http.StatusOK, pageData{Title: "Connect a device", Step: "code", CSRF: a.csrfToken(p.w)})
}

func (a *API) deviceSubmit(p *page) {
	norm, ok := oauth.NormalizeUserCode(p.form.Get("user_code"))
	if !ok {
		a.render(p.w, http.StatusBadRequest, pageData{Title: "Connect a device", Step: "code", CSRF: a.csrfToken(p.w), Error: "That is not a code of the form XXXX-XXXX."})
		return
	}
	hash := oauth.UserCodeHash(norm)
	var d store.OAuthDevice
	err := a.state.Read(func(r store.ReadTx) (err error) { d, err = r.OAuthDeviceByUserCode(hash); return })
	if err != nil || d.Status != store.DevicePending || !p.now.Before(d.ExpiresAt) {
		a.render(p.w, http.StatusBadRequest, pageData{Title: "Connect a device", Step: "code", CSRF: a.csrfToken(p.w), Error: "Unknown or expired code. Check the code on your device, or start again there."})
		return
	}
	display := norm[:4] + "-" + norm[4:]
	consent := pageData{
		Title: "Connect " + d.ClientName, Heading: named("Connect ", d.ClientName, ""), Step: "consent", CSRF: a.csrfToken(p.w), ClientName: d.ClientName, Resource: d.Resource,
		Scopes: d.Scopes, Action: "/oauth/device", Hidden: map[string]string{"user_code": display},
	}
	if p.form.Get("decision") == "" {
		a.render(p.w, http.StatusOK, consent)
		return
	}
	ap, ok := a.consentDecision(p, d.Scopes, func() {
		if _, e := a.pagePropose(p, fsm.CmdOAuthDeviceDecide, fsm.OAuthDeviceDecide{UserCodeHash: hash}); e != "" {
			consent.Error = e
			a.render(p.w, http.StatusBadRequest, consent)
			return
		}
		a.render(p.w, http.StatusOK, pageData{Title: "Request denied", Done: named("You denied ", d.ClientName, ". You can close this page.")})
	}, func() pageData { return consent })
	if !ok {
		return
	}
	account, scopes := ap.account, ap.scopes
	if _, e := a.pagePropose(p, fsm.CmdOAuthDeviceDecide, fsm.OAuthDeviceDecide{UserCodeHash: hash, Approve: true, AccountID: account, Scopes: scopes, KeyID: ap.keyID}); e != "" {
		consent.Error = e
		a.render(p.w, http.StatusBadRequest, consent)
		return
	}
	a.log.Info("oauth device approved", "request_id", p.rid, "client_id", d.ClientID, "account_id", account, "scopes", strings.Join(scopes, " "))
	a.render(p.w, http.StatusOK, pageData{Title: "Device connected", Done: named("", d.ClientName, " is connected to your account. You can return to your device and close this page.")})
}

func (a *API) pagePropose(p *page, t fsm.CommandType, payload any) (any, string) {
	env, err := fsm.NewEnvelope(t, p.now, payload)
	if err != nil {
		return nil, "Internal error."
	}
	res, err := a.apply(p.r.Context(), env)
	if err != nil {
		var oe *fsm.OAuthError
		if errors.As(err, &oe) {
			return nil, oe.Description
		}
		if ae, internal := toAPIError(err); !internal {
			return nil, ae.Message
		}
		a.log.Error("oauth consent failed", "request_id", p.rid, "err", err)
		return nil, "Internal error (request " + p.rid + "). Try again."
	}
	return res.Value, ""
}

// authorizeRequest checks an authorization request up to the point where
// errors may be sent to the redirect URI: until then they are shown here.
func (a *API) authorizeRequest(p *page, params url.Values) (oauth.AuthorizeRequest, oauth.Client, string, bool) {
	req, e := oauth.ParseAuthorizeRequest(params)
	if e == nil {
		e = a.brandScopes(req.Scopes)
	}
	if req.ClientID == "" || req.RedirectURI == "" {
		a.renderError(p.w, http.StatusBadRequest, e.Description)
		return req, oauth.Client{}, "", false
	}
	cl, ce := a.client(p.r.Context(), req.ClientID)
	if ce != nil {
		a.renderError(p.w, http.StatusBadRequest, ce.Description)
		return req, cl, "", false
	}
	if !oauth.RedirectAllowed(cl.RedirectURIs, req.RedirectURI) {
		a.renderError(p.w, http.StatusBadRequest, "redirect_uri is not one this client registered.")
		return req, cl, "", false
	}
	if e == nil && !cl.AllowsGrant(oauth.GrantTypeAuthorizationCode) {
		e = oauth.Errorf(http.StatusBadRequest, "unauthorized_client", "this client did not register the authorization_code grant type")
	}
	resource := ""
	if e == nil {
		resource, e = oauth.ParseResource(a.Issuer(), req.Resource)
	}
	if e != nil {
		a.redirectError(p, req, e.Code, e.Description)
		return req, cl, "", false
	}
	return req, cl, resource, true
}

func (a *API) redirectBack(p *page, req oauth.AuthorizeRequest, q url.Values) {
	u, _ := url.Parse(req.RedirectURI)
	vals := u.Query()
	for k, v := range q {
		vals[k] = v
	}
	if req.State != "" {
		vals.Set("state", req.State)
	}
	vals.Set("iss", a.Issuer())
	u.RawQuery = vals.Encode()
	http.Redirect(p.w, p.r, u.String(), http.StatusSeeOther)
}

func (a *API) redirectError(p *page, req oauth.AuthorizeRequest, code, desc string) {
	a.redirectBack(p, req, url.Values{"error": {code}, "error_description": {desc}})
}

func (a *API) authorizePage(p *page) {
	req, cl, resource, ok := a.authorizeRequest(p, p.r.URL.Query())
	if !ok {
		return
	}
	a.render(p.w, http.StatusOK, a.authorizeConsent(p, req, cl, resource, p.r.URL.Query()))
}

func (a *API) authorizeConsent(p *page, req oauth.AuthorizeRequest, cl oauth.Client, resource string, params url.Values) pageData {
	hidden := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "state", "response_type", "code_challenge", "code_challenge_method", "scope", "resource"} {
		if v := params.Get(k); v != "" {
			hidden[k] = v
		}
	}
	return pageData{
		Title: "Connect " + cl.Name, Heading: named("Connect ", cl.Name, ""), Step: "consent", CSRF: a.csrfToken(p.w), ClientName: cl.Name, Resource: resource,
		Scopes: req.Scopes, Action: "/oauth/authorize", Hidden: hidden,
	}
}

func (a *API) authorizeSubmit(p *page) {
	req, cl, resource, ok := a.authorizeRequest(p, p.form)
	if !ok {
		return
	}
	ap, ok := a.consentDecision(p, req.Scopes, func() {
		a.redirectError(p, req, "access_denied", "the user denied the request")
	}, func() pageData { return a.authorizeConsent(p, req, cl, resource, p.form) })
	if !ok {
		return
	}
	account, scopes := ap.account, ap.scopes
	code, hash := oauth.NewAuthCode(a.cfg.KeyPrefix)
	if _, e := a.pagePropose(p, fsm.CmdOAuthCodeCreate, fsm.OAuthCodeCreate{
		CodeHash: hash,
		OAuthCodeApproval: store.OAuthCodeApproval{
			ClientID: cl.ID, ClientName: cl.Name, RedirectURI: req.RedirectURI, Challenge: req.CodeChallenge,
			AccountID: account, Scopes: scopes, Resource: resource,
		},
		TTL: oauth.AuthCodeTTL, KeyID: ap.keyID,
	}); e != "" {
		a.redirectError(p, req, "server_error", e)
		return
	}
	a.log.Info("oauth authorization approved", "request_id", p.rid, "client_id", cl.ID, "account_id", account, "scopes", strings.Join(scopes, " "))
	a.redirectBack(p, req, url.Values{"code": {code}})
}

// ApproveDevice is the admin approval of a device authorization (a provider's
// own dashboard after its own login, or hostplanectl oauth approve): the
// account's grant is at most the scopes its live API keys hold together.
func (a *API) adminOAuthApprove(r *http.Request, body []byte, now time.Time) (int, any, error) {
	var req api.OAuthApproveRequest
	if err := decodeStrict(body, &req); err != nil {
		return 0, nil, err
	}
	norm, ok := oauth.NormalizeUserCode(req.UserCode)
	if !ok {
		return 0, nil, badRequest("user_code must be 8 letters of the device's code (XXXX-XXXX)")
	}
	hash := oauth.UserCodeHash(norm)
	var d store.OAuthDevice
	var held []string
	err := a.state.Read(func(rt store.ReadTx) error {
		var err error
		if d, err = rt.OAuthDeviceByUserCode(hash); err != nil {
			return err
		}
		if req.Deny {
			return nil
		}
		if !rt.AccountExists(req.AccountID) {
			return notFound("account")
		}
		keys, err := rt.AccountKeys(req.AccountID)
		for _, k := range keys {
			if k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt)) {
				held = append(held, k.Scopes...)
			}
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, errf(http.StatusNotFound, "not_found", "no pending device authorization has this user code")
	} else if err != nil {
		return 0, nil, err
	}
	out := api.OAuthApproval{ClientID: d.ClientID, ClientName: d.ClientName, AccountID: req.AccountID, Resource: d.Resource, Status: "denied"}
	cmd := fsm.OAuthDeviceDecide{UserCodeHash: hash}
	if !req.Deny {
		if req.AccountID == "" {
			return 0, nil, badRequest("account_id is required to approve")
		}
		scopes := req.Scopes
		for _, s := range scopes {
			if !a.brand.IsScope(s) {
				return 0, nil, badRequest("scopes: %q is not a scope", s)
			}
		}
		if len(scopes) == 0 {
			scopes = d.Scopes
		}
		if len(scopes) == 0 {
			scopes = held
		}
		scopes = oauth.CanonicalScopes(scopes)
		if miss := oauth.Missing(scopes, held); len(miss) > 0 {
			return 0, nil, errf(http.StatusForbidden, "missing_scope", "the account's API keys do not hold %s; grant at most what it holds", strings.Join(miss, ", "))
		}
		cmd.Approve, cmd.AccountID, cmd.Scopes = true, req.AccountID, scopes
		out.Scopes, out.Status = scopes, "approved"
	}
	if _, err := a.adminApply(r.Context(), fsm.CmdOAuthDeviceDecide, now, cmd); err != nil {
		var oe *fsm.OAuthError
		if errors.As(err, &oe) {
			return 0, nil, errf(http.StatusConflict, oe.Code, "%s", oe.Description)
		}
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func (a *API) adminListConnectedApps(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	id := r.PathValue("id")
	var apps []api.ConnectedApp
	err := a.state.Read(func(rt store.ReadTx) (err error) {
		if !rt.AccountExists(id) {
			return notFound("account")
		}
		apps, err = rt.ConnectedApps(id)
		return
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.ConnectedAppList{Data: apps}, nil
}

func (a *API) adminRevokeConnectedApp(r *http.Request, _ []byte, now time.Time) (int, any, error) {
	v, err := a.adminApply(r.Context(), fsm.CmdOAuthRevoke, now, fsm.OAuthRevoke{GrantID: r.PathValue("id")})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}
