package audit

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// specScopes are the scopes SPEC.md lists.
var specScopes = []string{"account:read", "servers:read", "servers:write", "servers:destroy", "hosting:read", "hosting:write",
	"hosting:destroy", "domains:read", "domains:write", "billing:read", "tickets:read", "tickets:write", "webhooks:read",
	"webhooks:write", "orders:write"}

// TestSeed002KeysAsACyberPanelClient: a customer's own API keys as the
// CyberPanel seed describes them (key hashing, IP allow-list, expiry, last use
// and request count, usage log), checked by a client that knows only the
// seed and SPEC.md. GET /v1/scopes needs no key and describes every scope
// SPEC.md lists. A key minted with an expiry and a single allowed address is
// shown once; the key list shows only its prefix, the expiry and the address,
// and no use. Minting one that has already expired is a 400 naming
// expires_at that mints nothing. After three calls (the last a 403 for a
// scope the key lacks) the list shows use_count 3 and a last_used_at of
// those calls, and the usage log pages them newest first with method, path,
// status and the caller's address; bad paging is a 400 naming the
// parameter. A stale read a follower answered is counted and logged too,
// and so is an attempt from an address a key's allow-list does not hold
// (403, with that address). No coordinator keeps a minted key's secret in its data
// directory or log (keys are stored hashed).
func TestSeed002KeysAsACyberPanelClient(t *testing.T) {
	r := lightRig(t, "s002", "--usage-flush-interval", "200ms")
	mgr := r.keyOfA(t, api.KeyCreateRequest{Name: "manager",
		Scopes: []string{api.ScopeAccountRead, api.ScopeKeysWrite, api.ScopeTicketsRead}})
	secrets := []string{mgr, r.keyA, r.keyB}

	// GET /v1/scopes: no key, every scope of SPEC.md described.
	for i := range r.c.Len() {
		var sl api.ScopeList
		rep := r.apis[i].Call("", "GET", "/v1/scopes", nil, nil)
		if rep.Status != 200 {
			t.Fatalf("coordinator %d GET /v1/scopes without a key: %s", i, rep)
		}
		rep.Decode(t, &sl)
		desc := map[string]string{}
		for _, s := range sl.Data {
			desc[s.Scope] = s.Description
		}
		for _, s := range specScopes {
			if strings.TrimSpace(desc[s]) == "" {
				t.Errorf("coordinator %d GET /v1/scopes: %q missing or without a description (%v)", i, s, desc)
			}
		}
	}

	// Minted with an expiry and one allowed address: the secret once.
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rep := r.call(0, mgr, "POST", "/v1/account/api-keys", api.APIKeyCreateRequest{Name: "Production Key",
		Scopes: []string{api.ScopeAccountRead, api.ScopeTicketsRead}, ExpiresAt: &exp, AllowedCIDRs: []string{"127.0.0.1"}}, nil)
	if rep.Status != 201 {
		t.Fatalf("mint: %s", rep)
	}
	var kc api.KeyCreated
	rep.Decode(t, &kc)
	k, id := kc.Key, kc.Info.ID
	secrets = append(secrets, k)
	if !strings.HasPrefix(k, "snc_") || len(k) < len("snc_")+40 {
		t.Fatalf("minted key %.8s… of %d characters, want snc_ and at least 32 random bytes", k, len(k))
	}

	keyInfo := func() api.KeyInfo {
		t.Helper()
		rep := r.call(0, mgr, "GET", "/v1/account/api-keys", nil, nil)
		if rep.Status != 200 {
			t.Fatalf("%s", rep)
		}
		for _, s := range secrets {
			if strings.Contains(string(rep.Body), s[len("snc_"):]) {
				t.Fatalf("GET /v1/account/api-keys shows a key's secret")
			}
		}
		var l api.KeyList
		rep.Decode(t, &l)
		for _, ki := range l.Data {
			if ki.ID == id {
				return ki
			}
		}
		t.Fatalf("key %s not listed: %s", id, rep)
		return api.KeyInfo{}
	}
	ki := keyInfo()
	if ki.Name != "Production Key" || ki.Prefix == "" || !strings.HasPrefix(k, ki.Prefix) || len(ki.Prefix) > 16 ||
		ki.ExpiresAt == nil || !ki.ExpiresAt.Equal(exp) || !slices.Equal(ki.AllowedCIDRs, []string{"127.0.0.1"}) ||
		ki.LastUsedAt != nil || ki.UseCount != 0 || ki.RevokedAt != nil {
		t.Errorf("the new key as listed: %+v (want its short prefix, expiry %v, 127.0.0.1, no use)", ki, exp)
	}

	// An expiry in the past: a 400 naming expires_at; nothing minted.
	past := time.Now().Add(-time.Minute)
	var before, after api.KeyList
	r.call(0, mgr, "GET", "/v1/account/api-keys", nil, nil).Decode(t, &before)
	if rep := r.call(0, mgr, "POST", "/v1/account/api-keys", api.APIKeyCreateRequest{Name: "stale", Scopes: []string{api.ScopeAccountRead}, ExpiresAt: &past}, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), "expires_at") {
		t.Errorf("a key that expired a minute ago: %s, want 400 naming expires_at", rep)
	}
	r.call(0, mgr, "GET", "/v1/account/api-keys", nil, nil).Decode(t, &after)
	if len(after.Data) != len(before.Data) {
		t.Errorf("the refused mint left %d keys, was %d", len(after.Data), len(before.Data))
	}

	// Three calls with the key, the last refused for its scope.
	t0 := time.Now()
	calls := []struct {
		path   string
		status int
	}{{"/v1/account", 200}, {"/v1/tickets", 200}, {"/v1/billing/wallet", 403}}
	for _, c := range calls {
		rep := r.call(0, k, "GET", c.path, nil, nil)
		if rep.Status != c.status {
			t.Fatalf("%s, want %d", rep, c.status)
		}
		if c.status == 403 && (rep.Code() != "missing_scope" || !strings.Contains(string(rep.Body), "billing:read")) {
			t.Errorf("a call without billing:read: %s, want 403 missing_scope naming billing:read", rep)
		}
		time.Sleep(5 * time.Millisecond) // distinct times, so newest first is an order
	}
	t1 := time.Now()
	framework.WaitFor(t, "the key's three uses in the key list", 20*time.Second, 100*time.Millisecond, func() bool { return keyInfo().UseCount >= 3 })
	ki = keyInfo()
	if ki.UseCount != 3 || ki.LastUsedAt == nil || ki.LastUsedAt.Before(t0.Add(-time.Second)) || ki.LastUsedAt.After(t1.Add(time.Second)) {
		t.Errorf("after three calls between %v and %v: use_count %d, last_used_at %v", t0, t1, ki.UseCount, ki.LastUsedAt)
	}

	// The usage log, a page of one at a time: newest first.
	usage := "/v1/account/api-keys/" + id + "/usage"
	for i := range calls {
		var p api.Page[api.KeyUsage]
		rep := r.get(t, 0, mgr, usage+"?limit=1&page="+string(rune('1'+i)), &p)
		want := calls[len(calls)-1-i]
		if p.Total != 3 || len(p.Data) != 1 || (p.NextPage != nil) != (i < 2) {
			t.Fatalf("usage page %d of 1: %s", i+1, rep)
		}
		u := p.Data[0]
		if u.Method != "GET" || u.Path != want.path || u.Status != want.status || u.IP != "127.0.0.1" || u.At.Before(t0.Add(-time.Second)) || u.At.After(t1.Add(time.Second)) {
			t.Errorf("usage page %d: %+v, want GET %s %d from 127.0.0.1", i+1, u, want.path, want.status)
		}
	}
	for _, q := range []struct{ query, names string }{{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=-1", "limit"}, {"limit=ten", "limit"}, {"page=0", "page"}, {"page=x", "page"}} {
		if rep := r.call(0, mgr, "GET", usage+"?"+q.query, nil, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), q.names) {
			t.Errorf("usage ?%s: %s, want 400 naming %s", q.query, rep, q.names)
		}
	}

	// A stale read answered by a follower is a use like any other.
	f := r.follower()
	rep = r.apis[f].Call(k, "GET", "/v1/tickets?consistency=stale", nil, nil)
	if rep.Status != 200 || rep.Header.Get("X-Hostplane-Read-Consistency") != "stale" {
		t.Fatalf("a stale read on follower %d: %s", f, rep)
	}
	framework.WaitFor(t, "the stale read in the key list and usage log", 20*time.Second, 100*time.Millisecond, func() bool {
		var p api.Page[api.KeyUsage]
		r.call(0, mgr, "GET", usage+"?limit=1", nil, nil).Decode(t, &p)
		return keyInfo().UseCount == 4 && p.Total == 4 && len(p.Data) == 1 && strings.Contains(p.Data[0].Path, "/v1/tickets")
	})

	// A key used from an address its allow-list does not hold: refused, and
	// the attempt is in its usage log with the address it came from (what
	// its owner looks for when a key leaks).
	rep = r.call(0, mgr, "POST", "/v1/account/api-keys", api.APIKeyCreateRequest{Name: "office", Scopes: []string{api.ScopeAccountRead}, AllowedCIDRs: []string{"10.0.0.0/8"}}, nil)
	if rep.Status != 201 {
		t.Fatalf("mint office: %s", rep)
	}
	var office api.KeyCreated
	rep.Decode(t, &office)
	secrets = append(secrets, office.Key)
	if rep := r.call(0, office.Key, "GET", "/v1/account", nil, nil); rep.Status != 403 || rep.Code() != "ip_not_allowed" {
		t.Fatalf("a 10.0.0.0/8 key from loopback: %s, want 403 ip_not_allowed", rep)
	}
	framework.WaitFor(t, "the refused attempt in the office key's usage log", 20*time.Second, 100*time.Millisecond, func() bool {
		var p api.Page[api.KeyUsage]
		r.call(0, mgr, "GET", "/v1/account/api-keys/"+office.Info.ID+"/usage", nil, nil).Decode(t, &p)
		return p.Total == 1 && p.Data[0].Status == 403 && p.Data[0].IP == "127.0.0.1" && p.Data[0].Path == "/v1/account"
	})

	// Keys are stored hashed: no coordinator's files hold a secret.
	for _, p := range r.c.Nodes {
		files := []string{p.LogPath()}
		_ = filepath.WalkDir(p.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == "fsm.db" }) {
			t.Errorf("no fsm.db under %s to look into: %v", p.DataDir, files)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range secrets {
				if strings.Contains(string(b), s[len("snc_"):]) {
					t.Errorf("%s holds an API key's secret (%.8s…)", f, s)
				}
			}
		}
	}
}
