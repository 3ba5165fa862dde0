package eppd

import (
	"fmt"
	"strings"

	"github.com/hostplane/hostplane/internal/eppxml"
	"golang.org/x/net/idna"
)

// checkHostName returns why name is not a syntactically valid host name
// (LDH labels of 1–63 characters, at most 253 in all, IDN labels in their
// valid A-label form), or "" when it is.
func checkHostName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > 253 {
		return fmt.Sprintf("name is %d characters, more than 253", len(name))
	}
	for _, l := range strings.Split(name, ".") {
		if r := checkLabel(l); r != "" {
			return r
		}
	}
	return ""
}

func checkLabel(l string) string {
	if l == "" {
		return "empty label"
	}
	if len(l) > 63 {
		return fmt.Sprintf("label %q is more than 63 characters", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(l)-1 {
				return fmt.Sprintf("label %q starts or ends with a hyphen", l)
			}
		case c >= 0x80:
			return fmt.Sprintf("label %q is not ASCII: send the A-label (xn--) form", l)
		default:
			return fmt.Sprintf("label %q has the character %q (letters, digits and hyphens only, lower case)", l, c)
		}
	}
	if len(l) >= 4 && l[2:4] == "--" {
		if !strings.HasPrefix(l, "xn--") {
			return fmt.Sprintf("label %q has hyphens in the third and fourth positions (reserved for xn--)", l)
		}
		u, err := idna.Registration.ToUnicode(l)
		if err != nil {
			return fmt.Sprintf("label %q is not a valid IDN A-label: %v", l, err)
		}
		if a, err := idna.Registration.ToASCII(u); err != nil || a != l {
			return fmt.Sprintf("label %q is not a valid IDN A-label", l)
		}
	}
	return ""
}

// registrable returns nil when name can be registered here (its syntax is
// valid and it sits directly under an offered TLD), else why not: a syntax
// error (2005) or a policy refusal (2306).
func (s *Server) registrable(name string) *eppErr {
	if r := checkHostName(name); r != "" {
		return &eppErr{eppxml.CodeValueSyntax, r}
	}
	under := ""
	for _, t := range s.cfg.TLDs {
		if strings.HasSuffix(name, "."+t) {
			if label := name[:len(name)-len(t)-1]; !strings.Contains(label, ".") {
				return nil
			}
			under = t
		}
	}
	if under != "" {
		return &eppErr{eppxml.CodePolicy, "only names directly under ." + under + " are registered here"}
	}
	return &eppErr{eppxml.CodePolicy, "TLD not offered"}
}
