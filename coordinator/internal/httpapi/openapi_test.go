package httpapi

import (
	"sort"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes fails when a route is missing from /openapi.json, when
// the document lists an operation the server does not serve, or when the scopes
// disagree.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi version %q, want 3.0.3", doc.OpenAPI)
	}
	a := &API{}
	a.routes = a.allRoutes()
	served := map[string]string{}
	public := map[string]bool{}
	for _, rt := range a.routes {
		served[rt.Method+" "+strings.TrimPrefix(rt.Path, "/v1")] = rt.Scope
		public[rt.Method+" "+strings.TrimPrefix(rt.Path, "/v1")] = rt.Public
		if rt.Public != (rt.Scope == "") {
			t.Errorf("%s %s: a route has a scope or is public (Public %v, Scope %q)", rt.Method, rt.Path, rt.Public, rt.Scope)
		}
	}
	documented := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-scope"].(string)
			documented[method+" "+path] = scope
			switch {
			case public[method+" "+path]:
				// A route served without a key says so: an empty security list.
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s %s: served without a key, but the document does not say security: []", method, path)
				}
			case op.Security == nil || len(*op.Security) == 0:
				t.Errorf("%s %s: no security requirement", method, path)
			}
		}
	}
	var problems []string
	for k, scope := range served {
		ds, ok := documented[k]
		switch {
		case !ok:
			problems = append(problems, "served but not documented: "+k)
		case ds != scope:
			problems = append(problems, "scope differs for "+k+": served "+scope+", documented "+ds)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			problems = append(problems, "documented but not served: "+k)
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestOpenAPIDeclaresBodyRefusals: every POST, PUT and PATCH has its body read
// by the route wrapper (readBody), which answers 408 (a stalled body), 413
// (over MaxBodyBytes) and 415 (not JSON) before the handler runs, so each such
// operation declares the three (a client generated from the document has no
// type for an answer its operation does not list). Nine did not.
func TestOpenAPIDeclaresBodyRefusals(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if method != "POST" && method != "PUT" && method != "PATCH" {
				continue
			}
			for _, status := range []int{408, 413, 415} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s %s: reads a body but does not declare %d", method, path, status)
				}
			}
		}
	}
}
