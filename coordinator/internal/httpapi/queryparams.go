package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hostplane/hostplane/internal/memo"
)

// Query parameters are checked against the operation's declaration in
// /openapi.json, as body members are against the request type (jsonmembers):
// a name the operation does not take, a name given twice or a query string
// that does not parse is a 400 invalid_query, before anything is read or
// changed. Ignored, `GET /v1/tickets?status=open` listed every ticket and
// `?Limit=5` fifty of them: a client believed a filter or a page size that
// was never applied (Stripe refuses unknown parameters for the same reason).
//
// A parameter the operation takes given with an empty value (?limit=,
// ?page=, ?cursor=, ?consistency=, ?status=) is as if it were not given: its
// default, or no filter; a required one is then missing. One rule for every
// parameter, so a client that fills a URL template or a form with a value it
// does not have gets the default: before, ?limit= and ?cursor= were the
// default but ?consistency= and the action list's empty filters a 400.

// queryParamsByOperation maps "METHOD /v1/path" (net/http pattern paths, as
// Route.Path) to the query parameter names doc declares for it (the
// operation's and its path item's, $refs to components/parameters resolved).
// The result is computed once per document content and shared (read only) by
// every API built from it: a process runs one API, but tests build one per
// test.
//
// It reads only what it needs with encoding/json (queryDoc), not through
// kin-openapi's loader: that load (≈ 130 ms of CPU, kin-openapi reads JSON
// through its YAML parser, and as much again in garbage collection) was
// about a fifth of a test coordinator's start, and every coordinator paid it
// although only /mcp needs the loaded document (mcpserver builds its tools
// at the first /mcp request). TestQueryParamsAsKinOpenAPIReadsThem checks
// that the table is the one kin-openapi's loaded document gives, for every
// brand's document.
func queryParamsByOperation(doc []byte) (map[string][]string, error) {
	return queryParamsCache.Get(sha256.Sum256(doc), func() (map[string][]string, error) {
		return loadQueryParams(doc)
	})
}

var queryParamsCache memo.Cache[[sha256.Size]byte, map[string][]string] // by the document's sha256

// queryDoc is what loadQueryParams reads of an OpenAPI 3.0 document: each
// path item's members (its parameters, and an operation under each method's
// lower-case name) and the parameters of components.
type queryDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]queryParam `json:"parameters"`
	} `json:"components"`
}

// queryParam is a parameter object, or a reference to one.
type queryParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

// queryMethods are the operations a path item holds (OpenAPI 3.0), by
// member name.
var queryMethods = map[string]string{
	"get": http.MethodGet, "put": http.MethodPut, "post": http.MethodPost, "delete": http.MethodDelete,
	"options": http.MethodOptions, "head": http.MethodHead, "patch": http.MethodPatch, "trace": http.MethodTrace,
}

const componentParameterRef = "#/components/parameters/"

func loadQueryParams(doc []byte) (map[string][]string, error) {
	var d queryDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	names := func(where string, raw json.RawMessage) ([]string, error) {
		var ps []queryParam
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, fmt.Errorf("%s: parameters: %w", where, err)
		}
		var out []string
		for _, p := range ps {
			if p.Ref != "" {
				c, ok := d.Components.Parameters[strings.TrimPrefix(p.Ref, componentParameterRef)]
				if !strings.HasPrefix(p.Ref, componentParameterRef) || !ok || c.Ref != "" {
					return nil, fmt.Errorf("%s: parameter $ref %q is not one of components.parameters", where, p.Ref)
				}
				p = c
			}
			if p.In == "query" {
				out = append(out, p.Name)
			}
		}
		return out, nil
	}
	out := map[string][]string{}
	for path, item := range d.Paths {
		var shared []string
		if raw, ok := item["parameters"]; ok {
			var err error
			if shared, err = names(path, raw); err != nil {
				return nil, err
			}
		}
		for member, raw := range item {
			method, ok := queryMethods[member]
			if !ok {
				continue
			}
			var op struct {
				Parameters json.RawMessage `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			all := slices.Clone(shared)
			if op.Parameters != nil {
				own, err := names(method+" "+path, op.Parameters)
				if err != nil {
					return nil, err
				}
				all = append(all, own...)
			}
			slices.Sort(all)
			out[method+" /v1"+path] = slices.Compact(all)
		}
	}
	return out, nil
}

// checkQuery refuses a query string the operation does not take: one that
// does not parse, a parameter it does not declare (allowed, sorted) or one
// given twice.
func checkQuery(r *http.Request, allowed []string) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "the query string is malformed: " + err.Error()}
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the same error for the same query, whatever map order
	for _, name := range names {
		if _, ok := slices.BinarySearch(allowed, name); !ok {
			return unknownQueryParam(r, name, allowed)
		}
		if len(q[name]) > 1 {
			return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameter " + strconv.Quote(name) + " given more than once"}
		}
	}
	return nil
}

func unknownQueryParam(r *http.Request, name string, allowed []string) error {
	msg := "unknown query parameter " + strconv.Quote(name)
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: msg + ": query parameter names are case-sensitive: did you mean " + strconv.Quote(a) + "?"}
		}
	}
	if len(allowed) == 0 {
		msg += ": " + r.Method + " " + r.URL.Path + " takes no query parameters"
	} else {
		msg += ": " + r.Method + " " + r.URL.Path + " takes " + strings.Join(allowed, ", ")
	}
	return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: msg}
}
