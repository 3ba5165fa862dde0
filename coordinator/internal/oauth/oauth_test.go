package oauth

import (
	"net/url"
	"strings"
	"testing"
)

func TestChallengeS256(t *testing.T) {
	// RFC 7636 appendix B.
	if got := ChallengeS256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256 = %s", got)
	}
	if ValidVerifier(strings.Repeat("a", 42)) || !ValidVerifier(strings.Repeat("a", 43)) || ValidVerifier(strings.Repeat("a", 129)) || ValidVerifier(strings.Repeat("a", 42)+"+") {
		t.Fatal("verifier length/charset rules")
	}
}

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		display, hash := NewUserCode()
		norm, ok := NormalizeUserCode(strings.ToLower(display))
		if !ok || UserCodeHash(norm) != hash || len(display) != 9 || display[4] != '-' {
			t.Fatalf("user code %q does not round-trip", display)
		}
		seen[display] = true
	}
	if len(seen) < 195 {
		t.Fatalf("only %d distinct user codes of 200", len(seen))
	}
	for _, bad := range []string{"", "ABCD-EFG", "AEIO-UBCD", "BCDF GHJK L", "BCDF-GHJ1", strings.Repeat("B", 40)} {
		if _, ok := NormalizeUserCode(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if n, ok := NormalizeUserCode(" bcdf ghjk "); !ok || n != "BCDFGHJK" {
		t.Errorf("spaces: %q %v", n, ok)
	}
}

func TestTokensArePrefixedAndHashed(t *testing.T) {
	at, ah := NewAccessToken("h444_")
	rt, rh := NewRefreshToken("h444_")
	if !strings.HasPrefix(at, "h444_at_") || !strings.HasPrefix(rt, "h444_rt_") || Hash(at) != ah || Hash(rt) != rh || ah == rh {
		t.Fatalf("tokens %q %q", at[:10], rt[:10])
	}
	if !WellFormedToken(AccessPrefix("h444_"), at) || WellFormedToken(AccessPrefix("h444_"), rt) || WellFormedToken(AccessPrefix("snc_"), at) {
		t.Fatal("WellFormedToken")
	}
}

func TestResources(t *testing.T) {
	iss := "https://api.example.com"
	for in, want := range map[string]string{"": iss, iss: iss, iss + "/": iss, iss + "/mcp": iss + "/mcp", iss + "/v1/": iss + "/v1"} {
		if got, e := ParseResource(iss, in); e != nil || got != want {
			t.Errorf("ParseResource(%q) = %q %v, want %q", in, got, e, want)
		}
	}
	for _, bad := range []string{"https://evil.example", iss + "/mcp#x", iss + "?a=b", "mcp", iss + "/other", "https://api.example.com.evil.example"} {
		if _, e := ParseResource(iss, bad); e == nil || e.Code != "invalid_target" {
			t.Errorf("ParseResource(%q) accepted", bad)
		}
	}
	cases := []struct {
		resource, path string
		ok             bool
	}{
		{iss, "/v1/account", true}, {iss, "/mcp", true},
		{iss + "/mcp", "/mcp", true}, {iss + "/mcp", "/mcp/x", true}, {iss + "/mcp", "/v1/account", false}, {iss + "/mcp", "/mcpx", false},
		{iss + "/v1", "/v1/account", true}, {iss + "/v1", "/mcp", false}, {"https://other.example", "/v1/account", false},
	}
	for _, c := range cases {
		if Covers(iss, c.resource, c.path) != c.ok {
			t.Errorf("Covers(%q, %q) = %v", c.resource, c.path, !c.ok)
		}
	}
}

func TestParseScope(t *testing.T) {
	got, e := ParseScope("tickets:read  account:read tickets:read")
	if e != nil || strings.Join(got, " ") != "account:read tickets:read" {
		t.Fatalf("%v %v", got, e)
	}
	if _, e := ParseScope("account:read admin"); e == nil || e.Code != "invalid_scope" || !strings.Contains(e.Description, `"admin"`) {
		t.Fatalf("unknown scope: %v", e)
	}
}

func TestRedirectURIs(t *testing.T) {
	for _, ok := range []string{"https://app.example/cb", "http://127.0.0.1:3000/cb", "http://[::1]/cb", "http://localhost/cb", "com.example.app:/oauth"} {
		if why := CheckRedirectURI(ok); why != "" {
			t.Errorf("%s refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"http://evil.example/cb", "/relative", "https://a.example/cb#frag", "javascript:alert(1)", "data:text/html,x", "myapp:/cb", "https:///cb",
		"https://evil.example/c b", "https://*.evil.example/cb", "https://evil.example/cb\t", "https://evil.example/<cb>", "https://evil_host.example/cb", "https://evil.example/\u00e9"} {
		if CheckRedirectURI(bad) == "" {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestRedirectAllowed: a registered loopback http redirect URI matches with
// any port (RFC 8252 §7.3) and nothing else varies; every other URI only
// matches itself.
func TestRedirectAllowed(t *testing.T) {
	reg := []string{"http://127.0.0.1/cb", "http://[::1]:8080/cb", "http://localhost:6274/oauth/callback", "https://app.example/cb", "com.example.app:/cb"}
	for _, u := range []string{"http://127.0.0.1/cb", "http://127.0.0.1:53682/cb", "http://127.0.0.1:1/cb", "http://[::1]/cb", "http://[::1]:41234/cb",
		"http://localhost:1234/oauth/callback", "http://localhost/oauth/callback", "https://app.example/cb", "com.example.app:/cb"} {
		if !RedirectAllowed(reg, u) {
			t.Errorf("%q refused", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:53682/cb/", "http://127.0.0.1:53682/cbx", "http://127.0.0.1:53682/CB", "http://127.0.0.1:53682/cb?x=1",
		"http://127.0.0.1:53682/cb#f", "http://127.0.0.2:53682/cb", "http://localhost:53682/cb", "https://127.0.0.1:53682/cb", "HTTP://127.0.0.1:53682/cb",
		"http://127.0.0.1:53682@evil.example/cb", "http://evil.example@127.0.0.1:53682/cb", "http://127.0.0.1:0/cb", "http://127.0.0.1:65536/cb",
		"http://127.0.0.1:080/cb", "http://127.0.0.1:x/cb", "http://127.0.0.1:53682/cb/../cb", "http://[::1]:41234/cb/x", "http://[::2]:41234/cb",
		"https://app.example:8443/cb", "http://app.example/cb", "com.example.app:/cb2", "http://%31%32%37.0.0.1:5/cb", "http://127.0.0.1.:5/cb", ""} {
		if RedirectAllowed(reg, u) {
			t.Errorf("%q allowed", u)
		}
	}
}

func TestParseMetadataDocument(t *testing.T) {
	id := "https://app.example/client.json"
	c, e := ParseMetadataDocument(id, []byte(`{"client_id":"`+id+`","client_name":"App","redirect_uris":["https://app.example/cb"]}`))
	if e != nil || c.ID != id || c.Name != "App" || !c.AllowsGrant(GrantTypeAuthorizationCode) {
		t.Fatalf("%+v %v", c, e)
	}
	if _, e := ParseMetadataDocument(id, []byte(`{"client_id":"https://other.example/c.json","client_name":"App","redirect_uris":["https://app.example/cb"]}`)); e == nil || e.Code != "invalid_client" {
		t.Fatalf("mismatched client_id accepted: %v", e)
	}
	if IsMetadataURL("http://app.example/c.json") || IsMetadataURL("https://app.example/") || !IsMetadataURL(id) {
		t.Fatal("IsMetadataURL")
	}
}

func TestParseTokenRequestNamesFields(t *testing.T) {
	for _, c := range []struct {
		form url.Values
		code string
		in   string
	}{
		{url.Values{}, "invalid_request", "grant_type"},
		{url.Values{"grant_type": {"refresh_token"}, "client_id": {"c"}, "client_secret": {"s"}}, "invalid_client", "client_secret"},
		{url.Values{"grant_type": {"refresh_token"}, "client_id": {"c"}}, "invalid_request", "refresh_token"},
		{url.Values{"grant_type": {GrantTypeDeviceCode}, "client_id": {"c"}, "device_code": {"a\x00"}}, "invalid_request", "device_code"},
		{url.Values{"grant_type": {GrantTypeAuthorizationCode}, "client_id": {"c"}, "code": {"x"}, "redirect_uri": {"u"}}, "invalid_request", "code_verifier"},
		{url.Values{"grant_type": {"refresh_token"}, "client_id": {"c"}, "refresh_token": {"r"}, "resource": {"a", "b"}}, "invalid_target", "resource"},
	} {
		_, e := ParseTokenRequest(c.form)
		if e == nil || e.Code != c.code || !strings.Contains(e.Description, c.in) {
			t.Errorf("%v: %v, want %s naming %s", c.form, e, c.code, c.in)
		}
	}
}

// Fuzz the decoders: no panic, and an accepted request satisfies the rules the
// handlers rely on.

// fuzzForm fuzzes check with every body DecodeConsentForm accepts, starting
// from seeds.
func fuzzForm(f *testing.F, seeds []string, check func(t *testing.T, body string, form url.Values)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if form, e := DecodeConsentForm([]byte(body)); e == nil {
			check(t, body, form)
		}
	})
}

func FuzzParseTokenRequest(f *testing.F) {
	fuzzForm(f, []string{
		"grant_type=authorization_code&client_id=c&code=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_verifier=" + strings.Repeat("a", 43),
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=c&device_code=d",
		"grant_type=refresh_token&client_id=c&refresh_token=r&resource=https%3A%2F%2Fa",
	}, func(t *testing.T, body string, form url.Values) {
		req, e := ParseTokenRequest(form)
		if e != nil {
			if e.Code == "" || e.Description == "" {
				t.Fatalf("error without code or description: %+v", e)
			}
			return
		}
		if req.ClientID == "" || len(form["client_id"]) != 1 || len(form["grant_type"]) != 1 {
			t.Fatalf("accepted without a single client_id/grant_type: %q", body)
		}
		if req.GrantType == GrantTypeAuthorizationCode && !ValidVerifier(req.CodeVerifier) {
			t.Fatalf("accepted an invalid verifier: %q", body)
		}
	})
}

func FuzzParseAuthorizeRequest(f *testing.F) {
	fuzzForm(f, []string{
		"response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&scope=account%3Aread&state=s",
		"response_type=token&client_id=c",
	}, func(t *testing.T, _ string, form url.Values) {
		req, e := ParseAuthorizeRequest(form)
		if e != nil {
			return
		}
		if !ValidChallenge(req.CodeChallenge) || req.ClientID == "" || req.RedirectURI == "" {
			t.Fatalf("accepted: %+v", req)
		}
		for _, s := range req.Scopes {
			if _, e := ParseScope(s); e != nil {
				t.Fatalf("accepted unknown scope %q", s)
			}
		}
	})
}

func FuzzParseDeviceAndRevoke(f *testing.F) {
	fuzzForm(f, []string{
		"client_id=c&scope=account%3Aread+tickets%3Aread&resource=https%3A%2F%2Fa",
		"token=x&token_type_hint=refresh_token",
	}, func(t *testing.T, _ string, form url.Values) {
		if d, e := ParseDeviceRequest(form); e == nil && d.ClientID == "" {
			t.Fatal("device request without client_id accepted")
		}
		if r, e := ParseRevokeRequest(form); e == nil && r.Token == "" {
			t.Fatal("revocation without token accepted")
		}
		_, _ = NormalizeUserCode(form.Get("user_code"))
	})
}

func FuzzParseRegistration(f *testing.F) {
	f.Add([]byte(`{"client_name":"App","redirect_uris":["https://a.example/cb"]}`))
	f.Add([]byte(`{"client_name":"CLI","grant_types":["urn:ietf:params:oauth:grant-type:device_code"]}`))
	f.Add([]byte(`{"client_id":"https://a.example/c.json","client_name":"App","redirect_uris":["http://127.0.0.1/cb"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, _, e := ParseRegistration(body)
		if e == nil {
			if c.Name == "" || len(c.GrantTypes) == 0 {
				t.Fatalf("accepted without name or grants: %s", body)
			}
			for _, u := range c.RedirectURIs {
				if CheckRedirectURI(u) != "" {
					t.Fatalf("accepted redirect %q", u)
				}
			}
		}
		_, _ = ParseMetadataDocument("https://a.example/c.json", body)
	})
}

// TestRegistrationMemberNames: a metadata name given twice, or in another case
// than RFC 7591's (encoding/json would take either, the last or as the field),
// is refused as invalid_client_metadata naming it.
func TestRegistrationMemberNames(t *testing.T) {
	for body, want := range map[string]string{
		`{"client_name":"App","redirect_uris":["https://a.example/cb"],"client_name":"Bank"}`:                 `field "client_name" is given more than once`,
		`{"client_name":"App","Redirect_URIs":["https://a.example/cb"]}`:                                      `unknown field "Redirect_URIs"`,
		`{"client_name":"App","redirect_uris":["https://a.example/cb"],"grant_types":["x"],"GRANT_TYPES":[]}`: `unknown field "GRANT_TYPES"`,
	} {
		_, _, e := ParseRegistration([]byte(body))
		if e == nil || e.Code != "invalid_client_metadata" || !strings.Contains(e.Description, want) {
			t.Errorf("%s: %+v, want invalid_client_metadata with %s", body, e, want)
		}
	}
	if _, _, e := ParseRegistration([]byte(`{"client_name":"App","redirect_uris":["https://a.example/cb"]}`)); e != nil {
		t.Fatalf("a plain registration: %+v", e)
	}
}
