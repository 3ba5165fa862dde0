package httpapi

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestOpenAPIUnderV1: GET /v1/openapi.json (a client that appends the
// document's name to its /v1 base URL) answers the document of GET
// /openapi.json, the same bytes, counted and with X-RateLimit-* as that one
// is: against the client address's budget without a key (one budget for
// both paths, a 429 past it), against the key with a valid one.
func TestOpenAPIUnderV1(t *testing.T) {
	w := newWHAPI(t)
	const budget, keyLimit = 4, 100
	w.a.cfg.IPRateLimit = budget
	_, plain := w.addKey(w.newAccount(), fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}, RateLimitPerMin: keyLimit})
	figures := func(r *http.Response) string {
		return r.Header.Get("X-RateLimit-Limit") + "/" + r.Header.Get("X-RateLimit-Remaining")
	}
	root, doc := w.rawGet("/openapi.json", "")
	if root.StatusCode != 200 || len(doc) == 0 || figures(root) != "4/3" {
		t.Fatalf("GET /openapi.json: %d, %d bytes, %q", root.StatusCode, len(doc), figures(root))
	}
	for i, want := range []string{"4/2", "4/1", "4/0"} {
		r, body := w.rawGet("/v1/openapi.json", "")
		if r.StatusCode != 200 || !bytes.Equal(body, doc) || r.Header.Get("Content-Type") != root.Header.Get("Content-Type") || figures(r) != want || r.Header.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("GET /v1/openapi.json #%d without a key: %d %s, %d bytes (the document: %v), X-RateLimit-Limit/-Remaining %q, want 200, the document and the address's %s",
				i+1, r.StatusCode, r.Header.Get("Content-Type"), len(body), bytes.Equal(body, doc), figures(r), want)
		}
	}
	for _, p := range []string{"/v1/openapi.json", "/openapi.json"} {
		if r, body := w.rawGet(p, ""); r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || figures(r) != "4/0" {
			t.Errorf("GET %s past the address's budget: %d %.100s, Retry-After %q, %q; want 429 and 4/0", p, r.StatusCode, body, r.Header.Get("Retry-After"), figures(r))
		}
	}
	if r, body := w.rawGet("/v1/openapi.json", plain); r.StatusCode != 200 || !bytes.Equal(body, doc) || figures(r) != "100/99" {
		t.Errorf("GET /v1/openapi.json with a valid key: %d, the document %v, %q; want 200, the document and the key's 100/99", r.StatusCode, bytes.Equal(body, doc), figures(r))
	}
}
