package fsm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestAccountKeyChecksAtCommit: the minting key is checked when the command
// applies — its scopes, expiry, allow-list, account and revocation — and the
// result (what an Idempotency-Key stores) holds no secret.
func TestAccountKeyChecksAtCommit(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	idx := uint64(0)
	apply := func(typ CommandType, at time.Time, p any) *Result {
		t.Helper()
		idx++
		return f.ApplyBatch([]*raft.Log{logAt(t, idx, typ, at, p)})[0].(*Result)
	}
	exp := t0.Add(48 * time.Hour)
	for _, acc := range []string{"acc_a", "acc_b"} {
		if r := apply(CmdAccountCreate, t0, AccountCreate{ID: acc, Email: acc + "@x.io", Name: acc, Country: "TR"}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := apply(CmdKeyCreate, t0, KeyCreate{ID: "key_m", AccountID: "acc_a", Hash: "hm", Prefix: "snc_m",
		Scopes: []string{api.ScopeServersRead, api.ScopeKeysWrite}, ExpiresAt: &exp, AllowedCIDRs: []string{"203.0.113.0/24"}, RateLimitPerMin: 7}); r.Err != nil {
		t.Fatal(r.Err)
	}
	mint := func(id string, at time.Time, mod func(*AccountKeyCreate)) *Result {
		p := AccountKeyCreate{MinterKeyID: "key_m", KeyCreate: KeyCreate{ID: id, AccountID: "acc_a", Name: id, Hash: "h" + id, Prefix: "snc_" + id, Scopes: []string{api.ScopeServersRead}}}
		if mod != nil {
			mod(&p)
		}
		return apply(CmdAccountKeyCreate, at, p)
	}
	r := mint("key_1", t0, nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	kc := r.Value.(api.KeyCreated)
	if kc.Key != "" || kc.Info.ExpiresAt == nil || !kc.Info.ExpiresAt.Equal(exp) || len(kc.Info.AllowedCIDRs) != 1 || kc.Info.RateLimitPerMin != 7 {
		t.Fatalf("minted %+v: want the minter's expiry, allow-list and rate limit, and no secret", kc)
	}
	later := exp.Add(time.Hour)
	refused := map[string]func(*AccountKeyCreate){
		`"servers:write" is not a scope`: func(p *AccountKeyCreate) { p.Scopes = []string{api.ScopeServersRead, api.ScopeServersWrite} },
		`"expires_at" is after`:          func(p *AccountKeyCreate) { p.ExpiresAt = &later },
		`0.0.0.0/0 is outside`:           func(p *AccountKeyCreate) { p.AllowedCIDRs = []string{"0.0.0.0/0"} },
		`203.0.112.0/23 is outside`:      func(p *AccountKeyCreate) { p.AllowedCIDRs = []string{"203.0.113.7", "203.0.112.0/23"} },
		`2001:db8::1 is outside`:         func(p *AccountKeyCreate) { p.AllowedCIDRs = []string{"2001:db8::1"} },
		`only an API key of the account`: func(p *AccountKeyCreate) { p.AccountID = "acc_b" },
	}
	for want, mod := range refused {
		r := mint("key_x", t0, mod)
		if !errors.Is(r.Err, ErrKeyEscalation) || !strings.Contains(r.Err.Error(), want) {
			t.Errorf("%s: got %v", want, r.Err)
		}
	}
	if r := mint("key_2", t0, func(p *AccountKeyCreate) { p.AllowedCIDRs = []string{"203.0.113.128/25"} }); r.Err != nil {
		t.Fatalf("a narrower allow-list: %v", r.Err)
	}
	// The minter expired (by the command's time): refused.
	if r := mint("key_x", exp, nil); !errors.Is(r.Err, ErrKeyEscalation) {
		t.Fatalf("an expired minter minted: %v", r.Err)
	}
	// Revoke: another account's key is not found; a narrower key cannot
	// revoke a broader one; the revoked minter can mint no more.
	if r := apply(CmdAccountKeyRevoke, t0, AccountKeyRevoke{ID: "key_1", AccountID: "acc_b", RevokerKeyID: "key_m"}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("revoke across accounts: %v", r.Err)
	}
	if r := apply(CmdAccountKeyCreate, t0, AccountKeyCreate{MinterKeyID: "key_m", KeyCreate: KeyCreate{ID: "key_3", AccountID: "acc_a", Name: "n", Hash: "h3", Prefix: "p",
		Scopes: []string{api.ScopeKeysWrite}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(CmdAccountKeyRevoke, t0, AccountKeyRevoke{ID: "key_m", AccountID: "acc_a", RevokerKeyID: "key_3"}); !errors.Is(r.Err, ErrKeyEscalation) {
		t.Fatalf("a keys:write-only key revoked a broader key: %v", r.Err)
	}
	if r := apply(CmdAccountKeyRevoke, t0, AccountKeyRevoke{ID: "key_3", AccountID: "acc_a", RevokerKeyID: "key_m"}); r.Err != nil || r.Value.(api.KeyInfo).RevokedAt == nil {
		t.Fatalf("revoke: %+v", r)
	}
	ver := f.KeysVersion()
	if r := apply(CmdAccountKeyRevoke, t0, AccountKeyRevoke{ID: "key_m", AccountID: "acc_a", RevokerKeyID: "key_m"}); r.Err != nil {
		t.Fatalf("self-revoke: %v", r.Err)
	}
	if f.KeysVersion() == ver {
		t.Fatal("a revoke did not move the keys version (authentication caches would keep the key)")
	}
	if r := mint("key_x", t0, nil); !errors.Is(r.Err, ErrKeyEscalation) || !strings.Contains(r.Err.Error(), "revoked") {
		t.Fatalf("a revoked minter minted: %v", r.Err)
	}
	// Nothing refused was stored.
	_ = f.View(func(tx *bolt.Tx) error {
		if store.Read(tx).KeyExists("key_x") {
			t.Error("a refused key was stored")
		}
		return nil
	})
}

// TestAccountKeyLimit: at most MaxActiveKeys keys neither revoked nor expired.
func TestAccountKeyLimit(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	idx := uint64(0)
	apply := func(typ CommandType, p any) *Result {
		idx++
		return f.ApplyBatch([]*raft.Log{logOf(t, idx, typ, p)})[0].(*Result)
	}
	apply(CmdAccountCreate, AccountCreate{ID: "acc_a", Email: "a@x.io", Name: "a", Country: "TR"})
	apply(CmdKeyCreate, KeyCreate{ID: "key_m", AccountID: "acc_a", Hash: "hm", Prefix: "p", Scopes: []string{api.ScopeKeysWrite}})
	for i := 1; ; i++ {
		id := "key_" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		r := apply(CmdAccountKeyCreate, AccountKeyCreate{MinterKeyID: "key_m", KeyCreate: KeyCreate{ID: id, AccountID: "acc_a", Name: "n", Hash: "h" + id, Prefix: "p", Scopes: []string{api.ScopeKeysWrite}}})
		if r.Err != nil {
			if !errors.Is(r.Err, ErrConflict) || i != MaxActiveKeys {
				t.Fatalf("key %d: %v", i, r.Err)
			}
			break
		}
	}
}
