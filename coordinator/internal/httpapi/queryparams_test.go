package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// TestUnknownQueryParameters: a query parameter the operation does not declare
// in /openapi.json, one given twice or a malformed query is a 400 naming it,
// and the declared ones still work. Before, every one of these was a 200 that
// listed all the tickets (or created one), so a client believed a filter, a
// page size or an option that was never applied.
func TestUnknownQueryParameters(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeTicketsRead, api.ScopeTicketsWrite, api.ScopeServersRead, api.ScopeAccountRead)
	for i := 0; i < 3; i++ {
		if r := s.call(key, "POST", "/v1/tickets", `{"subject":"s","message":"m"}`); r.status != 201 {
			t.Fatalf("create ticket: %d %s", r.status, r.body)
		}
	}
	bad := []struct{ method, path, want string }{
		{"GET", "/v1/tickets?status=open", `unknown query parameter "status": GET /v1/tickets takes consistency, cursor, limit, page`},
		{"GET", "/v1/tickets?Limit=1", `unknown query parameter "Limit": query parameter names are case-sensitive: did you mean "limit"?`},
		{"GET", "/v1/tickets?limit=1&limit=2", `query parameter "limit" given more than once`},
		{"GET", "/v1/tickets?limit=1&%zz=1", `the query string is malformed`},
		{"GET", "/v1/tickets?limit=1;page=2", `the query string is malformed`},
		{"GET", "/v1/account?fields=id", `unknown query parameter "fields": GET /v1/account takes consistency`},
		{"POST", "/v1/tickets?priority=high", `unknown query parameter "priority": POST /v1/tickets takes no query parameters`},
		{"GET", "/v1/servers/ips?=1", `unknown query parameter ""`},
	}
	for _, tc := range bad {
		r := s.call(key, tc.method, tc.path, `{"subject":"q","message":"m"}`)
		if r.status != 400 || r.code() != "invalid_query" || !strings.Contains(r.msg(), tc.want) {
			t.Errorf("%s %s: %d %s, want 400 invalid_query containing %s", tc.method, tc.path, r.status, r.body, tc.want)
		}
	}
	// Nothing was created by the refused POST.
	r := s.call(key, "GET", "/v1/tickets?limit=200", "")
	if d, _ := r.m["data"].([]any); r.status != 200 || len(d) != 3 {
		t.Fatalf("tickets after the refusals: %d %s, want the 3 created", r.status, r.body)
	}
	// The declared parameters still work, and a key without the scope is told
	// so before its query is looked at.
	r = s.call(key, "GET", "/v1/tickets?limit=2&page=2&consistency=linearizable", "")
	if d, _ := r.m["data"].([]any); r.status != 200 || len(d) != 1 {
		t.Errorf("limit=2&page=2: %d %s, want the third ticket", r.status, r.body)
	}
	if r := s.call(key, "GET", "/v1/hosting?status=x", ""); r.status != 403 {
		t.Errorf("a key without hosting:read: %d %s, want 403", r.status, r.body)
	}
	if r := s.call("", "GET", "/v1/tickets?status=x", ""); r.status != 401 {
		t.Errorf("no key: %d %s, want 401", r.status, r.body)
	}
}

// TestEveryRouteHasItsQueryParameters: the table the check uses is built
// from the served document, so every route found its operation (a route
// without one would refuse every query).
// Every brand's: its routes and document are renamed alike.
func TestEveryRouteHasItsQueryParameters(t *testing.T) {
	routes := (&API{}).allRoutes()
	for _, name := range brand.Names() {
		b := brand.MustGet(name)
		doc, err := BrandOpenAPI(b, OpenAPI)
		if err != nil {
			t.Fatal(err)
		}
		params, err := queryParamsByOperation(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range BrandRoutes(b, routes) {
			if _, ok := params[rt.Method+" "+rt.Path]; !ok {
				t.Errorf("%s: %s %s has no operation in /openapi.json", name, rt.Method, rt.Path)
			}
		}
		stats := BrandRoutes(b, []Route{{Method: "GET", Path: "/v1/servers/{id}/stats"}})[0]
		if got := params[stats.Method+" "+stats.Path]; strings.Join(got, ",") != "consistency,interval,stream" {
			t.Errorf("%s: %s %s takes %v", name, stats.Method, stats.Path, got)
		}
	}
}

// TestQueryParamsAsKinOpenAPIReadsThem: the table the query check uses,
// read with encoding/json (loadQueryParams), is the one kin-openapi's loaded
// document gives (each operation's and its path item's query parameters,
// $refs resolved), for every brand's served document: the two readers do
// not disagree on any operation.
func TestQueryParamsAsKinOpenAPIReadsThem(t *testing.T) {
	for _, name := range brand.Names() {
		doc, err := BrandOpenAPI(brand.MustGet(name), OpenAPI)
		if err != nil {
			t.Fatal(err)
		}
		got, err := loadQueryParams(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := loadDoc(t, doc)
		names := func(ps openapi3.Parameters) []string {
			var out []string
			for _, p := range ps {
				if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
					out = append(out, p.Value.Name)
				}
			}
			return out
		}
		want := map[string][]string{}
		for path, item := range d.Paths.Map() {
			for method, op := range item.Operations() {
				all := append(names(item.Parameters), names(op.Parameters)...)
				slices.Sort(all)
				want[method+" /v1"+path] = slices.Compact(all)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d operations, kin-openapi reads %d", name, len(got), len(want))
		}
		withQuery := 0
		for op, w := range want {
			g, ok := got[op]
			if !ok || !slices.Equal(g, w) {
				t.Errorf("%s: %s takes %v (found %v), kin-openapi reads %v", name, op, g, ok, w)
			}
			if len(w) > 0 {
				withQuery++
			}
		}
		if withQuery < 10 {
			t.Errorf("%s: only %d operations take query parameters", name, withQuery)
		}
	}
}

// TestQueryParamsRefusesAnOtherRef: a parameter $ref the reader does not
// resolve (not one of components.parameters) fails the start (New panics:
// the embedded document is checked by the test above), rather than leaving
// the operation's parameter out and refusing it.
func TestQueryParamsRefusesAnOtherRef(t *testing.T) {
	for _, doc := range []string{
		`{"paths":{"/x":{"get":{"parameters":[{"$ref":"#/components/parameters/Nope"}]}}},"components":{"parameters":{}}}`,
		`{"paths":{"/x":{"parameters":[{"$ref":"other.json#/P"}],"get":{}}}}`,
	} {
		if got, err := loadQueryParams([]byte(doc)); err == nil {
			t.Errorf("%s: %v, want an error", doc, got)
		}
	}
	got, err := loadQueryParams([]byte(`{"paths":{"/x":{"parameters":[{"$ref":"#/components/parameters/P"}],` +
		`"get":{"parameters":[{"name":"b","in":"query"},{"name":"id","in":"path"}]},"post":{}}},` +
		`"components":{"parameters":{"P":{"name":"a","in":"query"}}}}`))
	if err != nil || !slices.Equal(got["GET /v1/x"], []string{"a", "b"}) || !slices.Equal(got["POST /v1/x"], []string{"a"}) || len(got) != 2 {
		t.Errorf("got %v, %v; want GET [a b] and POST [a]", got, err)
	}
}

// TestEveryGETTakesConsistency: readGate honours ?consistency= on every
// authenticated GET (README "Read consistency"), so the query check must let
// it through on each of them: an operation whose document forgot to declare
// it answered ?consistency=stale with a 400 invalid_query (and a follower's
// forwarded ?consistency=linearizable too).
func TestEveryGETTakesConsistency(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.AllScopes...)
	n := 0
	for _, rt := range s.a.Routes() {
		if rt.Method != "GET" || rt.Public {
			continue
		}
		n++
		path := rt.Path
		for strings.Contains(path, "{") {
			i, j := strings.Index(path, "{"), strings.Index(path, "}")
			path = path[:i] + "x" + path[j+1:]
		}
		for _, c := range []string{"stale", "linearizable"} {
			if r := s.call(key, "GET", path+"?consistency="+c, ""); r.status == 400 {
				t.Errorf("GET %s?consistency=%s: %d %s", path, c, r.status, r.body)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d GET routes", n)
	}
}

// TestHEADReadsAsItsGET: net/http serves a HEAD with the GET's handler, so a
// HEAD answers the GET's headers (Content-Length, the rate-limit figures) and must read as the
// GET does. Before, ?consistency=stale on a HEAD was a 400 ("applies to GET
// requests only") and a HEAD without it skipped the leader's read barrier (no
// X-Hostplane-Read-Consistency: linearizable). HEAD is not in openapi.json, so
// this goes to the server directly rather than through the validating client.
func TestHEADReadsAsItsGET(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.AllScopes...)
	for _, c := range []struct{ query, want string }{
		{"", "linearizable"},
		{"?consistency=linearizable", "linearizable"},
		{"?consistency=stale", "stale"},
	} {
		for _, path := range []string{"/v1/account", "/v1/tickets"} {
			req, err := http.NewRequest("HEAD", s.srv.URL+path+c.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || res.Header.Get(headerReadConsistency) != c.want {
				t.Errorf("HEAD %s%s: %d, %s %q, want 200 and %q", path, c.query, res.StatusCode,
					headerReadConsistency, res.Header.Get(headerReadConsistency), c.want)
			}
		}
	}
}

// TestPagingDocumented: ?page= and ?limit= take what the document's Page and
// Limit parameters say, no more and no less. Page said minimum 1 and nothing
// more while the server refused above 1,000,000 saying "must be a positive
// integer", which 99999999 is.
func TestPagingDocumented(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	for name, values := range map[string][]int{"page": {0, 1, 2, 1_000_000, 1_000_001, 99_999_999}, "limit": {0, 1, 50, 200, 201}} {
		schema := doc.Components.Parameters[strings.ToUpper(name[:1])+name[1:]].Value.Schema.Value
		for _, n := range values {
			r := httptest.NewRequest("GET", "/v1/tickets?"+name+"="+strconv.Itoa(n), nil)
			_, _, err := paging(r)
			documented := schema.VisitJSON(float64(n)) == nil
			if (err == nil) != documented {
				t.Errorf("?%s=%d: server says %v, document valid=%v", name, n, err, documented)
			}
			if err != nil && !strings.Contains(err.Error(), "from 1 to ") {
				t.Errorf("?%s=%d: %v, want the range named", name, n, err)
			}
		}
	}
}

// TestOpenAPIHasNoDuplicateMembers: /openapi.json names no member twice in
// one object, for every brand. Two operations did: getCustomDomain had two
// "parameters" lists (the path id, and the Consistency 2039dc2 added), so
// what a client read depended on its JSON parser (most keep the last: no
// ?consistency=, or the first: no id), and the query check read it one way
// for one brand and the other for the other; getAction had two
// "description"s. Found replacing the hand-written parameter reader with
// kin-openapi's loader, which read the other list.
func TestOpenAPIHasNoDuplicateMembers(t *testing.T) {
	for _, name := range brand.Names() {
		doc, err := BrandOpenAPI(brand.MustGet(name), OpenAPI)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []struct {
			which string
			doc   []byte
		}{{"embedded", OpenAPI}, {"served", doc}} {
			dec := json.NewDecoder(bytes.NewReader(d.doc))
			type obj struct {
				seen   map[string]bool
				keyNow bool
			}
			var stack []*obj
			var path []string
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s %s: %v", name, d.which, err)
				}
				top := (*obj)(nil)
				if len(stack) > 0 {
					top = stack[len(stack)-1]
				}
				switch tok {
				case json.Delim('{'):
					stack = append(stack, &obj{seen: map[string]bool{}, keyNow: true})
					path = append(path, "")
					continue
				case json.Delim('['):
					stack = append(stack, nil)
					path = append(path, "[]")
					continue
				case json.Delim('}'), json.Delim(']'):
					stack, path = stack[:len(stack)-1], path[:len(path)-1]
					if len(stack) > 0 && stack[len(stack)-1] != nil {
						stack[len(stack)-1].keyNow = true
					}
					continue
				}
				if top != nil && top.keyNow {
					k := tok.(string)
					if top.seen[k] {
						t.Errorf("%s %s: member %q twice in %s", name, d.which, k, strings.Join(path[:len(path)-1], " > "))
					}
					top.seen[k], top.keyNow = true, false
					path[len(path)-1] = k
					continue
				}
				if top != nil {
					top.keyNow = true
				}
			}
		}
	}
}

// TestEveryOperationDocuments400: every operation can answer 400 (an
// undeclared query parameter is one on each since d985afd; a no-body POST
// refuses a body that is not {}), so each lists it. Fifteen did not:
// redeliverWebhook's 400 for a body of null or [] failed the validating
// client of tests/audit TestOrdersOutsideIn ("status is not supported"), and
// GET /v1/servers/{id}?x=1 answered a status its document did not have.
func TestEveryOperationDocuments400(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Responses.Value("400") == nil {
				t.Errorf("%s /v1%s (%s) does not document 400", method, path, op.OperationID)
			}
		}
	}
}
