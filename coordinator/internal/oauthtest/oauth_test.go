package oauthtest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"golang.org/x/oauth2"
)

// TestMetadata: RFC 8414 and RFC 9728 documents name this server's endpoints.
func TestMetadata(t *testing.T) {
	e := start(t)
	resp, err := http.Get(e.base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	_, md := decode(t, resp)
	if md["issuer"] != e.base || md["token_endpoint"] != e.base+"/oauth/token" ||
		md["device_authorization_endpoint"] != e.base+"/oauth/device_authorization" || md["registration_endpoint"] != e.base+"/oauth/register" {
		t.Fatalf("AS metadata: %v", md)
	}
	if m, _ := md["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Fatalf("code_challenge_methods_supported: %v", md["code_challenge_methods_supported"])
	}
	for path, resource := range map[string]string{"": e.base, "/mcp": e.base + "/mcp", "/v1": e.base + "/v1"} {
		resp, err := http.Get(e.base + "/.well-known/oauth-protected-resource" + path)
		if err != nil {
			t.Fatal(err)
		}
		status, pr := decode(t, resp)
		servers, _ := pr["authorization_servers"].([]any)
		if status != 200 || pr["resource"] != resource || len(servers) != 1 || servers[0] != e.base {
			t.Errorf("protected resource %q: %d %v", path, status, pr)
		}
	}
	resp, err = http.Get(e.base + "/.well-known/oauth-protected-resource/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body.Close(); resp.StatusCode != 404 {
		t.Errorf("unknown protected resource: %d, want 404", resp.StatusCode)
	}
}

// TestDeviceFlowEndToEnd: pending → approved → token → an API call works with
// the token's scopes → refresh rotates → reuse of an old refresh token revokes
// the family → the revoked tokens are refused.
func TestDeviceFlowEndToEnd(t *testing.T) {
	e := start(t)
	acc, _ := e.account("device@example.com")
	clientID := e.registerDeviceClient("Test CLI")
	cfg := e.oauthConfig(clientID, "account:read", "tickets:read")
	da := e.deviceAuth(cfg)
	if !regexpMatch(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`, da.UserCode) || da.VerificationURI != e.base+"/oauth/device" || da.Interval != 1 {
		t.Fatalf("device authorization: %+v", da)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID}}
	if status, out := e.postForm("/oauth/token", poll); status != 400 || out["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", status, out)
	}
	if status, out := e.postForm("/oauth/token", poll); status != 400 || out["error"] != "slow_down" {
		t.Fatalf("immediate second poll: %d %v, want slow_down", status, out)
	}
	other := url.Values{"grant_type": {poll.Get("grant_type")}, "device_code": {da.DeviceCode}, "client_id": {"hpc_someoneelse"}}
	if status, out := e.postForm("/oauth/token", other); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("another client's poll: %d %v", status, out)
	}

	appr, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: strings.ToLower(da.UserCode), AccountID: acc.ID})
	if err != nil || appr.Status != "approved" || strings.Join(appr.Scopes, " ") != "account:read tickets:read" || appr.ClientName != "Test CLI" {
		t.Fatalf("approve: %+v %v", appr, err)
	}
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: acc.ID}); apiStatus(err) != http.StatusConflict {
		t.Fatalf("second approval: %v, want 409 (the user code is no longer pending)", err)
	}
	tok, err := cfg.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.AccessToken, "snc_at_") || !strings.HasPrefix(tok.RefreshToken, "snc_rt_") || tok.Extra("scope") != "account:read tickets:read" {
		t.Fatalf("token: access %.8s… refresh %.8s… scope %v", tok.AccessToken, tok.RefreshToken, tok.Extra("scope"))
	}
	if exp := time.Until(tok.Expiry); exp < 50*time.Minute || exp > 61*time.Minute {
		t.Errorf("access token expires in %v, want about 1h", exp)
	}
	if status, out := e.postForm("/oauth/token", poll); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("device code exchanged twice: %d %v", status, out)
	}

	// The token works as a bearer with the granted scopes only.
	got, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx)
	if err != nil || got.ID != acc.ID {
		t.Fatalf("GET /v1/account with the access token: %+v %v", got, err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Tickets(e.ctx, 1, 10); err != nil {
		t.Fatalf("GET /v1/tickets: %v", err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).CreateTicket(e.ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, ""); apiStatus(err) != 403 {
		t.Fatalf("POST /v1/tickets without tickets:write: %v, want 403", err)
	}
	if _, err := bearerT(t, e.base, tok.RefreshToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("a refresh token as bearer: %v, want 401", err)
	}
	apps, err := bearerT(t, e.base, tok.AccessToken).ConnectedApps(e.ctx)
	if err != nil || len(apps.Data) != 1 || apps.Data[0].ClientID != clientID || apps.Data[0].GrantType != "device_code" || apps.Data[0].Resource != e.base {
		t.Fatalf("connected apps: %+v %v", apps, err)
	}

	// Refresh rotates: a new pair; the old refresh token is spent.
	tok2, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == tok.RefreshToken || tok2.RefreshToken == "" {
		t.Fatal("refresh did not rotate both tokens")
	}
	if _, err := bearerT(t, e.base, tok2.AccessToken).Account(e.ctx); err != nil {
		t.Fatalf("rotated access token: %v", err)
	}
	// Reuse of the spent refresh token revokes the whole family.
	_, err = cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if oauthCode(err) != "invalid_grant" {
		t.Fatalf("reused refresh token: %v, want invalid_grant", err)
	}
	for name, at := range map[string]string{"first": tok.AccessToken, "rotated": tok2.AccessToken} {
		if _, err := bearerT(t, e.base, at).Account(e.ctx); apiStatus(err) != 401 {
			t.Errorf("%s access token after the family was revoked: %v, want 401", name, err)
		}
	}
	_, err = cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if oauthCode(err) != "invalid_grant" {
		t.Fatalf("rotated refresh token after the family was revoked: %v, want invalid_grant", err)
	}
	if apps, err := e.c.Admin(0).ConnectedApps(e.ctx, acc.ID); err != nil || len(apps.Data) != 0 {
		t.Fatalf("connected apps after the family was revoked: %+v %v", apps, err)
	}
}

// TestDeviceFlowDeniedAndExpired: access_denied after a denial; expired_token
// once the code's 10 minutes have passed (coordinator clock moved forward).
func TestDeviceFlowDeniedAndExpired(t *testing.T) {
	e := start(t)
	acc, _ := e.account("denied@example.com")
	clientID := e.register(map[string]any{"client_name": "CLI", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}})
	cfg := e.oauthConfig(clientID)
	da := e.deviceAuth(cfg)
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, Deny: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.DeviceAccessToken(e.ctx, da); oauthCode(err) != "access_denied" {
		t.Fatalf("denied: %v, want access_denied", err)
	}

	da = e.deviceAuth(cfg)
	e.clock.Advance(11 * time.Minute)
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID}}
	if status, out := e.postForm("/oauth/token", poll); status != 400 || out["error"] != "expired_token" {
		t.Fatalf("expired device code: %d %v", status, out)
	}
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: acc.ID}); apiStatus(err) != http.StatusConflict {
		t.Fatalf("approving an expired user code: %v, want 409", err)
	}
	// An approval that arrives before expiry cannot be redeemed after it.
	da = e.deviceAuth(cfg)
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: acc.ID}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * time.Minute)
	if status, out := e.postForm("/oauth/token", url.Values{"grant_type": {poll.Get("grant_type")}, "device_code": {da.DeviceCode}, "client_id": {clientID}}); status != 400 || out["error"] != "expired_token" {
		t.Fatalf("approved but expired device code: %d %v", status, out)
	}
}

// TestConsentPageDecisions: on both consent pages (authorization code and
// device), "deny" ends the request as denied, a decision that is neither
// approve nor deny is a 400 page, and a key that lacks an asked scope is a
// 403 that shows the consent form again; nothing is issued by any of them.
func TestConsentPageDecisions(t *testing.T) {
	e := start(t)
	_, weak := e.account("decide@example.com", "account:read")
	clientID := e.register(map[string]any{
		"client_name": "Decider", "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"authorization_code", "urn:ietf:params:oauth:grant-type:device_code"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	cfg := e.oauthConfig(clientID, "account:read", "tickets:read")

	// Authorization code flow.
	b := newBrowser(t)
	authURL := cfg.AuthCodeURL("st-d", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	_, _, csrf := b.get(authURL)
	form := approveForm(authURL, csrf, weak)
	form.Set("decision", "maybe")
	resp := b.post(e.base+"/oauth/authorize", form)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(raw), "Unknown decision.") {
		t.Fatalf("authorize, unknown decision: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), raw)
	}
	form.Set("decision", "approve")
	resp = b.post(e.base+"/oauth/authorize", form)
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" || !strings.Contains(string(raw), "lacks the scopes tickets:read") || !csrfRE.Match(raw) {
		t.Fatalf("authorize with a key lacking tickets:read: %d %q %s, want 403 and the consent form", resp.StatusCode, resp.Header.Get("Location"), raw)
	}
	form.Set("csrf", string(csrfRE.FindSubmatch(raw)[1])) // the form shown again has a token of its own
	form.Set("decision", "deny")
	resp = b.post(e.base+"/oauth/authorize", form)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if q := loc.Query(); resp.StatusCode != http.StatusSeeOther || q.Get("error") != "access_denied" || q.Get("state") != "st-d" || q.Get("code") != "" {
		t.Fatalf("authorize, denied: %d %q, want a redirect with error=access_denied", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Device flow.
	da := e.deviceAuth(cfg)
	b = newBrowser(t)
	_, _, csrf = b.get(e.base + "/oauth/device")
	post := func(decision, key string) (int, string) {
		resp := b.post(e.base+"/oauth/device", url.Values{"csrf": {csrf}, "user_code": {da.UserCode}, "api_key": {key}, "decision": {decision}})
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if m := csrfRE.FindSubmatch(raw); m != nil {
			csrf = string(m[1]) // each form shown has a token of its own
		}
		return resp.StatusCode, string(raw)
	}
	if status, page := post("maybe", weak); status != http.StatusBadRequest || !strings.Contains(page, "Unknown decision.") {
		t.Fatalf("device, unknown decision: %d %s", status, page)
	}
	_, _, csrf = b.get(e.base + "/oauth/device") // the error page has no form: reload
	if status, page := post("", ""); status != http.StatusOK || !strings.Contains(page, "Connect Decider") {
		t.Fatalf("device, no decision: %d %s, want the consent form", status, page)
	}
	if status, page := post("approve", weak); status != http.StatusForbidden || !strings.Contains(page, "lacks the scopes tickets:read") || !strings.Contains(page, "Connect Decider") {
		t.Fatalf("device with a key lacking tickets:read: %d %s, want 403 and the consent form", status, page)
	}
	if status, page := post("deny", weak); status != http.StatusOK || !strings.Contains(page, "You denied <bdi>Decider</bdi>.") {
		t.Fatalf("device, denied: %d %s", status, page)
	}
	if _, err := cfg.DeviceAccessToken(e.ctx, da); oauthCode(err) != "access_denied" {
		t.Fatalf("token after a denial on the page: %v, want access_denied", err)
	}
}

// TestAuthorizationCodePKCE: a dynamically registered client gets a code with
// PKCE S256 through the consent form; a wrong code_verifier, a wrong resource,
// an expired code and a reused code are refused; the token's audience is
// enforced.
func TestAuthorizationCodePKCE(t *testing.T) {
	e := start(t)
	acc, key := e.account("code@example.com", "account:read", "tickets:read", "tickets:write")
	clientID := e.register(map[string]any{
		"client_name": "Claude", "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none", "logo_uri": "https://example.com/ignored.png",
	})
	cfg := e.oauthConfig(clientID, "account:read", "tickets:read")
	v1 := oauth2.SetAuthURLParam("resource", e.base+"/v1")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), v1), key)
	if q.Get("state") != "st-1" || q.Get("iss") != e.base || !strings.HasPrefix(q.Get("code"), "snc_ac_") {
		t.Fatalf("redirect: %v", q)
	}
	code := q.Get("code")
	if _, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()), v1); oauthCode(err) != "invalid_grant" {
		t.Fatalf("wrong code_verifier: %v, want invalid_grant", err)
	}
	if _, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", e.base+"/mcp")); oauthCode(err) != "invalid_target" {
		t.Fatalf("another resource: %v, want invalid_target", err)
	}
	if _, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", "https://evil.example/")); oauthCode(err) != "invalid_target" {
		t.Fatalf("a foreign resource: %v, want invalid_target", err)
	}
	tok, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier), v1)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("resource") != e.base+"/v1" || tok.Extra("scope") != "account:read tickets:read" {
		t.Fatalf("token resource %v scope %v", tok.Extra("resource"), tok.Extra("scope"))
	}
	if got, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); err != nil || got.ID != acc.ID {
		t.Fatalf("GET /v1/account: %+v %v", got, err)
	}
	// The code is single use: a second exchange is refused and revokes what the first got.
	if _, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier), v1); oauthCode(err) != "invalid_grant" {
		t.Fatalf("reused code: %v, want invalid_grant", err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("token of a reused code: %v, want 401", err)
	}

	// Audience: a token for /mcp is refused on /v1.
	verifier = oauth2.GenerateVerifier()
	q = e.authorize(cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", e.base+"/mcp")), key)
	mcpTok, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bearerT(t, e.base, mcpTok.AccessToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("an /mcp token on /v1: %v, want 401", err)
	}

	// Expired code: five minutes pass on the coordinator's clock.
	verifier = oauth2.GenerateVerifier()
	q = e.authorize(cfg.AuthCodeURL("st-3", oauth2.S256ChallengeOption(verifier), v1), key)
	e.clock.Advance(6 * time.Minute)
	if _, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier), v1); oauthCode(err) != "invalid_grant" {
		t.Fatalf("expired code: %v, want invalid_grant", err)
	}

	// A key without the asked scope cannot approve; nothing is issued.
	_, weak := e.account("weak@example.com", "account:read")
	b := newBrowser(t)
	authURL := cfg.AuthCodeURL("st-4", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), v1)
	_, _, csrf := b.get(authURL)
	form := approveForm(authURL, csrf, weak)
	resp := b.post(e.base+"/oauth/authorize", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Fatalf("approval with a key lacking tickets:read: %d %q, want 403 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Without the CSRF token (another site's form), nothing happens either.
	form.Set("csrf", strings.Repeat("0", 64))
	form.Set("api_key", key)
	resp = b.post(e.base+"/oauth/authorize", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("approval with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	// A form posted from another site's page (its Origin) is refused before anything is read.
	form.Set("csrf", csrf)
	req, _ := http.NewRequest("POST", e.base+"/oauth/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Fatalf("approval posted from another origin: %d, want 403", resp.StatusCode)
	}
	// A redirect_uri the client did not register is never redirected to.
	status, _, _ := newBrowser(t).get(strings.Replace(cfg.AuthCodeURL("x", oauth2.S256ChallengeOption(verifier)), "127.0.0.1%3A9", "evil.example", 1))
	if status != http.StatusBadRequest {
		t.Fatalf("unregistered redirect_uri: %d, want 400 page", status)
	}
	// A resource this server does not serve goes back to the client as invalid_target.
	resp, err = newBrowser(t).hc.Get(cfg.AuthCodeURL("st-5", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", "https://evil.example")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "invalid_target" || loc.Query().Get("state") != "st-5" {
		t.Fatalf("foreign resource at authorize: %d %v", resp.StatusCode, loc)
	}
}

// TestRevocation: RFC 7009 revocation, and the customer's and the operator's
// revocation of a connected app; another account cannot touch it.
func TestRevocation(t *testing.T) {
	e := start(t)
	acc, key := e.account("rev@example.com")
	_, otherKey := e.account("other@example.com")
	clientID := e.registerDeviceClient("CLI")
	cfg := e.oauthConfig(clientID, "account:read")

	tok := e.deviceGrant(clientID, acc.ID, "")
	if status, out := e.postForm("/oauth/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {clientID}}); status != 200 {
		t.Fatalf("revoke: %d %v", status, out)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("access token after revoking its refresh token: %v, want 401", err)
	}
	if _, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token(); oauthCode(err) != "invalid_grant" {
		t.Fatalf("refresh after revocation: %v, want invalid_grant", err)
	}
	if status, _ := e.postForm("/oauth/revoke", url.Values{"token": {"snc_at_unknown"}}); status != 200 {
		t.Fatalf("revoking an unknown token: %d, want 200 (RFC 7009)", status)
	}

	tok = e.deviceGrant(clientID, acc.ID, "")
	apps, err := bearerT(t, e.base, key).ConnectedApps(e.ctx)
	if err != nil || len(apps.Data) != 1 {
		t.Fatalf("connected apps: %+v %v", apps, err)
	}
	id := apps.Data[0].ID
	if _, err := bearerT(t, e.base, otherKey).RevokeConnectedApp(e.ctx, id); apiStatus(err) != 404 {
		t.Fatalf("another account revoking the app: %v, want 404", err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); err != nil {
		t.Fatalf("token after another account's attempt: %v", err)
	}
	app, err := bearerT(t, e.base, key).RevokeConnectedApp(e.ctx, id)
	if err != nil || app.RevokedAt == nil {
		t.Fatalf("revoke connected app: %+v %v", app, err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("token of a revoked app: %v, want 401", err)
	}

	tok = e.deviceGrant(clientID, acc.ID, "")
	apps, err = e.c.Admin(0).ConnectedApps(e.ctx, acc.ID)
	if err != nil || len(apps.Data) != 1 {
		t.Fatalf("admin connected apps: %+v %v", apps, err)
	}
	if _, err := e.c.Admin(0).RevokeConnectedApp(e.ctx, apps.Data[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("token of an app the operator revoked: %v, want 401", err)
	}
	// An operator cannot grant more than the account's keys hold.
	da := e.deviceAuth(e.oauthConfig(clientID, "servers:destroy"))
	if _, err := e.c.Admin(0).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: acc.ID}); apiStatus(err) != 403 {
		t.Fatalf("approving servers:destroy for an account with default keys: %v, want 403", err)
	}
}

// TestRequestsRefused: malformed requests get OAuth errors naming the field.
func TestRequestsRefused(t *testing.T) {
	e := start(t)
	clientID := e.register(map[string]any{"client_name": "CLI", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}})
	for _, c := range []struct {
		path string
		form url.Values
		code string
		in   string
	}{
		{"/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {clientID}}, "unsupported_grant_type", "grant_type"},
		{"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {"short"}}, "invalid_request", "code_verifier"},
		{"/oauth/token", url.Values{"grant_type": {"refresh_token", "refresh_token"}, "client_id": {clientID}}, "invalid_request", "grant_type"},
		{"/oauth/token", url.Values{"grant_type": {"refresh_token"}}, "invalid_client", "client_id"},
		{"/oauth/device_authorization", url.Values{"client_id": {clientID}, "scope": {"root"}}, "invalid_scope", "root"},
		{"/oauth/device_authorization", url.Values{"client_id": {"hpc_nobody"}}, "invalid_client", "client_id"},
		{"/oauth/device_authorization", url.Values{"client_id": {clientID}, "resource": {"https://evil.example"}}, "invalid_target", "resource"},
		{"/oauth/revoke", url.Values{}, "invalid_request", "token"},
	} {
		status, out := e.postForm(c.path, c.form)
		desc, _ := out["error_description"].(string)
		if status/100 != 4 || out["error"] != c.code || !strings.Contains(desc, c.in) {
			t.Errorf("%s %v: %d %v, want %s naming %q", c.path, c.form, status, out, c.code, c.in)
		}
	}
	for _, meta := range []map[string]any{
		{"redirect_uris": []string{"http://127.0.0.1/cb"}},
		{"client_name": "x", "redirect_uris": []string{"http://evil.example/cb"}},
		{"client_name": "x", "redirect_uris": []string{"javascript:alert(1)"}},
		{"client_name": "x", "token_endpoint_auth_method": "client_secret_basic", "redirect_uris": []string{"https://a.example/cb"}},
		{"client_name": "x", "grant_types": []string{"password"}},
	} {
		if status, out := e.postJSON("/oauth/register", meta); status != 400 || !strings.HasPrefix(out["error"].(string), "invalid_") {
			t.Errorf("register %v: %d %v, want 400", meta, status, out)
		}
	}
}

func regexpMatch(re, s string) bool { return regexpMust(re).MatchString(s) }

// TestBrandPrefix: tokens carry the brand's key prefix (--key-prefix h444_):
// h444_at_… and h444_rt_…, accepted as bearers of that brand.
func TestBrandPrefix(t *testing.T) {
	e := start(t, func(_ int, cfg *server.Config) { cfg.KeyPrefix = "h444_" })
	acc, key := e.account("brand@example.com")
	if !strings.HasPrefix(key, "h444_") {
		t.Fatalf("key %.6s…", key)
	}
	clientID := e.registerDeviceClient("CLI")
	tok := e.deviceGrant(clientID, acc.ID, "", "account:read")
	if !strings.HasPrefix(tok.AccessToken, "h444_at_") || !strings.HasPrefix(tok.RefreshToken, "h444_rt_") {
		t.Fatalf("tokens %.9s… %.9s…", tok.AccessToken, tok.RefreshToken)
	}
	if got, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); err != nil || got.ID != acc.ID {
		t.Fatalf("brand token: %+v %v", got, err)
	}
	if _, err := bearerT(t, e.base, "snc_at_"+strings.TrimPrefix(tok.AccessToken, "h444_at_")).Account(e.ctx); apiStatus(err) != 401 {
		t.Fatalf("the token with another brand's prefix: %v, want 401", err)
	}
}

// TestBrand444host: with --brand 444host (no --key-prefix) keys are h444_…,
// tokens h444_at_…/h444_rt_…, the metadata lists 444host's scopes, a token
// asked for vps:read carries it and reads /v1/vps, and sunucu's
// servers:read is an invalid_scope.
func TestBrand444host(t *testing.T) {
	e := start(t, func(_ int, cfg *server.Config) { cfg.Brand = "444host"; cfg.KeyPrefix = "" })
	acc, key := e.account("brand444@example.com", "account:read", "vps:read")
	if !strings.HasPrefix(key, "h444_") {
		t.Fatalf("key %.6s…", key)
	}
	resp, err := http.Get(e.base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	_, meta := decode(t, resp)
	supported := fmt.Sprint(meta["scopes_supported"])
	if !strings.Contains(supported, "vps:read") || strings.Contains(supported, "servers:") {
		t.Errorf("scopes_supported %s", supported)
	}
	clientID := e.registerDeviceClient("CLI")
	status, out := e.postForm("/oauth/device_authorization", url.Values{"client_id": {clientID}, "scope": {"servers:read"}})
	if status != 400 || out["error"] != "invalid_scope" {
		t.Errorf("device authorization for servers:read: %d %v, want 400 invalid_scope", status, out)
	}
	tok := e.deviceGrant(clientID, acc.ID, "", "vps:read")
	if !strings.HasPrefix(tok.AccessToken, "h444_at_") || !strings.HasPrefix(tok.RefreshToken, "h444_rt_") {
		t.Fatalf("tokens %.9s… %.9s…", tok.AccessToken, tok.RefreshToken)
	}
	if sc, _ := tok.Extra("scope").(string); sc != "vps:read" {
		t.Errorf("token scope %q, want vps:read", sc)
	}
	doc, err := httpapi.BrandOpenAPI(brand.MustGet(brand.H444), httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewBrand(e.base, tok.AccessToken, brand.MustGet(brand.H444)) // checked against 444host's document
	c.HTTP = &http.Client{Transport: framework.NewValidatingTransport(t, doc, e.base), Timeout: 30 * time.Second}
	if _, err := c.Servers(e.ctx, 1, 10); err != nil {
		t.Errorf("GET /v1/vps with the token: %v", err)
	}
	if _, err := c.Account(e.ctx); apiStatus(err) != 403 {
		t.Errorf("GET /v1/account with a vps:read token: %v, want 403", err)
	}
}
