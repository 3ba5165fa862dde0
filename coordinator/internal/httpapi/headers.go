package httpapi

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/pkg/api"
)

// Secure gives every response of h (the admin socket's handler) the headers
// every API response carries; the public Handler has them already.
func Secure(h http.Handler) http.Handler { return secureHeaders(h) }

// secureHeaders gives every response, unrouted ones included, its X-Request-Id
// and X-Content-Type-Options: nosniff; API responses (/v1, admin) are private to
// an account and may carry a secret shown once (API keys, webhook secrets, root
// passwords), so they are Cache-Control: no-store.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r)
		if v := r.Header[headerRequestID]; len(v) != 1 || v[0] != rid {
			r.Header.Set(headerRequestID, rid) // the handlers and the forwarder reuse it
		}
		h := w.Header()
		h[headerRequestID] = []string{rid}
		h["X-Content-Type-Options"] = nosniff
		if p := r.URL.Path; strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/internal/") {
			h["Cache-Control"] = noStore
		}
		next.ServeHTTP(w, r)
	})
}

// nosniff and noStore are secureHeaders' constant header values, shared by
// every response (as h.Set would set them, without a slice per response): a
// header's value is replaced or appended to, never written in place, and
// each has no spare capacity, so an append copies it.
var (
	nosniff = []string{"nosniff"}
	noStore = []string{"no-store"}
)

// probeMethods are the methods a 405's Allow can list.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods lists the methods mux serves on r's path (none: the path is
// unknown). A shadowed pattern (shadowLiterals) is no method served.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range probeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		h, pattern := mux.Handler(probe)
		if _, shadow := h.(shadowed); !shadow && pattern != "" && pattern != "/" {
			out = append(out, m)
			if m == http.MethodGet {
				out = append(out, http.MethodHead)
			}
		}
	}
	return out
}

// shadowed is the handler shadowLiterals registers: unrouted's, which
// allowedMethods does not count as a method the path is served with.
type shadowed http.HandlerFunc

func (s shadowed) ServeHTTP(w http.ResponseWriter, r *http.Request) { s(w, r) }

// shadowLiterals makes each route path whose literal segment a wildcard
// sibling also matches (/v1/domains/transfer and /v1/domains/{id},
// /v1/servers/quote and /v1/servers/{id}) answer the methods it is not
// served with as unrouted does, a 405 whose Allow lists the path's own
// methods, rather than through the sibling: GET /v1/domains/transfer was the
// domain route's 404 "domain not found", DELETE /v1/servers/quote a 403
// naming servers:destroy, and a 405 elsewhere on the path listed the
// sibling's methods in Allow. Call it once every route is registered.
func shadowLiterals(mux *http.ServeMux, routes []Route, unrouted http.HandlerFunc) {
	served := map[string][]string{} // path → its methods
	for _, rt := range routes {
		served[rt.Path] = append(served[rt.Path], rt.Method)
	}
	for p, methods := range served {
		u := &url.URL{Path: p}
		for _, m := range probeMethods {
			if slices.Contains(methods, m) {
				continue
			}
			if _, pattern := mux.Handler(&http.Request{Method: m, URL: u, Header: http.Header{}}); pattern != "" && pattern != "/" && pattern != m+" "+p {
				mux.Handle(m+" "+p, shadowed(unrouted))
			}
		}
	}
}

// canonicalV1 hands a /v1 path that is not in its canonical form (a doubled
// slash, a "." or ".." segment, before /v1 too) to unrouted, a JSON 404 counted against the
// caller like any other path no route serves, where the mux would answer a
// 307 text page without the X-RateLimit-* headers, which a client following
// it obeys by sending a POST again to the canonical path.
func canonicalV1(mux *http.ServeMux, unrouted http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect && v1Path(r.URL.Path) && !canonicalPath(r.URL.EscapedPath()) {
			unrouted(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// v1Path reports whether p is a /v1 path, as sent or as the mux cleans it
// (//v1/tickets, from a client's base URL with a trailing slash; /./v1/…).
func v1Path(p string) bool {
	return strings.HasPrefix(p, "/v1/") || strings.HasPrefix(path.Clean(p), "/v1/")
}

// canonicalPath reports whether p (a request's escaped path, as the mux
// cleans it) is as the mux's path cleaning leaves it: path.Clean's form, a
// trailing slash kept. An encoded slash or dot ("..%2f") is not cleaned: the
// route sees it as part of a segment.
func canonicalPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// unrouted answers what no route matched: 405 with Allow on a known path,
// else 404. A /v1 call with a key is counted against that key's rate limit
// (with its headers) like any other, so on a follower it goes to the leader;
// one without a valid key (none, an invalid one, or a key used from an
// address its allow-list does not hold) against its client address's budget
// on the coordinator that answers (limitUnkeyed), a 429 beyond it.
func (a *API) unrouted(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r)
		if v1Path(r.URL.Path) {
			if auth.FromRequest(r) != "" && !a.raft.IsLeader() {
				a.fwd.forward(w, r, rid)
				return
			}
			rq := &request{Request: r, w: w, id: rid, now: a.now().UTC(), clientIP: a.clientIP(r)}
			var err error
			if c, aerr := a.authenticate(rq); aerr == nil && auth.IPAllowed(c.cidrs, rq.clientIP) {
				err = a.rateLimit(rq, c)
			} else {
				// No valid key (or none): the address's budget here.
				err = a.limitUnkeyed(w, r)
			}
			if err != nil {
				ae, _ := toAPIError(err)
				writeError(w, rid, ae)
				return
			}
		}
		if allow := allowedMethods(mux, r); len(allow) > 0 && canonicalPath(r.URL.EscapedPath()) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, rid, api.NewError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", ")))
			return
		}
		writeError(w, rid, api.NewError(http.StatusNotFound, "route_not_found", "no such endpoint: "+r.Method+" "+r.URL.Path))
	}
}
