package httpapi

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestOtherMethodsOnARoutePathAre405: every path of the route table, its {…}
// segments filled with an id that names nothing, called with a method the
// table does not list for that path, is a 405 method_not_allowed whose Allow
// is exactly the path's own methods (HEAD with GET). That includes a literal
// path a {id} sibling also matches (GET /v1/servers/quote beside GET
// /v1/servers/{id}), which the sibling answered before shadowLiterals: a 404
// "server not found", or a 405 whose Allow listed the sibling's methods. It
// is tests/audit TestProbe9EveryOtherMethodIs405 on the route table, in the
// unit tests.
func TestOtherMethodsOnARoutePathAre405(t *testing.T) {
	s := newSrvAPI(t)
	acc := s.newAccount()
	_, key := s.addKey(acc, fsm.KeyCreate{Scopes: api.AllScopes, RateLimitPerMin: 100_000})
	own := map[string][]string{} // path → the methods the table lists for it
	for _, rt := range s.a.routes {
		own[rt.Path] = append(own[rt.Path], rt.Method)
	}
	all := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	wildcard := regexp.MustCompile(`\{[^}]*\}`)
	literals := 0
	for p, methods := range own {
		var allow []string // in allowedMethods' order
		for _, m := range all {
			if slices.Contains(methods, m) || m == http.MethodHead && slices.Contains(methods, http.MethodGet) {
				allow = append(allow, m)
			}
		}
		if !strings.Contains(p, "{") {
			literals++
		}
		path := wildcard.ReplaceAllString(p, "x_00000000000000000000000000")
		for _, m := range all {
			if slices.Contains(allow, m) {
				continue
			}
			r := s.call(key, m, path, "")
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != strings.Join(allow, ", ") ||
				m != http.MethodHead && r.code() != "method_not_allowed" {
				t.Errorf("%s %s: %d Allow %q %.200s; want 405 method_not_allowed with Allow %q", m, path, r.status, r.header.Get("Allow"), r.body, strings.Join(allow, ", "))
			}
		}
	}
	if len(own) < 40 || literals < 10 {
		t.Fatalf("%d route paths, %d literal: the route table was not read", len(own), literals)
	}
}
