package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/validate"
)

// ReservedDomain is the canonical form of a reserved domain as an operator
// writes it (--reserved-domains) or a node reports its hostname: the host
// name rule of a customer's domain (validate.DomainInput: ASCII capitals
// and one trailing dot folded, lower case, in its ASCII (punycode) form),
// so a reserved name and a customer's name are compared in one form. A
// name that is not a domain of at least two labels is an error, as is a
// non-ASCII capital (U+212A KELVIN SIGN is not "k") or a space.
func ReservedDomain(s string) (string, error) {
	return validate.DomainInput(s)
}

// reservedBy is the reserved name that domain (canonical, as
// validate.HostingDomain returns it) is or is a subdomain of, "" if none.
// A near miss (notprovider.example under provider.example) is not covered:
// only whole labels match.
func reservedBy(domain string, reserved []string) string {
	return newReservedSet(reserved).by(domain)
}

// reservedSet is a set of reserved names (canonical), looked up by a
// domain's whole-label suffixes: O(labels) a lookup, whatever its size.
type reservedSet map[string]struct{}

func newReservedSet(names []string) reservedSet {
	set := make(reservedSet, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set
}

// by is the reserved name domain is or is under, "" if none; the longest
// (domain itself first), as a domain under two reserved names is reported
// by the nearer.
func (set reservedSet) by(domain string) string {
	for d := domain; d != ""; {
		if _, ok := set[d]; ok {
			return d
		}
		_, rest, ok := strings.Cut(d, ".")
		if !ok {
			break
		}
		d = rest
	}
	return ""
}

// reservedCache is the reserved-name set an API built last, with what it
// was built from: the state's hostnames version (fsm.HostnamesVersion) and
// the configured list (a copy).
type reservedCache struct {
	version    uint64
	configured []string
	set        reservedSet
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
	by := a.reservedNow().by(domain)
	if by == "" {
		return nil
	}
	if by == domain {
		return errf(http.StatusConflict, "domain_reserved", "field \"domain\": domain %s is reserved by the provider; choose another domain", domain)
	}
	return errf(http.StatusConflict, "domain_reserved", "field \"domain\": domain %s is under %s, which is reserved by the provider; choose another domain", domain, by)
}

// reservedNow is the reserved-name set: the one built last while no node's
// hostname may have changed since (fsm.HostnamesVersion) and the configured
// list is the same, else a new one. Building it converts every node's
// hostname (IDNA); an order, a quote and a custom-domain PUT or verify
// each ask it.
func (a *API) reservedNow() reservedSet {
	// The version is read before the state: a hostname committed after
	// this read moves it, so a set built from an older state is never
	// kept under a newer version.
	ver := a.state.HostnamesVersion()
	configured := a.cfg.ReservedDomains
	if c := a.reserved.Load(); c != nil && c.version == ver && slices.Equal(c.configured, configured) {
		return c.set
	}
	var names []string
	_ = a.state.Read(func(r store.ReadTx) error {
		names = reservedNames(r, configured)
		return nil
	})
	set := newReservedSet(names)
	a.reserved.Store(&reservedCache{version: ver, configured: slices.Clone(configured), set: set})
	return set
}
