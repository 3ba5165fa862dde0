package validate

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/tabletest"
)

func TestHostInput(t *testing.T) {
	domains := map[string]string{
		"example.com":           "example.com",
		"example.com.":          "example.com",
		"Example.COM":           "example.com",
		"EXAMPLE.COM.":          "example.com",
		"Bücher.Example.":       "xn--bcher-kva.example",
		"XN--BCHER-KVA.example": "xn--bcher-kva.example",
	}
	tabletest.Accepts(t, "DomainInput", DomainInput, domains)
	tabletest.Accepts(t, "HostingDomainInput", HostingDomainInput, domains)
	tabletest.Accepts(t, "HostnameInput", HostnameInput, map[string]string{"Mail.Example.COM.": "mail.example.com", "mail.example.com": "mail.example.com", "MX1.": "mx1"})
	for in, says := range map[string]string{
		"example.com..": "more than one dot", "EXAMPLE.COM..": "more than one dot", ".": "only a dot", "..": "more than one dot",
		"": "empty", ".example.com.": "empty label", "bÜcher.example": "IDNA2008", "ÉCOLE.example": "IDNA2008",
		"example.com. ": "space", " example.com.": "space", "\u212aexample.com": "IDNA2008", "\u212a.example.com": "IDNA2008",
	} {
		_, err := DomainInput(in)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("DomainInput(%q) = %v; want an error saying %q", in, err, says)
		}
	}
	for _, in := range []string{"mail.example.com..", ".", "", "mail_1.example.com.", "bücher.example.", "\u212a.example.com", " mail.example.com", "mail.example.com ", "mail .example.com"} {
		if _, err := HostnameInput(in); err == nil {
			t.Errorf("HostnameInput(%q) accepted", in)
		}
	}
	if _, err := HostingDomainInput(strings.Repeat("a.", 118) + "com."); err == nil || !strings.Contains(err.Error(), "at most 235") {
		t.Errorf("HostingDomainInput of 239 characters: %v", err)
	}
}

// FuzzHostInput: the input rule takes everything the strict rules take,
// unchanged (no client that worked is broken), gives back the strict rules'
// canonical form (a fixed point of them), and takes a name in capitals
// with one trailing dot as that same name.
func FuzzHostInput(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.", "example.com..", ".", "", "bücher.example", "XN--BCHER-KVA.EXAMPLE.",
		"mail.example.com", "a..b", "127.0.0.1.", "ÉCOLE.fr", "İstanbul.tr", "*.example.com.", "a.b\n.",
		"\u212aexample.com", "\u212a.example.com", "example.com ", " example.com", "ex ample.com", "\u017fhop.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []struct {
			name         string
			input        func(string) (string, error)
			strict       func(string) (string, error)
			otherSpelled func(string) string
		}{
			{"Domain", DomainInput, Domain, nil},
			{"HostingDomain", HostingDomainInput, HostingDomain, nil},
			{"Hostname", HostnameInput, func(s string) (string, error) { return s, Hostname(s) }, nil},
		} {
			got, err := r.input(s)
			if want, serr := r.strict(s); serr == nil && (err != nil || got != want) {
				t.Fatalf("%sInput(%q) = %q, %v; the strict rule gives %q", r.name, s, got, err, want)
			}
			if err != nil {
				continue
			}
			if again, err := r.strict(got); err != nil || again != got {
				t.Fatalf("%sInput(%q) = %q, not canonical (%q, %v)", r.name, s, got, again, err)
			}
			// Only ASCII capitals and one trailing dot are folded: an ASCII
			// input is accepted as exactly its canonical spelling (a
			// non-ASCII character that Unicode lower-cases into ASCII, as
			// U+212A KELVIN SIGN into k, is never read as that letter), and
			// no accepted input holds a space.
			if isASCII(s) && got != CanonicalHost(s) {
				t.Fatalf("%sInput(%q) = %q, not its canonical spelling %q", r.name, s, got, CanonicalHost(s))
			}
			if !isASCII(s) && isASCII(strings.ToLower(s)) {
				t.Fatalf("%sInput(%q) = %q: a non-ASCII name Unicode lower-cases into ASCII was taken", r.name, s, got)
			}
			if strings.ContainsAny(s, " \t\r\n") {
				t.Fatalf("%sInput(%q) = %q: a name with white space was taken", r.name, s, got)
			}
			if other, err := r.input(strings.ToUpper(got) + "."); err != nil || other != got {
				t.Fatalf("%sInput(%q) = %q, but %q is %q, %v", r.name, s, got, strings.ToUpper(got)+".", other, err)
			}
		}
	})
}

// TestLowerASCII: A-Z only, byte by byte (other bytes, invalid UTF-8
// included, are kept), and s itself when there is nothing to fold.
func TestLowerASCII(t *testing.T) {
	tabletest.Equal(t, "LowerASCII", LowerASCII, map[string]string{
		"":                       "",
		"already.lower":          "already.lower",
		"Mixed.CASE@Example.COM": "mixed.case@example.com",
		"İSTANBUL.tr":            "İstanbul.tr",
		"A\xffB":                 "a\xffb",
	})
}
