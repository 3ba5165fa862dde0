package fsm

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Customers' own API keys (/v1/account/api-keys, keys:write). The minting or
// revoking key is named in the command and checked here, at apply time, so a
// key revoked or narrowed between the request and the commit cannot mint.

// ErrKeyEscalation refuses a key that would hold more than the key making
// the request: a scope it lacks, a later expiry, more source addresses.
var ErrKeyEscalation = errors.New("not allowed")

// MaxActiveKeys bounds the keys an account holds that are neither revoked
// nor expired, so minting keys cannot multiply the per-key rate limit without end.
const MaxActiveKeys = 50

// AccountKeyCreate mints a key for the account of MinterKeyID (hash only).
// An empty ExpiresAt or AllowedCIDRs takes the minter's; the rate limit is
// always the minter's (RateLimitPerMin is ignored).
type AccountKeyCreate struct {
	KeyCreate
	MinterKeyID string `json:"minter_key_id"`
}

// AccountKeyRevoke revokes a key of AccountID on behalf of its key RevokerKeyID.
type AccountKeyRevoke struct {
	ID           string `json:"id"`
	AccountID    string `json:"account_id"`
	RevokerKeyID string `json:"revoker_key_id"`
}

// actingKey loads the key making a request of account: it must belong to the
// account and be neither revoked nor expired at the command's time.
func actingKey(c *applyCtx, id, account string) (store.Key, error) {
	var k store.Key
	err := store.GetJSON(c.tx, store.BucketKeys, []byte(id), &k)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && k.AccountID != account):
		return k, fmt.Errorf("%w: only an API key of the account manages its keys", ErrKeyEscalation)
	case err != nil:
		return k, err
	case k.RevokedAt != nil:
		return k, fmt.Errorf("%w: the key making the request was revoked", ErrKeyEscalation)
	case k.ExpiresAt != nil && !c.at.Before(*k.ExpiresAt):
		return k, fmt.Errorf("%w: the key making the request has expired", ErrKeyEscalation)
	}
	return k, nil
}

// scopesWithin names the first of want that has does not hold ("" if none).
func scopesWithin(want, has []string) string {
	for _, s := range want {
		if !auth.HasScope(has, s) {
			return s
		}
	}
	return ""
}

// cidrsWithin names the first of want (parsed) not inside some prefix of has;
// an empty has allows every address.
func cidrsWithin(want, has []string) (string, error) {
	if len(has) == 0 {
		return "", nil
	}
	outer, err := auth.ParseCIDRs(has)
	if err != nil {
		return "", err
	}
	inner, err := auth.ParseCIDRs(want)
	if err != nil {
		return "", fmt.Errorf("%w: field \"allowed_cidrs\": %v", ErrInvalid, err)
	}
	for i, p := range inner {
		if !prefixInside(p, outer) {
			return want[i], nil
		}
	}
	return "", nil
}

func prefixInside(p netip.Prefix, outer []netip.Prefix) bool {
	for _, o := range outer {
		if o.Addr().Is4() == p.Addr().Is4() && o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func applyAccountKeyCreate(c *applyCtx, p AccountKeyCreate) (any, error) {
	minter, err := actingKey(c, p.MinterKeyID, p.AccountID)
	if err != nil {
		return nil, err
	}
	if len(p.Scopes) == 0 {
		return nil, fmt.Errorf("%w: field \"scopes\" is required", ErrInvalid)
	}
	if s := scopesWithin(p.Scopes, minter.Scopes); s != "" {
		return nil, fmt.Errorf("%w: field \"scopes\": %q is not a scope of the key making the request", ErrKeyEscalation, s)
	}
	if p.ExpiresAt == nil {
		p.ExpiresAt = minter.ExpiresAt
	} else if !p.ExpiresAt.After(c.at) {
		return nil, fmt.Errorf("%w: field \"expires_at\" must be in the future", ErrInvalid)
	} else if minter.ExpiresAt != nil && p.ExpiresAt.After(*minter.ExpiresAt) {
		return nil, fmt.Errorf("%w: field \"expires_at\" is after the expiry of the key making the request (%s)", ErrKeyEscalation, minter.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if len(p.AllowedCIDRs) == 0 {
		p.AllowedCIDRs = minter.AllowedCIDRs
	} else if out, err := cidrsWithin(p.AllowedCIDRs, minter.AllowedCIDRs); err != nil {
		return nil, err
	} else if out != "" {
		return nil, fmt.Errorf("%w: field \"allowed_cidrs\": %s is outside the allow-list of the key making the request", ErrKeyEscalation, out)
	}
	active := 0
	keys, err := c.r.AccountKeys(p.AccountID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.RevokedAt == nil && (k.ExpiresAt == nil || c.at.Before(*k.ExpiresAt)) {
			active++
		}
	}
	if active >= MaxActiveKeys {
		return nil, fmt.Errorf("%w: the account holds %d active API keys, the most allowed; revoke one first", ErrConflict, active)
	}
	p.RateLimitPerMin = minter.RateLimitPerMin
	v, err := applyKeyCreate(c, p.KeyCreate)
	if err != nil {
		return nil, err
	}
	// The secret is not here: this value is what an Idempotency-Key replays.
	return api.KeyCreated{Info: v.(api.KeyInfo)}, nil
}

func applyAccountKeyRevoke(c *applyCtx, p AccountKeyRevoke) (any, error) {
	var k store.Key
	if err := store.GetJSON(c.tx, store.BucketKeys, []byte(p.ID), &k); err != nil || k.AccountID != p.AccountID {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("API key %s: %w", p.ID, ErrNotFound)
		}
		return nil, err
	}
	revoker, err := actingKey(c, p.RevokerKeyID, p.AccountID)
	if err != nil {
		return nil, err
	}
	if s := scopesWithin(k.Scopes, revoker.Scopes); s != "" {
		return nil, fmt.Errorf("%w: key %s holds %q, a scope the key making the request lacks", ErrKeyEscalation, p.ID, s)
	}
	return applyKeyRevoke(c, KeyRevoke{ID: p.ID})
}
