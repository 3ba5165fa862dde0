// Package oauth holds the pure parts of hostplane's OAuth 2.1 authorization
// server: the form and JSON decoders of its endpoints (each refusal names the
// field), PKCE S256, user codes, token prefixes, scopes, and the resource
// (RFC 8707 audience) rules. The HTTP handlers live in httpapi and the state
// (hashes only) in the FSM; nothing here reads a clock or the network.
package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/pkg/brand"
)

// Lifetimes. SPEC.md: refresh tokens are single use and live 90 days.
const (
	AccessTTL      = time.Hour
	RefreshTTL     = 90 * 24 * time.Hour
	DeviceCodeTTL  = 10 * time.Minute
	AuthCodeTTL    = 5 * time.Minute
	PollInterval   = 5 // seconds between device-code polls (RFC 8628 interval)
	SlowDownStep   = 5 // seconds added to the interval on each slow_down
	maxValueLength = 2048
)

// Grant types as they appear on the wire.
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
	GrantTypeDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// Token kinds and their prefixes after the brand's key prefix: snc_at_…, snc_rt_…
const (
	KindAccess  = "at_"
	KindRefresh = "rt_"
	kindDevice  = "dc_"
	kindCode    = "ac_"
)

// AccessPrefix is the prefix of access tokens for a brand's key prefix ("snc_at_").
func AccessPrefix(keyPrefix string) string { return keyPrefix + KindAccess }

// RefreshPrefix is the prefix of refresh tokens ("snc_rt_").
func RefreshPrefix(keyPrefix string) string { return keyPrefix + KindRefresh }

// NewAccessToken returns a fresh access token and its hash.
func NewAccessToken(keyPrefix string) (plain, hash string) { return newSecret(keyPrefix + KindAccess) }

// NewRefreshToken returns a fresh refresh token and its hash.
func NewRefreshToken(keyPrefix string) (plain, hash string) {
	return newSecret(keyPrefix + KindRefresh)
}

// NewDeviceCode returns a fresh device code and its hash.
func NewDeviceCode(keyPrefix string) (plain, hash string) { return newSecret(keyPrefix + kindDevice) }

// NewAuthCode returns a fresh authorization code and its hash.
func NewAuthCode(keyPrefix string) (plain, hash string) { return newSecret(keyPrefix + kindCode) }

func newSecret(prefix string) (string, string) {
	plain, hash, _ := auth.NewKey(prefix)
	return plain, hash
}

// WellFormedToken reports whether s could be a token of the given full prefix.
func WellFormedToken(prefix, s string) bool { return auth.WellFormed(prefix, s) }

// Hash is the stored form of a token or code.
func Hash(s string) string { return auth.Hash(s) }

// userCodeAlphabet has no vowels (no words) and no look-alikes (RFC 8628 §6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// NewUserCode returns a user code as shown to people, "WDJB-MJHT", and the hash
// of its normal form.
func NewUserCode() (display, hash string) {
	var b [8]byte
	max := big.NewInt(int64(len(userCodeAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("oauth: crypto/rand failed: " + err.Error())
		}
		b[i] = userCodeAlphabet[n.Int64()]
	}
	norm := string(b[:])
	return norm[:4] + "-" + norm[4:], UserCodeHash(norm)
}

// NormalizeUserCode accepts a user code as people type it (lower case, with or
// without the dash or spaces) and returns its normal form.
func NormalizeUserCode(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
		case r < utf8.RuneSelf && strings.IndexByte(userCodeAlphabet, byte(r)) >= 0:
			sb.WriteRune(r)
		default:
			return "", false
		}
	}
	if sb.Len() != 8 {
		return "", false
	}
	return sb.String(), true
}

// UserCodeHash is the stored form of a normalized user code.
func UserCodeHash(norm string) string { return auth.Hash("user_code:" + norm) }

// ChallengeS256 is the PKCE S256 code challenge of a verifier (RFC 7636 §4.2).
func ChallengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func unreserved(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// ValidVerifier reports whether v is a PKCE code verifier: 43-128 unreserved characters.
func ValidVerifier(v string) bool { return len(v) >= 43 && len(v) <= 128 && unreserved(v) }

// ValidChallenge reports whether c is an S256 challenge (43 base64url characters).
func ValidChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// Error is an OAuth error response (RFC 6749 §5.2): the code, a description
// safe to show (it names the field) and the HTTP status.
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Errorf makes an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "invalid_request", format, args...)
}

// Param returns the single value of a form parameter: a parameter given twice
// is refused (RFC 6749 §3.1), as is one too long or not printable.
func Param(form url.Values, name string, required bool) (string, *Error) {
	vs := form[name]
	switch {
	case len(vs) > 1:
		return "", invalidRequest("parameter %q is given more than once", name)
	case len(vs) == 0 || vs[0] == "":
		if required {
			return "", invalidRequest("parameter %q is required", name)
		}
		return "", nil
	}
	v := vs[0]
	if len(v) > maxValueLength {
		return "", invalidRequest("parameter %q is longer than %d bytes", name, maxValueLength)
	}
	if !utf8.ValidString(v) {
		return "", invalidRequest("parameter %q is not valid UTF-8", name)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", invalidRequest("parameter %q contains a control character", name)
		}
	}
	return v, nil
}

// ParseScope parses a space-delimited scope parameter into known scopes in
// canonical order; empty means "not asked".
func ParseScope(s string) ([]string, *Error) {
	var out []string
	for _, f := range strings.Fields(s) {
		if !brand.IsAnyScope(f) {
			return nil, Errorf(http.StatusBadRequest, "invalid_scope", "scope %q is not a hostplane scope (see GET /v1/scopes or /openapi.json)", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return CanonicalScopes(out), nil
}

// CanonicalScopes sorts scopes in api.AllScopes order (each brand's names
// in the place of the canonical name; see brand.SortScopes).
func CanonicalScopes(in []string) []string { return brand.SortScopes(in) }

// Missing returns the scopes of want that have lacks.
func Missing(want, have []string) []string {
	var out []string
	for _, s := range want {
		if !slices.Contains(have, s) {
			out = append(out, s)
		}
	}
	return out
}

// Resources: the API as a whole (the issuer URL) and its two surfaces.
var resourcePaths = []string{"", "/v1", "/mcp"}

// Resources lists the resource identifiers (RFC 8707) this server issues tokens for.
func Resources(issuer string) []string {
	out := make([]string, 0, len(resourcePaths))
	for _, p := range resourcePaths {
		out = append(out, issuer+p)
	}
	return out
}

// ParseResource checks a resource parameter: empty means the whole API (the
// issuer); otherwise it must be one of Resources (a trailing slash is ignored).
func ParseResource(issuer, r string) (string, *Error) {
	if r == "" {
		return issuer, nil
	}
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" || u.RawQuery != "" {
		return "", Errorf(http.StatusBadRequest, "invalid_target", "parameter \"resource\" must be an absolute URI without query or fragment")
	}
	norm := strings.TrimSuffix(r, "/")
	if slices.Contains(Resources(issuer), norm) {
		return norm, nil
	}
	return "", Errorf(http.StatusBadRequest, "invalid_target", "parameter \"resource\": %q is not served here; use one of %s", r, strings.Join(Resources(issuer), ", "))
}

// Covers reports whether a token whose audience is resource may be used on
// path: the issuer covers every path, issuer+"/mcp" only /mcp and below.
func Covers(issuer, resource, path string) bool {
	suffix, ok := strings.CutPrefix(resource, issuer)
	if !ok {
		return false
	}
	return suffix == "" || path == suffix || strings.HasPrefix(path, suffix+"/")
}
