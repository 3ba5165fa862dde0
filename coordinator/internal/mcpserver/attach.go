package mcpserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
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
//
// The tools are built at the first request to /mcp, not here: building them
// loads the OpenAPI document with kin-openapi (≈ 150 ms of CPU and as much
// again in garbage collection), a fifth of a coordinator's start, which the
// many coordinators that never serve /mcp (most of the suite's) paid for
// nothing. The document is embedded and the brands built in, so the build
// cannot fail in one process and not another: TestToolsOfEveryBrand builds
// them for every brand. Should it fail, /mcp answers 500 saying why.
func Attach(a *httpapi.API, admin http.Handler, opts HTTPOptions) (http.Handler, error) {
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
	a.Mount("/mcp", builtOnce(func() (http.Handler, error) {
		tools, err := Generate(a.OpenAPI(), FromRoutes(a.Routes()))
		if err != nil {
			return nil, err
		}
		return NewHTTPHandler(tools, a, HandlerDispatcher{Handler: late, Routes: a.RouteHandlers()}, opts), nil
	}))
	public = a.Handler(admin)
	return public, nil
}

// builtOnce serves through the handler build makes at the first request. If
// the build failed, every request is a 500 saying why, with the request id
// the public listener gave the request (its X-Request-Id, already set on
// the answer's header), as every other error of the API carries.
func builtOnce(build func() (http.Handler, error)) http.Handler {
	handler := sync.OnceValues(build)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, err := handler()
		if err != nil {
			e := api.NewError(http.StatusInternalServerError, "internal_error", "the MCP tools could not be built: "+err.Error())
			e.RequestID = w.Header().Get(requestIDHeader)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(e)
			return
		}
		h.ServeHTTP(w, r)
	})
}
