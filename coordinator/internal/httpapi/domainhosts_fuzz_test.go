package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/validate"
)

// FuzzDomainHostName drives the {name} path value of PUT and DELETE
// /v1/domains/{id}/hosts/{name} as the API routes it: a raw request path
// (percent-escapes and all) through a ServeMux holding the routes' own
// patterns, then hostName. A name it accepts is the canonical spelling of
// the decoded path value (DomainInput's: A-labels for a Unicode name; of an
// ASCII one only case and one trailing dot folded),
// strictly inside the domain (what the command's apply checks), and
// validate.Domain reads it back unchanged; anything else is a 400
// invalid_field naming "name". Never a panic.
func FuzzDomainHostName(f *testing.F) {
	for _, s := range []string{"ns1.glue.test", "NS1.Glue.Test.", "ns1.glue.test..", "glue.test", "ns1.other.test", "a.b.ns1.glue.test",
		"ns1%2Eglue.test", "ns1%2eglue%2etest", "ns%31.glue.test", "ns1.glue.test%00", "ns1.glue.test%2F", "%2e%2e", "..", ".",
		"ns1.xn--glue.test", "xn--bcher-kva.glue.test", "bücher.glue.test", "b%C3%BCcher.glue.test", "\u212a.glue.test",
		"*.glue.test", "ns1..glue.test", "-ns.glue.test", "ns1.glue.test%20", "%ff.glue.test", "ns1.glue.test?x=1", "ns1.glue.test#f",
		strings.Repeat("a", 64) + ".glue.test", strings.Repeat("a.", 125) + "glue.test", ""} {
		f.Add(s)
	}
	const domain = "glue.test"
	mux := http.NewServeMux()
	var routed int
	for _, rt := range (&API{}).domainRegRoutes() {
		if !strings.HasSuffix(rt.Path, "/hosts/{name}") {
			continue
		}
		routed++
		mux.HandleFunc(rt.Method+" "+rt.Path, func(w http.ResponseWriter, r *http.Request) {
			name, err := hostName(&request{Request: r}, domain)
			if err != nil {
				w.Header().Set("X-Refusal", err.Error())
				var he *httpError
				if !errors.As(err, &he) || he.status != 400 || he.code != "invalid_field" || !strings.HasPrefix(he.msg, `field "name" `) {
					w.WriteHeader(599)
					return
				}
				w.WriteHeader(400)
				return
			}
			_, _ = w.Write([]byte(name))
		})
	}
	if routed != 2 {
		f.Fatalf("%d host routes, want PUT and DELETE", routed)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		for _, method := range []string{"PUT", "DELETE"} {
			req, err := http.NewRequest(method, "http://api.test/v1/domains/dom_1/hosts/"+seg, nil)
			if err != nil {
				return // not a request line a client can send
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			switch w.Code {
			case 400:
				continue
			case 599:
				t.Fatalf("%s %q: refused as %q, want a 400 naming \"name\"", method, seg, w.Header().Get("X-Refusal"))
			case 200:
			default:
				// Not this route (a path the mux cleans and redirects, a
				// segment that holds no name, ...): never reaches hostName.
				continue
			}
			got := w.Body.String()
			raw, err := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/v1/domains/dom_1/hosts/"))
			if err != nil {
				t.Fatalf("%q accepted as %q but its path does not unescape: %v", seg, got, err)
			}
			want, err := validate.DomainInput(raw)
			if err != nil || want != got {
				t.Fatalf("%q (path value %q) accepted as %q; DomainInput gives %q, %v", seg, raw, got, want, err)
			}
			if again, err := validate.Domain(got); err != nil || again != got {
				t.Fatalf("%q accepted as %q, not canonical (%q, %v)", seg, got, again, err)
			}
			if !fsm.HostInside(got, domain) || len(got) > 253 {
				t.Fatalf("%q accepted as %q, which the command refuses (not strictly inside %s)", seg, got, domain)
			}
			if folded := strings.TrimSuffix(strings.ToLower(raw), "."); isASCII(raw) && folded != got {
				t.Fatalf("%q (ASCII path value %q) accepted as %q: more than case and one trailing dot folded", seg, raw, got)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
