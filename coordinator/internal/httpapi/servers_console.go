package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/api"
)

// ConsoleTTL is how long a console URL may wait to be opened.
const ConsoleTTL = 60 * time.Second

// consolePath is where an agent's console listener takes the WebSocket
// (noVNC's default path).
const consolePath = "/websockify"

// serverConsole makes a signed, single-use browser console URL for a running
// server. Nothing is written through Raft: the token is checked by the node's
// agent, offline, against the console key it learnt over its session.
func (a *API) serverConsole(rq *request) (int, any, error) {
	s, deps, _, err := serverDepsAndBody(a, rq, noBody)
	if err != nil {
		return 0, nil, err
	}
	switch s.Status {
	case api.ServerRunning:
	case api.ServerTerminated:
		return 0, nil, errf(http.StatusConflict, "conflict", "server %s is terminated; it has no console", s.ID)
	default:
		return 0, nil, errf(http.StatusConflict, "conflict", "server %s is %s; its console is available while it runs", s.ID, s.Status)
	}
	if deps.Console == nil {
		return 0, nil, errf(http.StatusServiceUnavailable, "console_unavailable", "the console is unavailable on this coordinator right now; retry shortly")
	}
	exp := rq.now.Add(ConsoleTTL)
	base, tok, err := deps.Console(consoletoken.Claims{ID: consoletoken.NewID(), Node: s.NodeID, Server: s.ID, VM: s.VMName, Expires: exp.UnixMilli()})
	switch {
	case errors.Is(err, ErrNodeOffline):
		return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "node_offline", msg: "the server's host is not reachable right now; retry shortly", cause: err}
	case errors.Is(err, ErrNoConsole):
		return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "console_unavailable", msg: "the server's host does not serve a console; ask your provider", cause: err}
	case err != nil:
		return 0, nil, err
	}
	page, ws := consoleURLs(base, tok)
	return http.StatusCreated, api.ServerConsole{URL: page, WebSocketURL: ws, Protocol: "vnc", ExpiresAt: time.UnixMilli(exp.UnixMilli()).UTC()}, nil
}

// consoleURLs builds the noVNC page URL and the WebSocket URL on an agent's
// console base URL. noVNC takes the WebSocket path (with the token) from its
// own query string and connects to the page's host.
func consoleURLs(base, tok string) (page, ws string) {
	base = strings.TrimRight(base, "/")
	wsPath := strings.TrimPrefix(consolePath, "/") + "?token=" + url.QueryEscape(tok)
	q := url.Values{"autoconnect": {"true"}, "reconnect": {"false"}, "resize": {"scale"}, "path": {wsPath}}
	page = base + "/vnc.html?" + q.Encode()
	ws = base + consolePath + "?token=" + url.QueryEscape(tok)
	if rest, ok := strings.CutPrefix(ws, "https://"); ok {
		ws = "wss://" + rest
	} else if rest, ok := strings.CutPrefix(ws, "http://"); ok {
		ws = "ws://" + rest
	}
	return page, ws
}
