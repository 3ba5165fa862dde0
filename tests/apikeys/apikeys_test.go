// Package apikeys checks customers' own API keys (GET /v1/scopes,
// /v1/account/api-keys) on three hostplane-coordinator processes
// (tests/framework) as a hostile client would: another account's key ids,
// escalation, malformed bodies, revocation seen at once by every coordinator,
// and a usage log holding the requests of its own key only. Every answer is
// validated against the /openapi.json the coordinators serve.
package apikeys

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

func TestCustomerKeysOnThreeCoordinators(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), NodePrefix: "k",
		RaftTimeout: framework.RaftTimeout, Extra: func(int, *framework.CoordinatorProcess) []string {
			return []string{"--usage-flush-interval", "200ms"}
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	accA, dflt, err := c.NewAccount(ctx, "keys-a@example.com") // a default key
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := c.NewAccount(ctx, "keys-b@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	mgrK, err := c.AnyAlive(nil).Admin().CreateKey(ctx, accA.ID, api.KeyCreateRequest{Name: "manager",
		Scopes: []string{api.ScopeAccountRead, api.ScopeKeysWrite, api.ScopeTicketsRead, api.ScopeBillingRead}})
	if err != nil {
		t.Fatal(err)
	}
	mgr := mgrK.Key
	ld := c.WaitLeader(20 * time.Second)
	apis := make([]*framework.API, c.Len())
	for i := range apis {
		apis[i] = framework.NewAPI(t, c.URL(i), nil)
	}
	follower := apis[(ld+1)%c.Len()]
	var secrets []string

	// Every coordinator lists the scopes without a key.
	for i, a := range apis {
		if r := a.Call("", "GET", "/v1/scopes", nil, nil); r.Status != 200 || !strings.Contains(string(r.Body), api.ScopeKeysWrite) {
			t.Fatalf("coordinator %d GET /v1/scopes: %s", i, r)
		}
	}
	mint := func(a *framework.API, key string, body any) (framework.Reply, api.KeyCreated) {
		t.Helper()
		r := a.Call(key, "POST", "/v1/account/api-keys", body, nil)
		var kc api.KeyCreated
		if r.Status == 201 {
			r.Decode(t, &kc)
			secrets = append(secrets, kc.Key)
		}
		return r, kc
	}
	// Minted through a follower (forwarded to the leader): the secret once, not cached.
	r, k := mint(follower, mgr, api.APIKeyCreateRequest{Name: "ci", Scopes: []string{api.ScopeTicketsRead, api.ScopeAccountRead}})
	if r.Status != 201 || k.Key == "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("mint through a follower: %s (Cache-Control %q)", r, r.Header.Get("Cache-Control"))
	}

	// Hostile: B (every scope) on A's key, on every coordinator.
	for i, a := range apis {
		for _, req := range [][2]string{{"GET", "/v1/account/api-keys/" + k.Info.ID + "/usage"}, {"DELETE", "/v1/account/api-keys/" + k.Info.ID}} {
			if r := a.Call(keyB, req[0], req[1], nil, nil); r.Status != 404 {
				t.Errorf("coordinator %d: B %s %s: %s, want 404", i, req[0], req[1], r)
			}
		}
		if r := a.Call(keyB, "GET", "/v1/account/api-keys", nil, nil); r.Status != 200 || strings.Contains(string(r.Body), k.Info.ID) || strings.Contains(string(r.Body), accA.ID) {
			t.Errorf("coordinator %d: B's key list: %s", i, r)
		}
	}
	// Escalation and malformed bodies: refused, naming what is wrong; nothing minted.
	refusals := []struct {
		key, body string
		status    int
		mentions  string
	}{
		{mgr, `{"name":"x","scopes":["servers:destroy"]}`, 403, "servers:destroy"},
		{mgr, `{"name":"x","scopes":["tickets:read","orders:write"]}`, 403, "orders:write"},
		{k.Key, `{"name":"x","scopes":["tickets:read"]}`, 403, "keys:write"}, // the minted key lacks keys:write
		{dflt, `{"name":"x","scopes":["tickets:read"]}`, 403, "keys:write"},  // so do default keys
		{mgr, `{"name":"x","scopes":["tickets:read"],"rate_limit_per_min":100000000}`, 400, "rate_limit_per_min"},
		{mgr, `{"name":"x","scopes":["tickets:read"],"allowed_cidrs":["10.0.0.0/99"]}`, 400, "allowed_cidrs"},
		{mgr, `{"name":"x","scopes":"tickets:read"}`, 400, "scopes"},
		{mgr, `{"name":"x","scopes":["tickets:read"]`, 400, "malformed"},
		{mgr, `{"name":"","scopes":["tickets:read"]}`, 400, "name"},
	}
	for _, x := range refusals {
		r := follower.Call(x.key, "POST", "/v1/account/api-keys", x.body, map[string]string{"Content-Type": "application/json"})
		if r.Status != x.status || !strings.Contains(string(r.Body), x.mentions) {
			t.Errorf("%s: %s, want %d naming %s", x.body, r, x.status, x.mentions)
		}
	}
	var list api.KeyList
	apis[ld].Call(mgr, "GET", "/v1/account/api-keys", nil, nil).Decode(t, &list)
	if len(list.Data) != 3 { // the default key, the manager and ci
		t.Fatalf("after the refusals A holds %d keys: %+v", len(list.Data), list.Data)
	}

	// The usage log: what k did on every coordinator, nothing of the manager's.
	// k's own refused mint above (403) is in it too.
	want := map[string]int{"/v1/account/api-keys": 1}
	for _, a := range apis {
		for _, p := range []string{"/v1/account", "/v1/tickets", "/v1/billing/wallet"} { // the last is a 403
			a.Call(k.Key, "GET", p, nil, nil)
			want[p]++
			a.Call(mgr, "GET", "/v1/billing/wallet", nil, nil)
		}
	}
	var usage api.Page[api.KeyUsage]
	deadline := time.Now().Add(20 * time.Second)
	for {
		follower.Call(mgr, "GET", "/v1/account/api-keys/"+k.Info.ID+"/usage?limit=100", nil, nil).Decode(t, &usage)
		if usage.Total >= 10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := map[string]int{}
	for _, u := range usage.Data {
		got[u.Path]++
		mint := u.Path == "/v1/account/api-keys"
		if u.IP != "127.0.0.1" || (u.Method == "POST") != mint || (u.Path == "/v1/billing/wallet" || mint) != (u.Status == 403) {
			t.Errorf("usage entry %+v", u)
		}
	}
	if usage.Total != 10 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("usage log of k: total %d %v, want 10 %v", usage.Total, got, want)
	}

	// Revoked on one coordinator: refused at once by every coordinator.
	for round := 0; round < c.Len(); round++ {
		_, kr := mint(apis[round], mgr, api.APIKeyCreateRequest{Name: fmt.Sprint("short-lived-", round), Scopes: []string{api.ScopeAccountRead}})
		for i, a := range apis {
			if r := a.Call(kr.Key, "GET", "/v1/account", nil, nil); r.Status != 200 {
				t.Fatalf("coordinator %d: the new key: %s", i, r)
			}
		}
		if r := apis[round].Call(mgr, "DELETE", "/v1/account/api-keys/"+kr.Info.ID, nil, nil); r.Status != 200 {
			t.Fatalf("revoke on coordinator %d: %s", round, r)
		}
		for i, a := range apis {
			if r := a.Call(kr.Key, "GET", "/v1/account", nil, nil); r.Status != 401 || r.Code() != "revoked_api_key" {
				t.Errorf("revoked on %d, used on %d right after: %s", round, i, r)
			}
		}
	}

	// No coordinator logged a secret.
	for _, p := range c.Nodes {
		log, _ := os.ReadFile(p.LogPath())
		for _, s := range append(secrets, mgr, dflt) {
			if strings.Contains(string(log), s[len("snc_"):]) {
				t.Errorf("%s's log holds an API key secret", p.ID)
			}
		}
	}
}
