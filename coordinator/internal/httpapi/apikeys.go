package httpapi

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// The scopes (GET /v1/scopes, no key) and the customer's own API keys
// (/v1/account/api-keys): listed and their usage read with account:read,
// minted and revoked with keys:write, which default keys lack. The FSM checks
// the minting key at commit (fsm.AccountKeyCreate): no scope, expiry or
// allow-list beyond its own.

func (a *API) apiKeyRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/scopes", Public: true, handler: a.listScopes},
		{Method: "GET", Path: "/v1/account/api-keys", Scope: api.ScopeAccountRead, handler: a.listAPIKeys},
		{Method: "GET", Path: "/v1/account/api-keys/{id}/usage", Scope: api.ScopeAccountRead, handler: a.apiKeyUsage},
		{Method: "POST", Path: "/v1/account/api-keys", Scope: api.ScopeKeysWrite, Idempotent: true, handler: a.createAPIKey},
		{Method: "DELETE", Path: "/v1/account/api-keys/{id}", Scope: api.ScopeKeysWrite, handler: a.revokeAPIKey},
	}
}

// listScopes answers every scope in the brand's names.
func (a *API) listScopes(*request) (int, any, error) {
	l := api.Scopes()
	for i, s := range l.Data {
		l.Data[i].Scope, l.Data[i].Description = a.brand.Scope(s.Scope), a.brand.Text(s.Description)
	}
	return http.StatusOK, l, nil
}

func (a *API) listAPIKeys(rq *request) (int, any, error) {
	var keys []api.KeyInfo
	err := a.state.Read(func(r store.ReadTx) (err error) { keys, err = r.AccountKeys(rq.caller.accountID); return })
	return http.StatusOK, api.KeyList{Data: keys}, err
}

func (a *API) apiKeyUsage(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("key", id) {
		return 0, nil, notFound("API key")
	}
	k, err := readOne(a, "API key", func(r store.ReadTx) (api.KeyInfo, error) { return r.Key(id) })
	if err != nil {
		return 0, nil, err
	}
	if k.AccountID != rq.caller.accountID {
		return 0, nil, notFound("API key")
	}
	cursor, page, limit, err := pagingToken(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	at := store.UsageAt{Offset: max(0, page-1) * limit}
	if cursor != "" {
		pos, err := openListToken(cursor, tokenKeyUsage, rq.caller.accountID, id)
		if err != nil {
			return 0, nil, err
		}
		if len(pos) != 16 {
			return 0, nil, badListToken()
		}
		at.Below = &store.UsagePos{At: int64(binary.BigEndian.Uint64(pos)), Seq: binary.BigEndian.Uint64(pos[8:])}
	}
	out := api.Page[api.KeyUsage]{Page: page, Limit: limit}
	var next *store.UsagePos
	err = a.state.Read(func(r store.ReadTx) (err error) {
		out.Data, out.Total, next, err = r.KeyUsageAt(id, at, limit)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	var pos []byte
	if next != nil {
		pos = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(next.At)), next.Seq)
	}
	return tokenPage(rq, out, tokenKeyUsage, id, pos)
}

// keyManager refuses an OAuth access token: a connected app must not mint
// keys that outlive its grant, nor revoke the customer's keys.
func keyManager(rq *request) error {
	if rq.caller.token {
		return errf(http.StatusForbidden, "api_key_required", "API keys are minted and revoked with an API key, not an OAuth access token")
	}
	return nil
}

func (a *API) createAPIKey(rq *request) (int, any, error) {
	// The secret is in this answer only: no cache may keep it.
	rq.w.Header().Set("Cache-Control", "no-store")
	if err := keyManager(rq); err != nil {
		return 0, nil, err
	}
	req, err := DecodeAPIKeyCreate(a.brand, rq.body, rq.now)
	if err != nil {
		return 0, nil, err
	}
	plain, hash, prefix := auth.NewKey(a.cfg.KeyPrefix)
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdAccountKeyCreate, fsm.AccountKeyCreate{MinterKeyID: rq.caller.keyID, KeyCreate: fsm.KeyCreate{
		ID: ids.New("key", rq.now), AccountID: rq.caller.accountID, Name: req.Name,
		Hash: hash, Prefix: prefix, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt, AllowedCIDRs: req.AllowedCIDRs,
	}}, http.StatusCreated)
	if err != nil {
		return 0, nil, err
	}
	if kc, ok := v.(api.KeyCreated); ok {
		kc.Key = plain
		return status, kc, nil
	}
	return status, v, nil // a replay: the stored answer, without the secret
}

func (a *API) revokeAPIKey(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("key", id) {
		return 0, nil, notFound("API key")
	}
	if err := keyManager(rq); err != nil {
		return 0, nil, err
	}
	return a.propose(rq.Context(), rq, fsm.CmdAccountKeyRevoke, fsm.AccountKeyRevoke{ID: id, AccountID: rq.caller.accountID, RevokerKeyID: rq.caller.keyID}, http.StatusOK)
}

// DecodeAPIKeyCreate validates a customer's key-mint body, scopes in b's
// names (nil: the default brand). Whether the minting key holds the scopes,
// the expiry and the addresses is the FSM's check at commit.
func DecodeAPIKeyCreate(b *brand.Brand, body []byte, now time.Time) (api.APIKeyCreateRequest, error) {
	return decodeChecked(body, func(req *api.APIKeyCreateRequest) error {
		if err := oneLine("name", req.Name, 1, 100); err != nil {
			return err
		}
		if len(req.Scopes) == 0 {
			return &httpError{status: 400, code: "invalid_field", msg: `field "scopes" is required: the scopes of the new key, each one a scope of the key making the request (GET /v1/scopes lists them)`}
		}
		req.ExpiresAt = inUTC(req.ExpiresAt)
		return checkKeyFields(b, req.Scopes, req.ExpiresAt, req.AllowedCIDRs, now)
	})
}

// inUTC is t in UTC (nil stays nil): a time a client sends in another offset
// is stored and shown as every time of the API is (SPEC: RFC 3339 UTC).
func inUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// checkKeyFields checks the scopes (b's, each once), the expiry (future)
// and the allow-list (at most 100 addresses or CIDRs) of a key to mint.
func checkKeyFields(b *brand.Brand, scopes []string, expiresAt *time.Time, cidrs []string, now time.Time) error {
	seen := map[string]bool{}
	for _, s := range scopes {
		if !b.IsScope(s) {
			return &httpError{status: 400, code: "invalid_field", msg: fmt.Sprintf("field \"scopes\": unknown scope %q", s)}
		}
		if seen[s] {
			return &httpError{status: 400, code: "invalid_field", msg: fmt.Sprintf("field \"scopes\": scope %q listed twice", s)}
		}
		seen[s] = true
	}
	if expiresAt != nil && !expiresAt.After(now) {
		return &httpError{status: 400, code: "invalid_field", msg: `field "expires_at" must be in the future`}
	}
	if len(cidrs) > 100 {
		return &httpError{status: 400, code: "invalid_field", msg: `field "allowed_cidrs" takes at most 100 entries`}
	}
	for _, c := range cidrs {
		if err := auth.CheckCIDR(c); err != nil {
			return &httpError{status: 400, code: "invalid_field", msg: fmt.Sprintf("field \"allowed_cidrs\": %v", err)}
		}
	}
	return nil
}
