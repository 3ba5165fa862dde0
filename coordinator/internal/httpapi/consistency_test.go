package httpapi

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStaleRequested(t *testing.T) {
	for _, c := range []struct {
		method, target string
		stale          bool
		bad            bool
	}{
		{"GET", "/v1/account", false, false},
		{"GET", "/v1/account?consistency=linearizable", false, false},
		{"GET", "/v1/account?consistency=stale", true, false},
		{"GET", "/v1/tickets?limit=5&consistency=stale", true, false},
		{"GET", "/v1/account?consistency=Stale", false, true},
		// Empty is the default, as every query parameter's empty value
		// (queryparams.go); it was a 400 while ?limit= was the default.
		{"GET", "/v1/account?consistency=", false, false},
		{"GET", "/v1/account?consistency=stale&consistency=stale", false, true},
		{"POST", "/v1/tickets?consistency=stale", false, true},
		{"POST", "/v1/tickets?consistency=linearizable", false, false},
		{"HEAD", "/v1/account?consistency=stale", true, false},
		{"HEAD", "/v1/account?consistency=linearizable", false, false},
		{"DELETE", "/v1/webhooks/x?consistency=stale", false, true},
	} {
		stale, err := staleRequested(httptest.NewRequest(c.method, c.target, nil))
		if stale != c.stale || (err != nil) != c.bad {
			t.Errorf("%s %s: stale=%v err=%v", c.method, c.target, stale, err)
		}
		var he *httpError
		// invalid_query, as every other query refusal (README).
		if err != nil && (!errors.As(err, &he) || he.status != 400 || he.code != "invalid_query" || !strings.Contains(he.msg, `"consistency"`)) {
			t.Errorf("%s %s: want a 400 invalid_query naming the parameter, got %v", c.method, c.target, err)
		}
	}
}

func FuzzStaleRequested(f *testing.F) {
	f.Add("GET", "consistency=stale")
	f.Add("POST", "consistency=linearizable&x=1")
	f.Add("GET", "consistency=%ZZ")
	f.Fuzz(func(t *testing.T, method, query string) {
		r := httptest.NewRequest("GET", "/v1/account", nil)
		r.Method = method
		r.URL.RawQuery = query
		stale, err := staleRequested(r)
		if stale && (err != nil || (method != "GET" && method != "HEAD")) {
			t.Fatalf("stale=%v err=%v for %s ?%s", stale, err, method, query)
		}
	})
}
