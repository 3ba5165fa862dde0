package httpapi

import "net/http"

// RouteHandlers are the public routes' handlers, by "METHOD /v1/path", as
// the public listener runs each once its mux has matched the request: the
// response's request id and security headers, the route's metrics, the read
// gate (forwarding to the leader, the read barrier), authentication, rate
// limit, IP allow-list, scope, idempotency, the handler and the usage record.
// They are for requests made in this process for a known route (the MCP
// server's tool calls), which then skip the listener's routing among all
// routes: each handler is a mux of its one route, which sets the request's
// pattern and path values as the listener's mux does (a request whose path
// is not the route's is a 404).
func (a *API) RouteHandlers() map[string]http.Handler {
	out := make(map[string]http.Handler, len(a.routes))
	for _, rt := range a.routes {
		pattern := rt.Method + " " + rt.Path
		mux := http.NewServeMux()
		mux.Handle(pattern, a.wrap(rt))
		out[pattern] = secureHeaders(a.instrument(mux))
	}
	return out
}
