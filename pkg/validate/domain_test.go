package validate

import (
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/tabletest"
)

func TestDomainGood(t *testing.T) {
	good := map[string]string{
		"example.com":                   "example.com",
		"www.example.com":               "www.example.com",
		"a-b.c0.example":                "a-b.c0.example",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"bücher.example":                "xn--bcher-kva.example",
		"münchen.de":                    "xn--mnchen-3ya.de",
		"пример.рф":                     "xn--e1afmkfd.xn--p1ai",
		"例え.jp":                         "xn--r8jz45g.jp",
		"1.example":                     "1.example",
		strings.Repeat("a", 63) + ".x":  strings.Repeat("a", 63) + ".x",
		strings.Repeat("a.", 126) + "b": strings.Repeat("a.", 126) + "b",
	}
	tabletest.Accepts(t, "Domain", Domain, good)
	// The ASCII form is a fixed point: validating it again gives itself.
	fixed := map[string]string{}
	for _, ascii := range good {
		fixed[ascii] = ascii
	}
	tabletest.Accepts(t, "Domain", Domain, fixed)
}

// TestDomainBadCorpus: each name a customer could send to reach another
// file, another account's certificate or a look-alike of someone else's name
// is refused with an error that says what is wrong.
func TestDomainBadCorpus(t *testing.T) {
	for in, says := range map[string]string{
		"":                                   "empty",
		"localhost":                          "two labels",
		"com":                                "two labels",
		"Example.com":                        "lower case",
		"EXAMPLE.COM":                        "lower case",
		"example.com.":                       "end with a dot",
		".example.com":                       "empty label",
		"a..example.com":                     "empty label",
		"..":                                 "end with a dot",
		"../evil/x":                          "may only contain",
		"a.test/../b.test":                   "may only contain",
		"a/b.com":                            "may only contain",
		"a\\b.com":                           "may only contain",
		"a;b.com":                            "may only contain",
		"a$b.com":                            "may only contain",
		"$ssl_server_name.com":               "may only contain",
		"a'b.com":                            "may only contain",
		"a\"b.com":                           "may only contain",
		"a{b}.com":                           "may only contain",
		"a_b.com":                            "may only contain",
		"a b.com":                            "space",
		"a.com\n":                            "space",
		"a.com\nserver { }":                  "space",
		"a.com\r":                            "space",
		"a\x00.com":                          "control",
		"a\tb.com":                           "space",
		"*.example.com":                      "wildcard",
		"a.*.com":                            "wildcard",
		"127.0.0.1":                          "IP address",
		"10.0.0.1":                           "IP address",
		"127.1":                              "IP address",
		"2130706433":                         "IP address",
		"0x7f.1":                             "all digits",
		"1.2.3.4.5":                          "IP address",
		"::1":                                "IP address",
		"2001:db8::1":                        "IP address",
		"[::1]":                              "IP address",
		"example.123":                        "all digits",
		"a.com:443":                          "may only contain",
		"-a.com":                             "label",
		"a-.com":                             "label",
		"ab--cd.com":                         "third and fourth",
		"xn--.com":                           "label",
		"xn--a.com":                          "A-label",
		"xn--ls8h.com":                       "not a letter", // an emoji
		"💩.com":                              "not a letter",
		"xn--abc-.com":                       "label",
		strings.Repeat("a", 64) + ".com":     "label",
		strings.Repeat("a.", 127) + "b":      "253",
		strings.Repeat("ü", 60) + ".example": "label",
		"pаypal.com":                         "mixes Latin and Cyrillic", // Cyrillic а
		"xn--pypal-4ve.com":                  "mixes Latin and Cyrillic", // the same, as an A-label
		"ｅｘａｍｐｌｅ.com":                        "IDNA",                     // full-width: would map to example.com
		"ex\u200bample.com":                  "invisible",                // zero-width space
		"ex\u200dample.com":                  "invisible",                // zero-width joiner
		"exa\u202emple.com":                  "invisible",                // right-to-left override
		"exampl\u0435.com":                   "mixes",                    // Cyrillic е at the end
		"e\u0301xample.com":                  "IDNA",                     // combining accent, not NFC
		"ß.example":                          "",                         // allowed in IDNA2008; checked below
		"a\xffb.com":                         "UTF-8",
		"\u2024\u2024":                       "two labels", // one-dot leaders look like ".."
		"a\u3002com":                         "two labels", // ideographic full stop, a dot after mapping
		"a\uff0ecom":                         "two labels", // full-width full stop
		"%2e%2e":                             "may only contain",
		"a.com%00":                           "may only contain",
		"a.com#x":                            "may only contain",
		"a@b.com":                            "may only contain",
		"\u0644\u0627a.com":                  "mixes", // Arabic then Latin in one label
		strings.Repeat("x", 5000) + ".com":   "longer",
	} {
		if says == "" {
			continue
		}
		got, err := Domain(in)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Domain(%q) accepted as %q", in, got)
			continue
		}
		if !strings.Contains(err.Error(), says) {
			t.Errorf("Domain(%q) = %v; want it to say %q", in, err, says)
		}
		if !strings.Contains(err.Error(), "domain") {
			t.Errorf("Domain(%q) = %v; the error does not name the field", in, err)
		}
	}
	// ß is valid IDNA2008 and stays distinct from "ss" (non-transitional).
	if got, err := Domain("ß.example"); err != nil || got != "xn--zca.example" {
		t.Errorf("Domain(ß.example) = %q, %v", got, err)
	}
}

// FuzzDomain: whatever is accepted is a name nginx and the file system can
// use as is: lower-case LDH labels, no path or config syntax, a fixed point.
func FuzzDomain(f *testing.F) {
	for _, s := range []string{"example.com", "bücher.example", "../x", "A.TEST", "*.a.b", "127.0.0.1", "xn--bcher-kva.example", "a..b", "pаypal.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Domain(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Domain(%q): error %v is not ErrInvalid", s, err)
			}
			return
		}
		if len(out) > MaxDomain || strings.Trim(out, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" ||
			strings.Contains(out, "..") || strings.HasPrefix(out, ".") || strings.HasSuffix(out, ".") || !strings.Contains(out, ".") {
			t.Fatalf("Domain(%q) accepted as %q", s, out)
		}
		if err := Hostname(out); err != nil {
			t.Fatalf("Domain(%q) = %q, not a host name: %v", s, out, err)
		}
		if again, err := Domain(out); err != nil || again != out {
			t.Fatalf("Domain(%q) = %q, but Domain(%q) = %q, %v", s, out, out, again, err)
		}
	})
}
