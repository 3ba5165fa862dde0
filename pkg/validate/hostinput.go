package validate

import "strings"

// The one rule for a host name a customer gives the API (a domain to
// register, transfer, check or quote, a nameserver, a PTR host name, a
// hosting account's domain, a custom domain): DNS names are case-insensitive
// and a fully qualified name may be written with the root's trailing dot, so
// ASCII capitals are lower-cased and one trailing dot is dropped before the
// name is checked; the canonical form (lower case, no trailing dot, A-labels
// for an internationalised name) is what is stored and answered.
// Non-ASCII capitals are not folded: IDNA2008 registration refuses them
// rather than guess a language's case mapping (Turkish İ). Two trailing
// dots, or a name that is only a dot, are refused. The rules behind
// (Domain, HostingDomain, Hostname) stay strict: the agent and the
// certificate issuer check the canonical form with them.

// CanonicalHost is a customer's host name with ASCII capitals lower-cased
// and one trailing dot dropped; it checks nothing.
func CanonicalHost(s string) string { return LowerASCII(strings.TrimSuffix(s, ".")) }

// LowerASCII lower-cases A-Z only, byte by byte (IDNA2008 refuses other
// capitals rather than fold them; an e-mail address is looked up this way
// too); s itself when it has none.
func LowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// hostInput folds s (CanonicalHost) and refuses what folding leaves empty or
// still ending with a dot, saying so of the name as given.
func hostInput(kind, s string) (string, error) {
	c := CanonicalHost(s)
	if s != "" && c == "" {
		return "", Invalid("%s %q is only a dot", kind, truncate(s))
	}
	if strings.HasSuffix(c, ".") {
		return "", Invalid("%s %q ends with more than one dot (one trailing dot is allowed)", kind, truncate(s))
	}
	return c, nil
}

// DomainInput is Domain for a name a customer gives (the rule above): it
// returns the canonical ASCII form.
func DomainInput(s string) (string, error) {
	c, err := hostInput("domain", s)
	if err != nil {
		return "", err
	}
	return Domain(c)
}

// HostingDomainInput is HostingDomain for a name a customer gives (the rule
// above): it returns the canonical ASCII form.
func HostingDomainInput(s string) (string, error) {
	c, err := hostInput("domain", s)
	if err != nil {
		return "", err
	}
	return HostingDomain(c)
}

// HostnameInput is Hostname for a host name a customer gives (the rule
// above; a PTR's target): it returns the canonical form.
func HostnameInput(s string) (string, error) {
	c, err := hostInput("hostname", s)
	if err != nil {
		return "", err
	}
	if err := Hostname(c); err != nil {
		return "", err
	}
	return c, nil
}
