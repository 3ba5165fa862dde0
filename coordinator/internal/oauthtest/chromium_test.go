package oauthtest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// chromium returns Debian's chromium, failing the test with how to install it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/install-chromium.sh (Debian's chromium package; `make test` runs it)")
	return ""
}

// TestConsentPageInChromium: a polling device client gets its token after a
// person, in a real headless Chromium, enters the user code on the consent
// page, sees the client's name and the scopes asked, and approves with an API
// key of the account.
func TestConsentPageInChromium(t *testing.T) {
	bin := chromium(t)
	e := start(t)
	acc, key := e.account("browser@example.com")
	clientID := e.registerDeviceClient("Browser Test CLI")
	cfg := e.oauthConfig(clientID, "account:read", "tickets:read")
	da := e.deviceAuth(cfg)
	type result struct {
		tok *oauth2.Token
		err error
	}
	got := make(chan result, 1)
	pollCtx, stopPolling := context.WithTimeout(e.ctx, 60*time.Second)
	defer stopPolling()
	go func() {
		tok, err := cfg.DeviceAccessToken(pollCtx, da)
		got <- result{tok, err}
	}()

	home := t.TempDir()
	t.Setenv("HOME", home)   // profiles and caches stay in the test's directory
	t.Setenv("TMPDIR", home) // and Chromium's own org.chromium.Chromium.* temporary directories
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.UserDataDir(filepath.Join(home, "profile")), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(e.ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 45*time.Second)
	defer cancelTimeout()

	// Step 1: the code, typed in lower case without the dash as people do.
	if err := chromedp.Do(bctx); err != nil { // starts the browser, bound to bctx (not to one step's context)
		t.Fatalf("start chromium: %v", err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			html, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v; page: %s", what, err, html)
		}
	}
	step("open the verification page", chromedp.Navigate(da.VerificationURI), chromedp.WaitVisible(chromedp.CSS("#user_code")))
	step("enter the user code",
		chromedp.SendKeys(chromedp.CSS("#user_code"), strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))),
		chromedp.Click(chromedp.CSS("#continue")),
		chromedp.WaitVisible(chromedp.CSS("#client_name")))
	name, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#client_name")))
	if err != nil || name != "Browser Test CLI" {
		t.Fatalf("consent page client name %q (%v)", name, err)
	}
	scopes, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#scopes")))
	if err != nil || !strings.Contains(scopes, "account:read") || !strings.Contains(scopes, "tickets:read") {
		t.Fatalf("consent page scopes %q (%v)", scopes, err)
	}
	select {
	case r := <-got:
		t.Fatalf("the client got an answer before approval: %+v %v", r.tok, r.err)
	default:
	}
	// Step 2: approve with the account's API key.
	step("approve", chromedp.SendKeys(chromedp.CSS("#api_key"), key), chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#done")))
	done, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#done")))
	if !strings.Contains(done, "Browser Test CLI is connected") {
		t.Fatalf("after approval the page says %q", done)
	}

	var r result
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the polling client got no token within 30 s of the approval")
	}
	if r.err != nil {
		t.Fatalf("polling client: %v", r.err)
	}
	if a, err := bearerT(t, e.base, r.tok.AccessToken).Account(e.ctx); err != nil || a.ID != acc.ID {
		t.Fatalf("API call with the browser-approved token: %+v %v", a, err)
	}
	if r.tok.Extra("scope") != "account:read tickets:read" {
		t.Fatalf("granted scope %v", r.tok.Extra("scope"))
	}
}
