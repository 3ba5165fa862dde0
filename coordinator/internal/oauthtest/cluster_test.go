package oauthtest

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"golang.org/x/oauth2"
)

// TestThreeCoordinators: with --public-url the same on every coordinator, a
// client may use any of them: the device flow and the code flow through
// followers (forwarded to the leader), the tokens on another follower, the
// refresh on a third; and no code, token, verifier or approving key is
// written in plaintext to any coordinator's Raft log, snapshots or state.
func TestThreeCoordinators(t *testing.T) {
	const public = "https://api.example.test"
	e := startN(t, 3, func(_ int, cfg *server.Config) { cfg.PublicURL = public })
	e.c.WaitConverged(20 * time.Second)
	leader := e.c.WaitLeader(10 * time.Second)
	var f []int
	for i := range e.c.Nodes {
		if i != leader {
			f = append(f, i)
		}
	}
	// Two coordinators are followers; node URLs differ, the issuer does not.
	e.base = e.c.URL(f[0])
	resp, err := http.Get(e.base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	if _, md := decode(t, resp); md["issuer"] != public || md["token_endpoint"] != public+"/oauth/token" {
		t.Fatalf("metadata on a follower: %v", md)
	}
	acc, key := e.account("three@example.com", "account:read", "tickets:read")
	clientID := e.register(map[string]any{
		"client_name": "Cluster CLI", "redirect_uris": []string{"http://127.0.0.1:9/callback"},
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "authorization_code", "refresh_token"},
	})
	cfg := e.oauthConfig(clientID, "account:read")
	da := e.deviceAuth(cfg, oauth2.SetAuthURLParam("resource", public+"/v1"))
	if da.VerificationURI != public+"/oauth/device" {
		t.Fatalf("verification_uri %q", da.VerificationURI)
	}
	if _, err := e.c.Admin(f[1]).OAuthApprove(e.ctx, api.OAuthApproveRequest{UserCode: da.UserCode, AccountID: acc.ID}); err != nil {
		t.Fatalf("approve on a follower's admin socket: %v", err)
	}
	tok, err := cfg.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{f[1], leader} {
		if got, err := bearerT(t, e.c.URL(i), tok.AccessToken).Account(e.ctx); err != nil || got.ID != acc.ID {
			t.Fatalf("token on node %d: %+v %v", i, got, err)
		}
	}
	e.base = e.c.URL(f[1])
	cfg = e.oauthConfig(clientID, "account:read")
	tok2, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("refresh on another follower: %v", err)
	}
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", public+"/mcp")), key)
	code := q.Get("code")
	tok3, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange on a follower: %v", err)
	}
	if tok3.Extra("resource") != public+"/mcp" {
		t.Fatalf("resource %v", tok3.Extra("resource"))
	}

	// Every replica has applied everything; then look at every byte on disk.
	e.c.WaitConverged(20 * time.Second)
	norm := strings.ReplaceAll(da.UserCode, "-", "")
	secrets := map[string]string{
		"access token": tok.AccessToken, "refresh token": tok.RefreshToken, "rotated access token": tok2.AccessToken,
		"rotated refresh token": tok2.RefreshToken, "device code": da.DeviceCode, "user code": norm,
		"authorization code": code, "code verifier": verifier, "approving API key": key,
		"code access token": tok3.AccessToken, "code refresh token": tok3.RefreshToken,
	}
	for i, nd := range e.c.Nodes {
		control := false
		files, err := framework.ScanFiles(nd.Cfg.DataDir, func(p string, raw []byte) {
			control = control || bytes.Contains(raw, []byte(clientID)) // the scan does see what is stored
			for what, s := range secrets {
				if bytes.Contains(raw, []byte(s)) {
					t.Errorf("node %d: %s in plaintext in %s", i, what, p)
				}
			}
		})
		if err != nil || files < 2 || !control {
			t.Fatalf("node %d: walked %d files (client id seen: %v): %v", i, files, control, err)
		}
	}
}
