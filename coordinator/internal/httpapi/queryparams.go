package httpapi

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hostplane/hostplane/internal/memo"
	"github.com/hostplane/hostplane/internal/openapidoc"
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
// operation's and its path item's, $refs to components resolved by
// kin-openapi's loader, as the MCP server reads the same document: one
// load, openapidoc's, serves both).
// The result is computed once per document content and shared (read only) by
// every API built from it: a process runs one API, but tests build one per
// test, and the load took ≈ 0.4–1 s under -race.
func queryParamsByOperation(doc []byte) (map[string][]string, error) {
	return queryParamsCache.Get(sha256.Sum256(doc), func() (map[string][]string, error) {
		return loadQueryParams(doc)
	})
}

var queryParamsCache memo.Cache[[sha256.Size]byte, map[string][]string] // by the document's sha256

func loadQueryParams(doc []byte) (map[string][]string, error) {
	d, err := openapidoc.Load(doc) // shared with the MCP server's tools
	if err != nil {
		return nil, err
	}
	names := func(ps openapi3.Parameters) []string {
		var out []string
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				out = append(out, p.Value.Name)
			}
		}
		return out
	}
	out := map[string][]string{}
	for path, item := range d.Paths.Map() {
		shared := names(item.Parameters)
		for method, op := range item.Operations() {
			all := append(slices.Clone(shared), names(op.Parameters)...)
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
