package oauthtest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestConsentPageIsolatesTheClientName: a client_name with a bidi control
// (U+202E, right-to-left override) is refused at registration, as a one-line
// name's is (validate.OneLineRune); a right-to-left name (Hebrew letters,
// which reorder the neutral characters next to them) is shown in <bdi> on
// both consent pages, in the heading and in the page after a denial, so it
// cannot reorder the page's own words after it ("asks to access your
// account ..."), which stay outside. Before registration refused bidi
// controls this test's name was "Evil \u202eppA yrtneC"; the isolation it
// checks is the same.
func TestConsentPageIsolatesTheClientName(t *testing.T) {
	e := start(t)
	status, out := e.postJSON("/oauth/register", map[string]any{
		"client_name": "Evil \u202eppA yrtneC", "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none",
	})
	if desc, _ := out["error_description"].(string); status != http.StatusBadRequest || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, "client_name") || !strings.Contains(desc, "U+202E") {
		t.Errorf("register a client_name holding U+202E: %d %v; want 400 invalid_client_metadata naming client_name and U+202E", status, out)
	}
	const name = "Evil \u05d0\u05e4\u05dc\u05d9\u05e7\u05e6\u05d9\u05d4 1.0"
	clientID := e.register(map[string]any{
		"client_name": name, "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"authorization_code", "urn:ietf:params:oauth:grant-type:device_code"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	cfg := e.oauthConfig(clientID, "tickets:read")
	isolated := func(flow, page string) {
		t.Helper()
		for _, want := range []string{
			`<h1>Connect <bdi>` + name + `</bdi></h1>`,
			`<strong id="client_name"><bdi>` + name + `</bdi></strong> asks to access your account`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s consent page lacks %q:\n%s", flow, want, page)
			}
		}
		if n := strings.Count(page, name); n != 3 { // <title>, <h1>, the sentence
			t.Errorf("%s consent page shows the name %d times, want 3 (<title>, <h1>, sentence):\n%s", flow, n, page)
		}
	}

	b := newBrowser(t)
	status, page, _ := b.get(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if status != http.StatusOK {
		t.Fatalf("authorization code consent page: %d %s", status, page)
	}
	isolated("authorization code", page)

	da := e.deviceAuth(cfg)
	b = newBrowser(t)
	_, _, csrf := b.get(e.base + "/oauth/device")
	post := func(decision string) (int, string) {
		resp := b.post(e.base+"/oauth/device", url.Values{"csrf": {csrf}, "user_code": {da.UserCode}, "decision": {decision}})
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if m := csrfRE.FindSubmatch(raw); m != nil {
			csrf = string(m[1])
		}
		return resp.StatusCode, string(raw)
	}
	status, page = post("")
	if status != http.StatusOK {
		t.Fatalf("device consent page: %d %s", status, page)
	}
	isolated("device", page)
	status, page = post("deny")
	if want := `<p class="ok" id="done">You denied <bdi>` + name + `</bdi>. You can close this page.</p>`; status != http.StatusOK || !strings.Contains(page, want) {
		t.Errorf("device, denied: %d, want a page with %q:\n%s", status, want, page)
	}
}
