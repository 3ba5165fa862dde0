package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	pb "github.com/hostplane/hostplane/proto"
)

// NodeDeps is what the node admin routes need from the coordinator.
type NodeDeps struct {
	// EnsureCA returns the node CA's fingerprint, creating the CA on first use.
	EnsureCA func(ctx context.Context) (string, error)
	// Live returns a node's last ping and whether it holds a session to this coordinator.
	Live func(nodeID string) (time.Time, bool)
	// Disconnect closes a removed node's session.
	Disconnect func(nodeID string)
}

// Join token lifetimes.
const (
	DefaultJoinTokenTTL = time.Hour
	MaxJoinTokenTTL     = 7 * 24 * time.Hour
)

// NodeAdmin adds the agent node routes to an admin handler: join tokens, list,
// show and remove. Every route runs on the leader (whose sessions give the live
// last-seen times); followers forward.
func (a *API) NodeAdmin(next http.Handler, deps NodeDeps) http.Handler {
	mux := a.newAdminMux()
	leader := func(h adminFunc) http.Handler { return a.adminWrap(h, true) }
	mux.Handle("POST /admin/nodes/tokens", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		return a.adminCreateJoinToken(r, body, now, deps)
	}))
	mux.Handle("GET /admin/nodes", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		return a.adminListNodes(deps)
	}))
	mux.Handle("GET /admin/nodes/{id}", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		return a.adminGetNode(r.PathValue("id"), deps)
	}))
	// GET /admin/nodes/tokens is a 405 (Allow: POST), not the node route's
	// 404 "node tokens not found" (shadowLiterals, for /v1).
	mux.Handle("GET /admin/nodes/tokens", shadowed(a.adminUnrouted))
	mux.Handle("POST /admin/nodes/{id}/remove", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		v, err := a.adminApply(r.Context(), fsm.CmdNodeRemove, now, fsm.NodeRemove{NodeID: r.PathValue("id")})
		if err != nil {
			return 0, nil, err
		}
		if deps.Disconnect != nil {
			deps.Disconnect(r.PathValue("id"))
		}
		return http.StatusOK, v, nil
	}))
	mux.Handle("/", next)
	return mux
}

// DecodeJoinTokenCreate validates a join-token request, filling the default TTL.
func DecodeJoinTokenCreate(body []byte) (api.JoinTokenCreateRequest, error) {
	if len(body) == 0 {
		body = []byte("{}")
	}
	return decodeChecked(body, func(req *api.JoinTokenCreateRequest) error {
		if req.TTLSeconds == 0 {
			req.TTLSeconds = int(DefaultJoinTokenTTL / time.Second)
		}
		if req.TTLSeconds < 1 || req.TTLSeconds > int(MaxJoinTokenTTL/time.Second) {
			return &httpError{status: 400, code: "invalid_field", msg: `field "ttl_seconds" must be from 1 to 604800 (7 days)`}
		}
		if req.NodeID != "" && validate.NodeID(req.NodeID) != nil {
			return &httpError{status: 400, code: "invalid_field", msg: `field "node_id": use 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`}
		}
		return oneLine("description", req.Description, 0, 200)
	})
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("httpapi: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *API) adminCreateJoinToken(r *http.Request, body []byte, now time.Time, deps NodeDeps) (int, any, error) {
	req, err := DecodeJoinTokenCreate(body)
	if err != nil {
		return 0, nil, err
	}
	if deps.EnsureCA == nil {
		return 0, nil, errf(http.StatusServiceUnavailable, "unavailable", "agent sessions are not set up on this coordinator")
	}
	fp, err := deps.EnsureCA(r.Context())
	if err != nil {
		return 0, nil, err
	}
	idb := make([]byte, 8)
	_, _ = rand.Read(idb)
	tok := pb.JoinToken{ID: "jt_" + hex.EncodeToString(idb), Secret: randomToken(32), CAFingerprint: fp}
	exp := now.Add(time.Duration(req.TTLSeconds) * time.Second).UTC()
	if _, err := a.adminApply(r.Context(), fsm.CmdNodeTokenCreate, now, fsm.NodeTokenCreate{
		ID: tok.ID, Hash: pb.TokenSecretHash(tok.Secret), NodeID: req.NodeID, Description: req.Description, ExpiresAt: exp,
	}); err != nil {
		return 0, nil, err
	}
	a.log.Info("join token created", "token_id", tok.ID, "expires_at", exp, "node_id", req.NodeID)
	return http.StatusCreated, api.JoinTokenCreated{ID: tok.ID, Token: tok.String(), ExpiresAt: exp, NodeID: req.NodeID, CAFingerprint: fp}, nil
}

func withLive(n store.AgentNode, deps NodeDeps) api.AgentNode {
	out := n.AgentNode
	if out.Roles == nil {
		out.Roles = []string{}
	}
	if deps.Live != nil {
		if seen, ok := deps.Live(n.ID); ok {
			out.Connected = true
			s := seen.UTC()
			if out.LastSeenAt == nil || s.After(*out.LastSeenAt) {
				out.LastSeenAt = &s
			}
		}
	}
	return out
}

func (a *API) adminListNodes(deps NodeDeps) (int, any, error) {
	out := []api.AgentNode{}
	var nodes []store.AgentNode
	err := a.state.Read(func(r store.ReadTx) (err error) { nodes, err = r.AgentNodes(); return })
	for _, n := range nodes {
		out = append(out, withLive(n, deps))
	}
	return http.StatusOK, out, err
}

func (a *API) adminGetNode(id string, deps NodeDeps) (int, any, error) {
	n, err := readOne(a, "node "+id, func(r store.ReadTx) (store.AgentNode, error) { return r.AgentNode(id) })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, withLive(n, deps), nil
}
