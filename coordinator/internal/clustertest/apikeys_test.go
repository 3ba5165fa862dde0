package clustertest

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestScopesNeedNoKey: GET /v1/scopes answers without a key, every scope
// described, keys:write not a default.
func TestScopesNeedNoKey(t *testing.T) {
	f := newFixture(t)
	for _, key := range []string{"", "snc_garbage", f.keyA} {
		r := f.cl.Call(key, "GET", "/v1/scopes", nil, nil)
		if r.Status != 200 {
			t.Fatalf("key %q: %s", key, r)
		}
		var l api.ScopeList
		r.Decode(t, &l)
		if len(l.Data) != len(api.AllScopes) {
			t.Fatalf("%d scopes, want %d", len(l.Data), len(api.AllScopes))
		}
		for i, s := range l.Data {
			if s.Scope != api.AllScopes[i] || s.Description == "" {
				t.Errorf("scope %d: %+v", i, s)
			}
			if s.Scope == api.ScopeKeysWrite && s.Default {
				t.Error("keys:write is listed as a default scope")
			}
		}
	}
}

// keysFixture is account A with a manager key (account:read, keys:write,
// servers:read, tickets:read; expiring in 48 h; loopback only) and a default key.
type keysFixture struct {
	*fixture
	mgr, mgrID string
	exp        time.Time
	dflt       string
}

func newKeysFixture(t *testing.T) *keysFixture {
	f := &keysFixture{fixture: newFixture(t), exp: time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)}
	k, err := f.c.Admin(0).CreateKey(t.Context(), f.accA.ID, api.KeyCreateRequest{Name: "manager", ExpiresAt: &f.exp, AllowedCIDRs: []string{"127.0.0.0/8"},
		Scopes: []string{api.ScopeAccountRead, api.ScopeKeysWrite, api.ScopeServersRead, api.ScopeTicketsRead}})
	if err != nil {
		t.Fatal(err)
	}
	f.mgr, f.mgrID = k.Key, k.Info.ID
	f.dflt = f.key(t, f.accA, api.KeyCreateRequest{Name: "default"})
	return f
}

func (f *keysFixture) keys(t *testing.T, key string) []api.KeyInfo {
	t.Helper()
	r := f.cl.Call(key, "GET", "/v1/account/api-keys", nil, nil)
	if r.Status != 200 {
		t.Fatalf("list keys: %s", r)
	}
	var l api.KeyList
	r.Decode(t, &l)
	return l.Data
}

func (f *keysFixture) mint(t *testing.T, body any, hdr map[string]string) (framework.Reply, api.KeyCreated) {
	t.Helper()
	r := f.cl.Call(f.mgr, "POST", "/v1/account/api-keys", body, hdr)
	var kc api.KeyCreated
	if r.Status == 201 {
		r.Decode(t, &kc)
	}
	return r, kc
}

// TestCustomerMintsAndRevokesOwnKeys: a key with keys:write mints a narrower
// key (secret once, no-store), a default key cannot, the new key works within
// its scopes, revocation is immediate, and the list never shows a secret.
func TestCustomerMintsAndRevokesOwnKeys(t *testing.T) {
	f := newKeysFixture(t)
	if r := f.cl.Call(f.dflt, "POST", "/v1/account/api-keys", api.APIKeyCreateRequest{Name: "x", Scopes: []string{api.ScopeAccountRead}}, nil); r.Status != 403 || r.Code() != "missing_scope" || !strings.Contains(string(r.Body), api.ScopeKeysWrite) {
		t.Fatalf("a default key minted: %s", r)
	}
	r, kc := f.mint(t, api.APIKeyCreateRequest{Name: "ci", Scopes: []string{api.ScopeServersRead}}, nil)
	if r.Status != 201 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("mint: %s (Cache-Control %q)", r, r.Header.Get("Cache-Control"))
	}
	if !strings.HasPrefix(kc.Key, kc.Info.Prefix) || kc.Info.AccountID != f.accA.ID || kc.Info.ExpiresAt == nil || !kc.Info.ExpiresAt.Equal(f.exp) ||
		len(kc.Info.AllowedCIDRs) != 1 || kc.Info.AllowedCIDRs[0] != "127.0.0.0/8" || len(kc.Info.Scopes) != 1 {
		t.Fatalf("minted %+v: want the manager's expiry and allow-list", kc)
	}
	if r := f.cl.Call(kc.Key, "GET", "/v1/servers", nil, nil); r.Status != 200 {
		t.Fatalf("the new key on its scope: %s", r)
	}
	if r := f.cl.Call(kc.Key, "GET", "/v1/tickets", nil, nil); r.Status != 403 || r.Code() != "missing_scope" {
		t.Fatalf("the new key outside its scopes: %s", r)
	}
	// The list: every key of A (not B's), no secret and no hash.
	sum := sha256.Sum256([]byte(kc.Key))
	r = f.cl.Call(f.mgr, "GET", "/v1/account/api-keys", nil, nil)
	if strings.Contains(string(r.Body), kc.Key[len(kc.Info.Prefix):]) || strings.Contains(string(r.Body), hex.EncodeToString(sum[:])) || strings.Contains(string(r.Body), `"hash"`) {
		t.Fatalf("the key list shows a secret or a hash: %s", r.Body)
	}
	found := false
	for _, k := range f.keys(t, f.mgr) {
		found = found || k.ID == kc.Info.ID
		if k.AccountID != f.accA.ID {
			t.Fatalf("A's list shows %+v", k)
		}
	}
	if !found {
		t.Fatal("the minted key is not listed")
	}
	// Revoked: refused at once, listed with revoked_at, revoking again answers it again.
	r = f.cl.Call(f.mgr, "DELETE", "/v1/account/api-keys/"+kc.Info.ID, nil, nil)
	var ki api.KeyInfo
	if r.Decode(t, &ki); r.Status != 200 || ki.RevokedAt == nil {
		t.Fatalf("revoke: %s", r)
	}
	if r := f.cl.Call(kc.Key, "GET", "/v1/servers", nil, nil); r.Status != 401 || r.Code() != "revoked_api_key" {
		t.Fatalf("the revoked key: %s", r)
	}
	if r := f.cl.Call(f.mgr, "DELETE", "/v1/account/api-keys/"+kc.Info.ID, nil, nil); r.Status != 200 {
		t.Fatalf("revoke again: %s", r)
	}
	// A narrower key with keys:write cannot revoke the broader manager.
	_, narrow := f.mint(t, api.APIKeyCreateRequest{Name: "narrow", Scopes: []string{api.ScopeKeysWrite}}, nil)
	if r := f.cl.Call(narrow.Key, "DELETE", "/v1/account/api-keys/"+f.mgrID, nil, nil); r.Status != 403 || r.Code() != "key_escalation" {
		t.Fatalf("a narrower key revoked the manager: %s", r)
	}
	if r := f.cl.Call(f.mgr, "GET", "/v1/account", nil, nil); r.Status != 200 {
		t.Fatalf("manager after the refused revoke: %s", r)
	}
}

// TestKeyMintRefusals: escalation and malformed bodies are refused with the
// field named, and nothing is minted.
func TestKeyMintRefusals(t *testing.T) {
	f := newKeysFixture(t)
	before := len(f.keys(t, f.mgr))
	later := f.exp.Add(time.Hour).Format(time.RFC3339)
	cases := []struct {
		body           string
		status         int
		code, mentions string
	}{
		{`{"name":"x","scopes":["servers:destroy"]}`, 403, "key_escalation", `servers:destroy`},
		{`{"name":"x","scopes":["servers:read","orders:write"]}`, 403, "key_escalation", `orders:write`},
		{`{"name":"x","scopes":["servers:read"],"expires_at":"` + later + `"}`, 403, "key_escalation", `expires_at`},
		{`{"name":"x","scopes":["servers:read"],"allowed_cidrs":["0.0.0.0/0"]}`, 403, "key_escalation", `allowed_cidrs`},
		{`{"name":"x","scopes":["servers:read"],"allowed_cidrs":["10.0.0.1"]}`, 403, "key_escalation", `allowed_cidrs`},
		{`{"name":"x","scopes":["servers:read"],"rate_limit_per_min":100000}`, 400, "", `rate_limit_per_min`},
		{`{"name":"x"}`, 400, "", `scopes`},
		{`{"name":"x","scopes":[]}`, 400, "", `scopes`},
		{`{"name":"x","scopes":"servers:read"}`, 400, "", `scopes`},
		{`{"name":"x","scopes":["all"]}`, 400, "", `scopes`},
		{`{"scopes":["servers:read"]}`, 400, "", `name`},
		{`{"name":"x","scopes":["servers:read"],"expires_at":"2001-01-01T00:00:00Z"}`, 400, "", `expires_at`},
		{`{"name":"x","scopes":["servers:read"],"allowed_cidrs":["10.0.0.0/33"]}`, 400, "", `allowed_cidrs`},
		{`{"name":"x","scopes":["servers:read"]`, 400, "", `malformed`},
		{`[]`, 400, "", ``},
		{``, 400, "", `body`},
	}
	for _, c := range cases {
		r := f.cl.Call(f.mgr, "POST", "/v1/account/api-keys", c.body, map[string]string{"Content-Type": "application/json"})
		if r.Status != c.status || (c.code != "" && r.Code() != c.code) || !strings.Contains(string(r.Body), c.mentions) {
			t.Errorf("%s: %s, want %d %s naming %s", c.body, r, c.status, c.code, c.mentions)
		}
	}
	if n := len(f.keys(t, f.mgr)); n != before {
		t.Fatalf("refused mints left %d keys, want %d", n, before)
	}
	// The manager's own loopback allow-list is inside: a narrower one is fine.
	if r, _ := f.mint(t, `{"name":"x","scopes":["servers:read"],"allowed_cidrs":["127.0.0.1"]}`, map[string]string{"Content-Type": "application/json"}); r.Status != 201 {
		t.Fatalf("narrower allow-list: %s", r)
	}
}

// TestKeyMintIdempotency: the same Idempotency-Key replays the mint without
// the secret (it is stored nowhere) and mints nothing more; another body is a 422.
func TestKeyMintIdempotency(t *testing.T) {
	f := newKeysFixture(t)
	body := api.APIKeyCreateRequest{Name: "deploy", Scopes: []string{api.ScopeTicketsRead}}
	hdr := map[string]string{"Idempotency-Key": "mint-1"}
	r1, k1 := f.mint(t, body, hdr)
	r2, k2 := f.mint(t, body, hdr)
	if r1.Status != 201 || k1.Key == "" || r2.Status != 201 || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %s, replay %s", r1, r2)
	}
	if k2.Key != "" || k2.Info.ID != k1.Info.ID {
		t.Fatalf("replay %+v: want the same key without the secret", k2)
	}
	n := 0
	for _, k := range f.keys(t, f.mgr) {
		if k.Name == "deploy" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d keys minted for one Idempotency-Key", n)
	}
	if r, _ := f.mint(t, api.APIKeyCreateRequest{Name: "other", Scopes: []string{api.ScopeTicketsRead}}, hdr); r.Status != 422 {
		t.Fatalf("another body with the key: %s", r)
	}
}

// TestOtherAccountsKeysAre404: B (every scope) cannot see, read the usage of,
// or revoke A's keys, and A's key keeps working.
func TestOtherAccountsKeysAre404(t *testing.T) {
	f := newKeysFixture(t)
	for _, req := range [][2]string{{"GET", "/v1/account/api-keys/" + f.mgrID + "/usage"}, {"DELETE", "/v1/account/api-keys/" + f.mgrID},
		{"GET", "/v1/account/api-keys/key_00000000000000000000000000/usage"}, {"DELETE", "/v1/account/api-keys/nokey"}} {
		if r := f.cl.Call(f.keyB, req[0], req[1], nil, nil); r.Status != 404 || strings.Contains(string(r.Body), f.accA.ID) {
			t.Errorf("B %s %s: %s, want 404", req[0], req[1], r)
		}
	}
	for _, k := range f.keys(t, f.keyB) {
		if k.AccountID != f.accB.ID {
			t.Fatalf("B's list shows %+v", k)
		}
	}
	if r := f.cl.Call(f.mgr, "GET", "/v1/account", nil, nil); r.Status != 200 {
		t.Fatalf("A's key after B's attempts: %s", r)
	}
}

// TestKeyUsageLog: a key's log shows its own requests only (method, path,
// route template, status, address), newest first, paged.
func TestKeyUsageLog(t *testing.T) {
	f := newKeysFixture(t)
	_, k := f.mint(t, api.APIKeyCreateRequest{Name: "logged", Scopes: []string{api.ScopeServersRead, api.ScopeTicketsRead}}, nil)
	f.cl.Call(k.Key, "GET", "/v1/tickets/"+f.ticketA, nil, nil)
	f.cl.Call(k.Key, "GET", "/v1/servers", nil, nil)
	f.cl.Call(k.Key, "GET", "/v1/billing/wallet", nil, nil) // 403
	for i := 0; i < 5; i++ {
		f.cl.Call(f.mgr, "GET", "/v1/account", nil, nil) // another key's
	}
	var page api.Page[api.KeyUsage]
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.cl.Call(f.mgr, "GET", "/v1/account/api-keys/"+k.Info.ID+"/usage?limit=2", nil, nil)
		if r.Status != 200 {
			t.Fatalf("usage: %s", r)
		}
		r.Decode(t, &page)
		if page.Total >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page.Total != 3 || len(page.Data) != 2 || page.NextPage == nil || *page.NextPage != 2 {
		t.Fatalf("usage page: %+v", page)
	}
	r := f.cl.Call(f.mgr, "GET", "/v1/account/api-keys/"+k.Info.ID+"/usage?page=2&limit=2", nil, nil)
	var p2 api.Page[api.KeyUsage]
	r.Decode(t, &p2)
	all := append(page.Data, p2.Data...)
	want := []struct{ path, route string }{
		{"/v1/billing/wallet", "/v1/billing/wallet"}, {"/v1/servers", "/v1/servers"}, {"/v1/tickets/" + f.ticketA, "/v1/tickets/{id}"},
	}
	if len(all) != 3 {
		t.Fatalf("usage: %+v", all)
	}
	for i, w := range want {
		u := all[i]
		if u.Method != "GET" || u.Path != w.path || u.Route != w.route || u.IP != "127.0.0.1" || u.At.IsZero() {
			t.Errorf("entry %d: %+v, want %s (%s)", i, u, w.path, w.route)
		}
	}
	if all[0].Status != 403 || all[1].Status != 200 {
		t.Errorf("statuses: %d %d", all[0].Status, all[1].Status)
	}
	// The manager's list shows the use.
	for _, ki := range f.keys(t, f.mgr) {
		if ki.ID == k.Info.ID && (ki.LastUsedAt == nil || ki.UseCount != 3) {
			t.Errorf("last use not recorded: %+v", ki)
		}
	}
}
