package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// FuzzDecodeAPIKeyCreate: a customer's key-mint body either is a clear 4xx or
// names a key with a name, known scopes each once, a future expiry and an
// allow-list that parses.
func FuzzDecodeAPIKeyCreate(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seeds := append([]string{
		`{"name":"ci","scopes":["servers:read"]}`,
		`{"name":"ci","scopes":["servers:read","keys:write"],"expires_at":"2027-01-01T00:00:00Z","allowed_cidrs":["203.0.113.0/24","2001:db8::1"]}`,
		`{"name":"ci","scopes":["servers:read","servers:read"]}`, `{"name":"ci","scopes":[]}`, `{"name":"ci","scopes":"servers:read"}`,
		`{"name":"ci","scopes":["servers:read"],"rate_limit_per_min":1000000}`, `{"name":"ci","scopes":["servers:read"],"expires_at":null}`,
		`{"name":"\u00e7ok","scopes":["all"]}`, `{"name":"ci","scopes":["servers:read"],"allowed_cidrs":["::ffff:10.0.0.1/128"]}`,
	}, decoderSeeds...)
	decode := func(body []byte) (api.APIKeyCreateRequest, error) { return DecodeAPIKeyCreate(nil, body, now) }
	fuzzDecoder(f, seeds, decode, func(t *testing.T, req api.APIKeyCreateRequest) {
		if req.Name == "" || strings.TrimSpace(req.Name) == "" || !utf8.ValidString(req.Name) || utf8.RuneCountInString(req.Name) > 100 {
			t.Fatalf("accepted name %q", req.Name)
		}
		if len(req.Scopes) == 0 {
			t.Fatal("accepted no scopes")
		}
		seen := map[string]bool{}
		for _, s := range req.Scopes {
			if !api.IsScope(s) || seen[s] {
				t.Fatalf("accepted scopes %q", req.Scopes)
			}
			seen[s] = true
		}
		if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
			t.Fatal("accepted a past expiry")
		}
		if _, err := auth.ParseCIDRs(req.AllowedCIDRs); err != nil || len(req.AllowedCIDRs) > 100 {
			t.Fatalf("accepted allow-list %q", req.AllowedCIDRs)
		}
	})
}

func TestDecodeAPIKeyCreateNamesTheField(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]string{
		`{"scopes":["servers:read"]}`:                                                 `field "name" is required`,
		`{"name":"ci"}`:                                                               `field "scopes" is required`,
		`{"name":"ci","scopes":["servers:read","all"]}`:                               `field "scopes": unknown scope "all"`,
		`{"name":"ci","scopes":["servers:read","servers:read"]}`:                      `field "scopes": scope "servers:read" listed twice`,
		`{"name":"ci","scopes":["servers:read"],"rate_limit_per_min":5}`:              `unknown field "rate_limit_per_min"`,
		`{"name":"ci","scopes":["servers:read"],"expires_at":"2025-01-01T00:00:00Z"}`: `field "expires_at" must be in the future`,
		`{"name":"ci","scopes":["servers:read"],"allowed_cidrs":["10.0.0.0/33"]}`:     `field "allowed_cidrs"`,
		`{"name":"ci","scopes":"servers:read"}`:                                       `field "scopes"`,
	}
	for body, want := range cases {
		_, err := DecodeAPIKeyCreate(nil, []byte(body), now)
		var he *httpError
		if !errors.As(err, &he) || he.status != http.StatusBadRequest || !strings.Contains(he.msg, want) {
			t.Errorf("body %s: got %v, want 400 naming %q", body, err, want)
		}
	}
}

// TestAPIKeysSpeakTheBrand: a 444host coordinator lists and takes its own
// scope names (vps:*), not sunucu's.
func TestAPIKeysSpeakTheBrand(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := brand.MustGet(brand.H444)
	if _, err := DecodeAPIKeyCreate(b, []byte(`{"name":"ci","scopes":["vps:read","keys:write"]}`), now); err != nil {
		t.Fatalf("444host scopes refused: %v", err)
	}
	if _, err := DecodeAPIKeyCreate(b, []byte(`{"name":"ci","scopes":["servers:read"]}`), now); err == nil || !strings.Contains(err.Error(), `unknown scope "servers:read"`) {
		t.Fatalf("a sunucu scope on 444host: %v", err)
	}
	_, v, _ := (&API{brand: b}).listScopes(nil)
	l := v.(api.ScopeList)
	var names []string
	for _, s := range l.Data {
		names = append(names, s.Scope)
		if strings.HasPrefix(s.Scope, "servers:") || s.Description == "" {
			t.Errorf("444host lists %+v", s)
		}
	}
	if strings.Join(names, " ") != strings.Join(b.AllScopes(), " ") {
		t.Fatalf("444host scopes %v, want %v", names, b.AllScopes())
	}
}
