package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestOpenAPIDeclaresEarlyRefusals: the listeners' first wrapper
// (headerLimit) answers an over-long target (414) or request line and
// headers (431) on every route, before the route is looked up, so every
// operation declares both, as it declares 400, 401, 429 and 500 (a client
// generated from the document has no type for an answer its operation does
// not list). And the real answers, through a listener, to an over-long
// request to each documented operation match what the document says of them.
func TestOpenAPIDeclaresEarlyRefusals(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, status := range []int{http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s %s: does not declare %d", method, path, status)
				}
			}
		}
	}
	if t.Failed() {
		return
	}

	w := newWHAPI(t)
	to := shortTimeouts
	to.MaxHeaderBytes = 16 << 10
	base := serveWith(t, to, w.a.Handler(nil))
	v := framework.NewValidatingTransport(t, OpenAPI, base)
	param := regexp.MustCompile(`\{[^}]+\}`)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			p := "/v1" + param.ReplaceAllString(path, "x1")
			for _, c := range []struct {
				target string
				header string
				want   int
			}{
				{p + "?pad=" + strings.Repeat("q", maxTargetBytes), "", http.StatusRequestURITooLong},
				{p, strings.Repeat("h", 20<<10), http.StatusRequestHeaderFieldsTooLarge},
			} {
				req, _ := http.NewRequest(method, base+c.target, nil)
				if c.header != "" {
					req.Header.Set("X-Big", c.header)
				}
				resp, err := v.RoundTrip(req) // checks the answer against the document
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Errorf("%s %s (%d bytes of target, %d of header): %s, want %d", method, path, len(c.target), len(c.header), resp.Status, c.want)
				}
				if op.Responses.Status(c.want).Value == nil {
					t.Errorf("%s %s: %d declared without a response", method, path, c.want)
				} else if h := op.Responses.Status(c.want).Value.Headers; h["X-RateLimit-Limit"] != nil || h["X-Request-Id"] == nil {
					t.Errorf("%s %s: %d documents the rate-limit headers, or no X-Request-Id: it is answered before the rate limits, with an id", method, path, c.want)
				}
			}
		}
	}
}
