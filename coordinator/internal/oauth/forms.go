package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/jsonmembers"
	"github.com/hostplane/hostplane/pkg/validate"
)

// TokenRequest is a decoded POST /oauth/token form (RFC 6749 §4.1.3, §6;
// RFC 8628 §3.4; RFC 8707 §2.2).
type TokenRequest struct {
	GrantType    string
	ClientID     string
	Code         string
	RedirectURI  string
	CodeVerifier string
	DeviceCode   string
	RefreshToken string
	Resource     string // as sent; the handler checks it against the issuer
}

// ParseTokenRequest decodes the token endpoint's form. Public clients only:
// client_id is required and no client secret is accepted.
func ParseTokenRequest(form url.Values) (TokenRequest, *Error) {
	var t TokenRequest
	if e := params(form, required("grant_type", &t.GrantType), clientID(&t.ClientID)); e != nil {
		return t, e
	}
	if _, ok := form["client_secret"]; ok {
		return t, Errorf(http.StatusBadRequest, "invalid_client", "parameter \"client_secret\": clients here are public (token_endpoint_auth_method none)")
	}
	if e := params(form, resource(&t.Resource)); e != nil {
		return t, e
	}
	switch t.GrantType {
	case GrantTypeAuthorizationCode:
		e := params(form, required("code", &t.Code), required("redirect_uri", &t.RedirectURI), required("code_verifier", &t.CodeVerifier))
		if e != nil {
			return t, e
		}
		if !ValidVerifier(t.CodeVerifier) {
			return t, invalidRequest("parameter \"code_verifier\" must be 43-128 characters of A-Z a-z 0-9 - . _ ~")
		}
	case GrantTypeDeviceCode:
		if e := params(form, required("device_code", &t.DeviceCode)); e != nil {
			return t, e
		}
	case GrantTypeRefreshToken:
		var scope string
		if e := params(form, required("refresh_token", &t.RefreshToken), optional("scope", &scope)); e != nil {
			return t, e
		}
	default:
		return t, Errorf(http.StatusBadRequest, "unsupported_grant_type", "parameter \"grant_type\": %q is not supported (authorization_code, refresh_token, %s)", t.GrantType, GrantTypeDeviceCode)
	}
	return t, nil
}

// DeviceRequest is a decoded POST /oauth/device_authorization form (RFC 8628 §3.1).
type DeviceRequest struct {
	ClientID string
	Scopes   []string
	Resource string
}

// ParseDeviceRequest decodes the device authorization form.
func ParseDeviceRequest(form url.Values) (DeviceRequest, *Error) {
	var d DeviceRequest
	if e := params(form, clientID(&d.ClientID)); e != nil {
		return d, e
	}
	e := scopeAndResource(form, &d.Scopes, &d.Resource)
	return d, e
}

// RevokeRequest is a decoded POST /oauth/revoke form (RFC 7009 §2.1).
type RevokeRequest struct {
	Token    string
	Hint     string
	ClientID string
}

// ParseRevokeRequest decodes the revocation form.
func ParseRevokeRequest(form url.Values) (RevokeRequest, *Error) {
	var r RevokeRequest
	e := params(form, required("token", &r.Token), optional("token_type_hint", &r.Hint), optional("client_id", &r.ClientID))
	return r, e
}

// AuthorizeRequest is a decoded authorization request (RFC 6749 §4.1.1 with
// PKCE, RFC 7636, and RFC 8707's resource), from the query of GET
// /oauth/authorize or the consent form that repeats it.
type AuthorizeRequest struct {
	ClientID      string
	RedirectURI   string
	State         string
	Scopes        []string
	CodeChallenge string
	Resource      string
}

// ParseAuthorizeRequest decodes an authorization request. The client and its
// redirect URI are checked by the caller, which must not redirect before.
func ParseAuthorizeRequest(form url.Values) (AuthorizeRequest, *Error) {
	var a AuthorizeRequest
	var rt string
	e := params(form, required("client_id", &a.ClientID), required("redirect_uri", &a.RedirectURI), optional("state", &a.State), required("response_type", &rt))
	if e != nil {
		return a, e
	}
	if rt != "code" {
		return a, Errorf(http.StatusBadRequest, "unsupported_response_type", "parameter \"response_type\" must be \"code\"")
	}
	if a.CodeChallenge, e = Param(form, "code_challenge", true); e != nil {
		return a, invalidRequest("parameter \"code_challenge\" is required (PKCE S256)")
	}
	var method string
	if e := params(form, optional("code_challenge_method", &method)); e != nil {
		return a, e
	}
	if method != "S256" {
		return a, invalidRequest("parameter \"code_challenge_method\" must be \"S256\"")
	}
	if !ValidChallenge(a.CodeChallenge) {
		return a, invalidRequest("parameter \"code_challenge\" must be 43 base64url characters (S256)")
	}
	e = scopeAndResource(form, &a.Scopes, &a.Resource)
	return a, e
}

// scopeAndResource reads the optional scope, parsed, and the optional
// resource.
func scopeAndResource(form url.Values, scopes *[]string, res *string) *Error {
	var scope string
	if e := params(form, optional("scope", &scope)); e != nil {
		return e
	}
	var e *Error
	if *scopes, e = ParseScope(scope); e != nil {
		return e
	}
	return params(form, resource(res))
}

// param is one form parameter to read with Param: its name, whether it is
// required, where its value goes, and the error code a refusal is answered
// with ("" keeps Param's invalid_request).
type param struct {
	name, code string
	required   bool
	to         *string
}

func required(name string, to *string) param { return param{name: name, required: true, to: to} }
func optional(name string, to *string) param { return param{name: name, to: to} }

// clientID is the required client_id, refused as invalid_client.
func clientID(to *string) param { return param{"client_id", "invalid_client", true, to} }

// resource is the optional RFC 8707 resource, refused as invalid_target.
func resource(to *string) param { return param{"resource", "invalid_target", false, to} }

// params reads ps in order; the first refusal is the error, and the
// parameters after it are left unread.
func params(form url.Values, ps ...param) *Error {
	for _, p := range ps {
		v, e := Param(form, p.name, p.required)
		if e != nil {
			if p.code != "" {
				return Errorf(http.StatusBadRequest, p.code, "%s", e.Description)
			}
			return e
		}
		*p.to = v
	}
	return nil
}

// Client is what the server knows of a client: registered (RFC 7591) or
// described by its client ID metadata document.
type Client struct {
	ID           string   `json:"client_id"`
	Name         string   `json:"client_name"`
	RedirectURIs []string `json:"redirect_uris"`
	GrantTypes   []string `json:"grant_types"`
}

// AllowsGrant reports whether the client registered the grant type.
func (c Client) AllowsGrant(gt string) bool { return slices.Contains(c.GrantTypes, gt) }

// Registration is the client metadata of RFC 7591 §2 that hostplane uses.
// Other members are ignored, as §2 requires.
type Registration struct {
	ClientID                string   `json:"client_id,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
}

var supportedGrants = []string{GrantTypeAuthorizationCode, GrantTypeRefreshToken, GrantTypeDeviceCode}

func invalidMetadata(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "invalid_client_metadata", format, args...)
}

// ParseRegistration decodes and checks a registration request body (RFC 7591
// §3.1) into the client to store (its ID is left for the caller to set).
func ParseRegistration(body []byte) (Client, Registration, *Error) {
	var r Registration
	if !utf8.Valid(body) {
		return Client{}, r, invalidMetadata("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return Client{}, r, invalidMetadata("the body is not a JSON object of client metadata: %s", jsonMessage(err))
	}
	if dec.More() {
		return Client{}, r, invalidMetadata("the body has data after the JSON object")
	}
	// A name given twice, or one in another case than RFC 7591's (which
	// encoding/json would take as the field), makes the metadata ambiguous.
	if err := jsonmembers.Check(body, reflect.TypeOf(&r)); err != nil {
		return Client{}, r, invalidMetadata("%s", err.Error())
	}
	c, e := checkMetadata(r)
	return c, r, e
}

func jsonMessage(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

func checkMetadata(r Registration) (Client, *Error) {
	c := Client{Name: strings.TrimSpace(r.ClientName)}
	if c.Name == "" {
		return c, invalidMetadata("field \"client_name\" is required (the consent page shows it)")
	}
	if utf8.RuneCountInString(c.Name) > 100 {
		return c, invalidMetadata("field \"client_name\" is longer than 100 characters")
	}
	for _, ch := range c.Name {
		if why := validate.OneLineRune(ch); why != "" {
			return c, invalidMetadata("field \"client_name\" %s", why)
		}
	}
	switch r.TokenEndpointAuthMethod {
	case "", "none":
	default:
		return c, invalidMetadata("field \"token_endpoint_auth_method\": only \"none\" (public clients with PKCE) is supported")
	}
	c.GrantTypes = r.GrantTypes
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{GrantTypeAuthorizationCode, GrantTypeRefreshToken}
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(supportedGrants, g) {
			return c, invalidMetadata("field \"grant_types\": %q is not supported", g)
		}
	}
	for _, rt := range r.ResponseTypes {
		if rt != "code" {
			return c, invalidMetadata("field \"response_types\": only \"code\" is supported")
		}
	}
	if len(r.RedirectURIs) > 10 {
		return c, invalidMetadata("field \"redirect_uris\": at most 10")
	}
	for i, u := range r.RedirectURIs {
		if err := CheckRedirectURI(u); err != "" {
			return c, Errorf(http.StatusBadRequest, "invalid_redirect_uri", "field \"redirect_uris[%d]\": %s", i, err)
		}
	}
	if c.AllowsGrant(GrantTypeAuthorizationCode) && len(r.RedirectURIs) == 0 {
		return c, Errorf(http.StatusBadRequest, "invalid_redirect_uri", "field \"redirect_uris\" is required for the authorization_code grant")
	}
	c.RedirectURIs = append([]string{}, r.RedirectURIs...)
	if _, e := ParseScope(r.Scope); e != nil {
		return c, invalidMetadata("field \"scope\": %s", e.Description)
	}
	return c, nil
}

// CheckRedirectURI returns why u cannot be a redirect URI, or "": https, http
// only to a loopback host (RFC 8252 §7.3), or a private-use scheme with a dot
// (RFC 8252 §7.1); absolute, no fragment, at most 2000 bytes.
func CheckRedirectURI(raw string) string {
	if len(raw) > 2000 {
		return "longer than 2000 bytes"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return "not an absolute URI"
	}
	if i := strings.IndexFunc(raw, func(c rune) bool { return c <= ' ' || c >= 0x7f || strings.ContainsRune("<>\"\\^`{|}", c) }); i >= 0 {
		return fmt.Sprintf("character %q is not allowed in a URI (RFC 3986; percent-encode it)", raw[i])
	}
	if h := u.Hostname(); strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") != "" {
		return "host " + h + " is not a host name or an IP address"
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "must not contain a fragment"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return "https URI without a host"
		}
	case "http":
		h := u.Hostname()
		if h != "127.0.0.1" && h != "::1" && h != "localhost" {
			return "http is allowed only to a loopback host (127.0.0.1, [::1], localhost)"
		}
	case "javascript", "data", "file", "vbscript", "blob", "about":
		return "scheme " + u.Scheme + " is not allowed"
	default:
		if !strings.Contains(u.Scheme, ".") {
			return "a private-use scheme must contain a dot (reverse domain name, RFC 8252)"
		}
	}
	return ""
}

// RedirectAllowed reports whether an authorization request's redirect_uri is
// one of the client's registered ones: the same string, or, for http to a
// loopback host, the same but for the port (RFC 8252 §7.3, OAuth 2.1: a
// native app listens on an ephemeral port it learns only when it starts, and
// a client ID metadata document cannot name it).
func RedirectAllowed(registered []string, requested string) bool {
	if slices.Contains(registered, requested) {
		return true
	}
	want, ok := loopbackWithoutPort(requested)
	if !ok {
		return false
	}
	for _, r := range registered {
		if got, ok := loopbackWithoutPort(r); ok && got == want {
			return true
		}
	}
	return false
}

// loopbackWithoutPort is raw without its port, when raw is an http URI to a
// loopback host (127.0.0.1, [::1], localhost) with no user info or fragment.
func loopbackWithoutPort(raw string) (string, bool) {
	if !strings.HasPrefix(raw, "http://") || strings.Contains(raw, "#") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	h := u.Hostname()
	if h != "127.0.0.1" && h != "::1" && h != "localhost" {
		return "", false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", false
		}
	}
	rest, ok := strings.CutPrefix(raw[len("http://"):], u.Host)
	if !ok {
		return "", false
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return "http://" + h + rest, true
}

// MaxMetadataDocument bounds a fetched client ID metadata document.
const MaxMetadataDocument = 64 << 10

// IsMetadataURL reports whether a client_id is a client ID metadata document
// URL (https with a path), as MCP clients send instead of registering.
func IsMetadataURL(clientID string) bool {
	u, err := url.Parse(clientID)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Path != "" && u.Path != "/"
}

// ParseMetadataDocument checks a client ID metadata document fetched from
// clientID: its client_id must be that URL, and it is client metadata as in
// RFC 7591 for a public client.
func ParseMetadataDocument(clientID string, body []byte) (Client, *Error) {
	if len(body) > MaxMetadataDocument {
		return Client{}, Errorf(http.StatusBadRequest, "invalid_client", "the client metadata document is larger than %d bytes", MaxMetadataDocument)
	}
	c, r, e := ParseRegistration(body)
	if e != nil {
		return Client{}, Errorf(http.StatusBadRequest, "invalid_client", "client metadata document: %s", e.Description)
	}
	if r.ClientID != clientID {
		return Client{}, Errorf(http.StatusBadRequest, "invalid_client", "client metadata document: field \"client_id\" must be the document's URL %q", clientID)
	}
	c.ID = clientID
	return c, nil
}

// DecodeConsentForm parses an application/x-www-form-urlencoded body of the
// consent pages (at most 16 KiB).
func DecodeConsentForm(body []byte) (url.Values, *Error) {
	if len(body) > 16<<10 {
		return nil, invalidRequest("the form is larger than 16 KiB")
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalidRequest("the form is not valid application/x-www-form-urlencoded")
	}
	return v, nil
}
