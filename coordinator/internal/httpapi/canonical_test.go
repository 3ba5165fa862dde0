package httpapi

import "testing"

// TestCanonicalPath: the paths the mux would redirect (a doubled slash, a "."
// or ".." segment) are not canonical; a trailing slash and encoded slashes or
// dots are left as they are, as the mux leaves them.
func TestCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/tickets": true, "/v1/tickets/": true, "/v1/servers/%2e%2e": true, "/v1/servers/..%2fbilling": true,
		"/v1//tickets": false, "/v1/./account": false, "/v1/tickets/../account": false, "/v1/tickets/.": false, "/v1/tickets//": false,
	} {
		if got := canonicalPath(p); got != want {
			t.Errorf("canonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}
