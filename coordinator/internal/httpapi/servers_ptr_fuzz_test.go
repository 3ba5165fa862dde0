package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

var ptrSeeds = []string{
	`{"hostname":"mail.example.com"}`, `{"hostname":"mail.example.com."}`, `{"hostname":"a.b"}`, `{"hostname":"localhost"}`,
	`{"hostname":"Mail.Example.com"}`, `{"hostname":"mail..example.com"}`, `{"hostname":"-a.example.com"}`, `{"hostname":"a-.example.com"}`,
	`{"hostname":"."}`, `{"hostname":".."}`, `{"hostname":"a.b.."}`, `{"hostname":"bücher.example.com"}`, `{"hostname":"a_b.example.com"}`,
	`{"hostname":"xn--bcher-kva.example.com"}`, `{"hostname":"1.2.3.4"}`, `{"hostname":"mail.123"}`, `{"hostname":"127.1."}`, `{"hostname":"a\u0000.example.com"}`,
	`{"hostname":"` + strings.Repeat("a", 63) + `.com"}`, `{"hostname":"` + strings.Repeat("a", 64) + `.com"}`,
	`{"hostname":"` + strings.Repeat("a.", 126) + `b"}`, `{"hostname":"` + strings.Repeat("a.", 127) + `b"}`,
	`{"hostname":"` + strings.Repeat("a.", 126) + `b."}`, `{"hostname":"MAIL.Example.COM."}`, `{"hostname":"MAIL.Example.COM.."}`, `{"hostname":42}`, `{"hostname":null}`, `{"hostname":"a.com","ttl":1}`,
}

// otherSpelling is a canonical (ASCII, lower-case) host name in capitals
// with the root's trailing dot: the host-name input rule takes it as the
// same name (validate.DomainInput).
func otherSpelling(h string) string { return strings.ToUpper(h) + "." }

func FuzzDecodePTR(f *testing.F) {
	fuzzDecoder(f, append(ptrSeeds, serverSeeds...), DecodePTR, func(t *testing.T, req api.PTRRequest) {
		h := req.Hostname
		if len(h) < 3 || len(h) > maxDNSName || strings.HasSuffix(h, ".") {
			t.Fatalf("accepted %q", h)
		}
		labels := strings.Split(h, ".")
		if len(labels) < 2 {
			t.Fatalf("accepted a single label %q", h)
		}
		if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
			t.Fatalf("accepted %q, whose last label is all digits", h)
		}
		for _, l := range labels {
			if l == "" || len(l) > maxDNSLabel || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") ||
				strings.TrimLeft(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				t.Fatalf("accepted label %q of %q", l, h)
			}
		}
		// What passes is stable: decoding it again gives the same name.
		again, err := DecodePTR([]byte(`{"hostname":"` + h + `"}`))
		if err != nil || again.Hostname != h {
			t.Fatalf("%q does not decode to itself: %q %v", h, again.Hostname, err)
		}
		// The host-name input rule: in capitals with a trailing dot it is
		// the same name.
		if other, err := DecodePTR([]byte(`{"hostname":"` + otherSpelling(h) + `"}`)); err != nil || other.Hostname != h {
			t.Fatalf("%q spelled %q decodes to %q %v", h, otherSpelling(h), other.Hostname, err)
		}
	})
}
