package mcpserver

import (
	"net/http"
	"net/url"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
)

// FromRoutes is the route table as operations.
func FromRoutes(routes []httpapi.Route) []Operation {
	ops := make([]Operation, 0, len(routes))
	for _, rt := range routes {
		ops = append(ops, Operation{Method: rt.Method, Path: rt.Path, Scope: rt.Scope, AltScope: rt.AltScope, Idempotent: rt.Idempotent,
			SpendsMoney: rt.SpendsMoney, Quote: rt.Quote})
	}
	return ops
}

// Attach mounts /mcp on a's public listener, with one tool per route of a's
// route table described by a.OpenAPI() (the brand's document), and returns the public handler
// (a.Handler(admin)) through which every tool call is dispatched.
func Attach(a *httpapi.API, admin http.Handler, opts HTTPOptions) (http.Handler, error) {
	tools, err := Generate(a.OpenAPI(), FromRoutes(a.Routes()))
	if err != nil {
		return nil, err
	}
	if opts.ResourceMetadataURL == "" {
		opts.ResourceMetadataURL = a.ResourceMetadataURL("/mcp") // under --public-url
	}
	if opts.ChallengeScopes == nil {
		// The default scopes (those of a default API key: every scope but
		// the destructive ones, orders:write and keys:write), so a user can
		// approve a client with a default key; a tool that needs more
		// answers the insufficient_scope challenge (step-up).
		opts.ChallengeScopes = a.Brand().DefaultScopes()
	}
	if opts.PublicHost == "" {
		if u, err := url.Parse(a.Issuer()); err == nil {
			opts.PublicHost = u.Host
		}
	}
	var public http.Handler
	late := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { public.ServeHTTP(w, r) })
	a.Mount("/mcp", NewHTTPHandler(tools, a, HandlerDispatcher{Handler: late, Routes: a.RouteHandlers()}, opts))
	public = a.Handler(admin)
	return public, nil
}
