package httpapi

import "net/http"

// RouteHandlers are the public routes' handlers, by "METHOD /v1/path", as
// the public listener runs each once its mux has matched the request: the
// response's request id and security headers, the route's metrics, the read
// gate (forwarding to the leader, the read barrier), authentication, rate
// limit, IP allow-list, scope, idempotency, the handler and the usage record.
// They are for requests made in this process for a known route (the MCP
// server's tool calls), which then skip the listener's routing; such a
// request carries the route's path values (SetPathValue) as the mux would
// set them.
func (a *API) RouteHandlers() map[string]http.Handler {
	out := make(map[string]http.Handler, len(a.routes))
	for _, rt := range a.routes {
		pattern := rt.Method + " " + rt.Path
		h := a.wrap(rt)
		out[pattern] = secureHeaders(a.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Pattern = pattern // what the mux sets: the route's metrics label
			h.ServeHTTP(w, r)
		})))
	}
	return out
}
