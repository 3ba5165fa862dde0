package validate

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxDomain is the longest custom domain in its ASCII (A-label) form.
const MaxDomain = 253

// domainProfile is IDNA2008 registration: no mapping (an upper-case letter,
// a full-width character or anything NFKC would change is refused, not
// folded), CONTEXTJ/CONTEXTO and bidi rules, DNS lengths, and a strict
// LDH result.
var domainProfile = idna.New(
	idna.ValidateForRegistration(),
	idna.BidiRule(),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
	idna.Transitional(false),
)

// Domain checks a customer's domain name (a custom domain of a hosting
// account) and returns its ASCII form: lower-case A-labels ("xn--…") joined by
// dots. The name is what nginx is keyed by and what a certificate is issued
// for, so it is refused unless it is a plain, fully qualified DNS name:
//   - valid UTF-8 of at most 253 bytes once in ASCII, labels of 1-63
//     characters, at least two labels, the last not all digits;
//   - IDNA2008 registration rules (golang.org/x/net/idna): nothing is
//     mapped, so upper case, full-width forms and other look-alike spellings
//     are refused rather than folded into another name; a label may not mix
//     scripts (Latin with Cyrillic, …), the usual homograph trick;
//   - no IP literal (v4, v6, bracketed), no wildcard, no trailing or doubled
//     dot, no space, slash, control character or other punctuation;
//   - an ASCII label may have "--" in its third and fourth place only as the
//     "xn--" of a valid A-label.
func Domain(s string) (string, error) {
	if s == "" {
		return "", Invalid("domain is empty")
	}
	if len(s) > 4*MaxDomain {
		return "", Invalid("domain longer than %d characters", MaxDomain)
	}
	if !utf8.ValidString(s) {
		return "", Invalid("domain is not valid UTF-8")
	}
	q := truncate(s)
	if strings.HasSuffix(s, ".") {
		return "", Invalid("domain %q must not end with a dot", q)
	}
	if strings.HasPrefix(s, "[") || isIPLiteral(s) {
		return "", Invalid("domain %q is an IP address; give a domain name", q)
	}
	if strings.Contains(s, "*") {
		return "", Invalid("domain %q: wildcards are not allowed", q)
	}
	for _, r := range s {
		switch {
		case r < 0x80 && unicode.IsUpper(r):
			return "", Invalid("domain %q must be lower case", q)
		case unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return "", Invalid("domain %q contains a space, control or invisible character", q)
		case r < 0x80 && !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.'):
			return "", Invalid("domain %q may only contain letters, digits, '-' and '.'", q)
		}
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "", Invalid("domain %q must have at least two labels (example.com)", q)
	}
	for _, l := range labels {
		if l == "" {
			return "", Invalid("domain %q has an empty label", q)
		}
		if isASCII(l) {
			if err := asciiLabel(l); err != nil {
				return "", Invalid("domain %q: %s", q, err.Error())
			}
			continue
		}
		if err := oneScript(l); err != nil {
			return "", Invalid("domain %q: %s", q, err.Error())
		}
	}
	ascii, err := domainProfile.ToASCII(s)
	if err != nil {
		// Say why when it is a length in the ASCII form.
		if p, perr := idna.Punycode.ToASCII(s); perr == nil {
			if len(p) > MaxDomain {
				return "", Invalid("domain %q is longer than %d characters in its ASCII form", q, MaxDomain)
			}
			for _, l := range strings.Split(p, ".") {
				if len(l) > 63 {
					return "", Invalid("domain %q: a label is longer than 63 characters in its ASCII form", q)
				}
			}
		}
		return "", Invalid("domain %q is not a valid internationalised domain name (IDNA2008)", q)
	}
	if len(ascii) > MaxDomain {
		return "", Invalid("domain %q is longer than %d characters in its ASCII form", q, MaxDomain)
	}
	alabels := strings.Split(ascii, ".")
	for _, l := range alabels {
		if err := asciiLabel(l); err != nil {
			return "", Invalid("domain %q: %s", q, err.Error())
		}
	}
	if strings.Trim(alabels[len(alabels)-1], "0123456789") == "" {
		return "", Invalid("domain %q: the top-level label cannot be all digits", q)
	}
	return ascii, nil
}

// MaxHostingDomain is the longest domain, in its ASCII form, a hosting
// account can be served on (its own domain or a custom domain): a node
// keeps the name as a file name, hosts/<name> and certs/<name>.pem, each
// written through a temporary file beside it, the longest
// ".<name>.pem.tmp-<10 digits>" (atomicfile), all within Linux's 255-byte
// file names. A longer valid name (up to MaxDomain) failed on the node
// (ENAMETOOLONG) after the order had been charged.
const MaxHostingDomain = 235

// HostingDomain is Domain for a hosting account's domain or custom domain:
// also refused when longer than MaxHostingDomain in its ASCII form.
func HostingDomain(s string) (string, error) {
	ascii, err := Domain(s)
	if err != nil {
		return "", err
	}
	if len(ascii) > MaxHostingDomain {
		return "", Invalid("domain %q is %d characters in its ASCII form; a hosting domain is at most %d (the server keeps it as a file name)", truncate(s), len(ascii), MaxHostingDomain)
	}
	return ascii, nil
}

// asciiLabel checks one LDH label; an "xn--" label must be the A-label of a
// valid, single-script U-label (its round trip gives it back).
func asciiLabel(l string) error {
	if !isLabel(l) {
		return scriptErr("each label must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
	}
	if len(l) < 4 || l[2:4] != "--" {
		return nil
	}
	if !strings.HasPrefix(l, "xn--") {
		return scriptErr("label " + l + " has '--' in its third and fourth place")
	}
	u, err := domainProfile.ToUnicode(l)
	if err != nil || u == l {
		return scriptErr("label " + l + " is not a valid A-label")
	}
	if back, err := domainProfile.ToASCII(u); err != nil || back != l {
		return scriptErr("label " + l + " is not a valid A-label")
	}
	return oneScript(u)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isIPLiteral(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	// inet_aton spellings resolvers still accept (127.1, 2130706433); 0x7f.1
	// is refused by the all-digits top-level label rule.
	return strings.Trim(s, "0123456789.") == "" && strings.Trim(s, ".") != ""
}

// scriptsChecked are the scripts a label may not mix with one another.
var scriptsChecked = []struct {
	name string
	tab  *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
	{"Armenian", unicode.Armenian}, {"Hebrew", unicode.Hebrew}, {"Arabic", unicode.Arabic},
	{"Cherokee", unicode.Cherokee}, {"Georgian", unicode.Georgian},
}

type scriptErr string

func (e scriptErr) Error() string { return string(e) }

// oneScript refuses a label that mixes two of the scripts that have
// look-alike letters (pаypal with a Cyrillic "а"), and any non-ASCII
// character that is not a letter, mark or decimal digit (emoji, symbols and
// punctuation are DISALLOWED in IDNA2008; x/net/idna lets some through).
func oneScript(label string) error {
	seen := ""
	for _, r := range label {
		if r >= 0x80 && !unicode.In(r, unicode.L, unicode.M, unicode.Nd) {
			return scriptErr(fmt.Sprintf("label %s has %U, which is not a letter or digit", label, r))
		}
		if r < 0x80 && !(r >= 'a' && r <= 'z') {
			continue
		}
		for _, sc := range scriptsChecked {
			if unicode.Is(sc.tab, r) {
				if seen != "" && seen != sc.name {
					return scriptErr("label " + label + " mixes " + seen + " and " + sc.name + " letters")
				}
				seen = sc.name
			}
		}
	}
	return nil
}
