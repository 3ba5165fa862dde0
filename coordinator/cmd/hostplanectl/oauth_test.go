package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestOAuthCLI: `hostplanectl oauth approve` approves a device's user code for
// an account (the device's poll then gets tokens), `oauth apps` lists the
// connected app and `oauth revoke` revokes it with its tokens.
func TestOAuthCLI(t *testing.T) {
	run := func(g *globals, args ...string) error { return execQuiet(newOAuthCmd(g), args...) }
	var ue usageError
	if err := run(&globals{}, "approve", "BCDF-GHJK"); !errors.As(err, &ue) {
		t.Fatalf("approve without --account: %v, want a usage error", err)
	}
	if testing.Short() {
		return
	}
	c := testcluster.New(t, 1)
	g := &globals{socket: c.Nodes[0].Cfg.AdminSocket, json: true}
	acc, _ := c.NewAccount("cli-oauth@example.com")
	post := func(path string, form url.Values, out any) int {
		t.Helper()
		resp, err := http.PostForm(c.URL(0)+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	clientID := c.RegisterOAuthClient(0, map[string]any{"client_name": "CLI", "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}})
	var da struct {
		DeviceCode string `json:"device_code"`
		UserCode   string `json:"user_code"`
	}
	if st := post("/oauth/device_authorization", url.Values{"client_id": {clientID}, "scope": {"account:read"}}, &da); st != 200 {
		t.Fatalf("device authorization: %d", st)
	}
	if err := run(g, "approve", da.UserCode, "--account", acc.ID, "--scopes", "servers:destroy"); err == nil {
		t.Fatal("approving a scope the account's keys lack succeeded")
	}
	if err := run(g, "approve", da.UserCode, "--account", acc.ID); err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if st := post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID}}, &tok); st != 200 || tok.Scope != "account:read" {
		t.Fatalf("token after the CLI approval: %d %+v", st, tok.Scope)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.New(c.URL(0), tok.AccessToken).Account(ctx); err != nil {
		t.Fatalf("API call with the token: %v", err)
	}
	apps, err := client.NewAdmin(g.socket).ConnectedApps(ctx, acc.ID)
	if err != nil || len(apps.Data) != 1 {
		t.Fatalf("connected apps: %+v %v", apps, err)
	}
	if err := run(g, "apps", acc.ID); err != nil {
		t.Fatal(err)
	}
	if err := run(g, "revoke", apps.Data[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(c.URL(0), tok.AccessToken).Account(ctx); api.StatusOf(err) != 401 {
		t.Fatalf("token after `oauth revoke`: %v, want 401", err)
	}
}
