package httpapi

import (
	"net/http"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/validate"
)

// ReservedDomain is the canonical form of a reserved domain as an operator
// writes it (--reserved-domains) or a node reports its hostname: lower
// case, without a trailing dot, in its ASCII (punycode) form, the form
// validate.HostingDomain gives a customer's domain. A name that is not a
// domain of at least two labels is an error.
func ReservedDomain(s string) (string, error) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	return validate.Domain(s)
}

// reservedBy is the reserved name that domain (canonical, as
// validate.HostingDomain returns it) is or is a subdomain of, "" if none.
// A near miss (notprovider.example under provider.example) is not covered:
// only whole labels match.
func reservedBy(domain string, reserved []string) string {
	for _, r := range reserved {
		if domain == r || strings.HasSuffix(domain, "."+r) {
			return r
		}
	}
	return ""
}

// reservedNames is the provider's reserved names: the coordinator's
// --reserved-domains and every enrolled node's hostname (a hostname of one
// label is not a domain a customer can name, and its subdomains would be a
// whole top-level domain: left out).
func reservedNames(r store.ReadTx, configured []string) []string {
	out := append([]string(nil), configured...)
	_ = r.ForEachAgentNode(func(n store.AgentNode) {
		if d, err := ReservedDomain(n.Hostname); err == nil && n.Hostname != "" {
			out = append(out, d)
		}
	})
	return out
}

// domainNotReserved refuses a customer's hosting domain or custom domain
// that is one of the provider's reserved names or a subdomain of one: a 409
// domain_reserved naming the field, before anything is charged or
// proposed. The operator's POST /admin/hosting does not ask it.
func (a *API) domainNotReserved(domain string) error {
	var by string
	_ = a.state.Read(func(r store.ReadTx) error {
		by = reservedBy(domain, reservedNames(r, a.cfg.ReservedDomains))
		return nil
	})
	if by == "" {
		return nil
	}
	if by == domain {
		return errf(http.StatusConflict, "domain_reserved", "field \"domain\": domain %s is reserved by the provider; choose another domain", domain)
	}
	return errf(http.StatusConflict, "domain_reserved", "field \"domain\": domain %s is under %s, which is reserved by the provider; choose another domain", domain, by)
}
