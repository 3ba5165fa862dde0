package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/api"
)

// ErrNodeOffline is what ServerDeps.Stats returns when the server's node holds
// no session with this coordinator.
var ErrNodeOffline = errors.New("the server's host is offline")

// ErrNoConsole is what ServerDeps.Console returns when the node's agent serves
// no browser console (an older agent, or its console listener is off).
var ErrNoConsole = errors.New("the server's host serves no console")

// ServerDeps is what the server and action routes need from the coordinator
// beyond the FSM: the leader's action dispatcher and the agent sessions.
type ServerDeps struct {
	// ActionDeadline is how long a new action may wait for its node before it
	// fails (it is stored in the action).
	ActionDeadline time.Duration
	// PutSecret hands secret params (a root password, as a JSON object) for an
	// action to this leader's dispatcher BEFORE the action is proposed; they
	// live only in memory. DropSecret forgets them when the proposal failed.
	PutSecret  func(actionID string, secret []byte)
	DropSecret func(actionID string)
	// Kick wakes the dispatcher after an action was committed.
	Kick func()
	// Stats asks the node's agent for live stats of a VM: one sample, or with
	// stream a sample per interval until ctx ends or fn returns an error.
	// ErrNodeOffline when the node has no session.
	Stats func(ctx context.Context, nodeID, vm string, stream bool, interval time.Duration, fn func(api.ServerStats) error) error
	// NodeTemplates is the template list the node reported (ok=false when the
	// node has not reported one to this coordinator).
	NodeTemplates func(nodeID string) (templates []string, ok bool)
	// NodePHPVersions is the PHP-FPM versions a hosting node reported
	// (ok=false when it has not reported any to this coordinator).
	NodePHPVersions func(nodeID string) (versions []string, ok bool)
	// Console signs a browser console token for c and returns it with the
	// base URL (https://host:port) of the console listener of c.Node's agent.
	// ErrNodeOffline when the node holds no session here, ErrNoConsole when
	// its agent serves no console.
	Console func(c consoletoken.Claims) (base, token string, err error)
}

// SetServerDeps installs the server routes' dependencies; until it is called
// the routes that need them answer 503.
func (a *API) SetServerDeps(d *ServerDeps) { a.servers.Store(d) }

func (a *API) serverDeps() (*ServerDeps, error) {
	if d := a.servers.Load(); d != nil {
		return d, nil
	}
	return nil, errf(http.StatusServiceUnavailable, "servers_unavailable", "server actions are starting on this coordinator; retry shortly")
}

// actionDeadline is how long a new action may wait for its node.
func (d *ServerDeps) actionDeadline() time.Duration {
	if d.ActionDeadline <= 0 {
		return defaultActionDeadline
	}
	return d.ActionDeadline
}
