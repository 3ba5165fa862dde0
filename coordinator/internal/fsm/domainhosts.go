package fsm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// LevelDomainHosts is the semantics level from which a domain has child
// name servers: host objects with glue addresses at the registry, under the
// domain, usable as its own (in-bailiwick) or another domain's name
// servers. CmdDomainHost opens a registry operation of kind host (the
// leader's driver creates, changes or deletes the host object with the
// operation's transaction id, exactly once); its end (CmdDomainOpDone)
// keeps the host on the domain, or not, as a change's does.
const LevelDomainHosts = 16

// DomainHost creates or changes (Addresses) or deletes (Delete) the child
// name server Name of a domain. Name is canonical (lower case, no trailing
// dot) and inside the domain; Addresses are canonical (CheckHostAddresses),
// 1 to api.MaxHostAddresses (the API admits public unicast ones only).
type DomainHost struct {
	DomainID  string   `json:"domain_id"`
	AccountID string   `json:"account_id"`
	OpID      string   `json:"op_id"`
	ClTRID    string   `json:"cl_trid"`
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"`
	Delete    bool     `json:"delete,omitempty"`
}

// HostInside reports whether host is a name server name inside domain (a
// strict subdomain of it); both canonical.
func HostInside(host, domain string) bool {
	return strings.HasSuffix(host, "."+domain) && len(host) > len(domain)+1
}

// CheckHostAddresses reads a child name server's glue addresses as the
// command holds them: 1 to api.MaxHostAddresses IPv4 or IPv6 addresses (no
// zone), none twice. It answers them canonical (netip's text, IPv4-mapped
// IPv6 as IPv4), IPv4 first, each in the order given; or the index of the
// first bad one (-1: the list itself) and why. It checks structure only:
// which addresses a customer may give (public unicast) is the API's policy
// (httpapi), checked before the command is proposed, so that a later
// release may change it without changing what an old entry applies to.
func CheckHostAddresses(in []string) ([]string, int, error) {
	if len(in) < 1 || len(in) > api.MaxHostAddresses {
		return nil, -1, fmt.Errorf("a child name server needs 1 to %d glue addresses, got %d", api.MaxHostAddresses, len(in))
	}
	var v4, v6 []string
	for i, s := range in {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, i, fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
		}
		ip = ip.Unmap()
		a := ip.String()
		if slices.Contains(v4, a) || slices.Contains(v6, a) {
			return nil, i, fmt.Errorf("%s is given twice", a)
		}
		if ip.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return append(v4, v6...), -1, nil
}

func applyDomainHost(c *applyCtx, p DomainHost) (any, error) {
	d, err := c.r.OwnedRegDomain(p.AccountID, p.DomainID)
	if err != nil {
		return nil, err
	}
	switch {
	case p.OpID == "" || p.ClTRID == "":
		return nil, fmt.Errorf("%w: a host change needs operation and transaction ids", ErrInvalid)
	case !HostInside(p.Name, d.Name):
		return nil, fmt.Errorf("%w: field \"name\": %q is not a host name inside %s", ErrInvalid, p.Name, d.Name)
	case p.Delete && len(p.Addresses) > 0:
		return nil, fmt.Errorf("%w: a host deletion takes no addresses", ErrInvalid)
	}
	if !p.Delete {
		addrs, i, err := CheckHostAddresses(p.Addresses)
		if err != nil {
			field := "addresses"
			if i >= 0 {
				field = fmt.Sprintf("addresses[%d]", i)
			}
			return nil, fmt.Errorf("%w: field %q: %v", ErrInvalid, field, err)
		}
		if !slices.Equal(addrs, p.Addresses) {
			return nil, fmt.Errorf("%w: field \"addresses\": not in canonical order and form", ErrInvalid)
		}
	}
	if d.Status != api.DomainActive {
		return nil, &DomainStateError{DomainID: d.ID, Status: d.Status}
	}
	i := slices.IndexFunc(d.Hosts, func(h api.DomainHost) bool { return h.Name == p.Name })
	switch {
	case p.Delete && i < 0:
		return nil, fmt.Errorf("%w: domain %s has no child name server %s", ErrNotFound, d.ID, p.Name)
	case !p.Delete && i >= 0 && slices.Equal(d.Hosts[i].Addresses, p.Addresses):
		return d.Domain, nil // as asked already
	case !p.Delete && i < 0 && len(d.Hosts) >= api.MaxDomainHosts:
		return nil, fmt.Errorf("%w: field \"name\": domain %s has %d child name servers, the most it may have", ErrInvalid, d.ID, api.MaxDomainHosts)
	case d.Op != nil:
		return nil, fmt.Errorf("%w: domain %s has a registry operation in progress (%s %s); retry when it has ended", ErrConflict, d.ID, d.Op.Kind, d.Op.ID)
	}
	hc := &api.DomainHostChange{Name: p.Name, Addresses: slices.Clone(p.Addresses), Delete: p.Delete}
	op := store.RegDomainOp{ID: p.OpID, Kind: store.RegOpHost, ClTRID: p.ClTRID, StartedAt: c.at, Host: hc}
	d.Change = &api.DomainChange{ID: op.ID, Status: api.ChangePending, Host: hc, RequestedAt: c.at}
	if err := openDomainOp(c, &d, op); err != nil {
		return nil, err
	}
	return d.Domain, putRegDomain(c, d)
}

// endHostOp keeps a committed host operation's child name server on the
// domain (sorted by name), or removes it.
func endHostOp(d *store.RegDomain, hc *api.DomainHostChange) {
	if hc == nil {
		return
	}
	d.Hosts = slices.DeleteFunc(d.Hosts, func(h api.DomainHost) bool { return h.Name == hc.Name })
	if !hc.Delete {
		d.Hosts = append(d.Hosts, api.DomainHost{Name: hc.Name, Addresses: slices.Clone(hc.Addresses)})
		slices.SortFunc(d.Hosts, func(a, b api.DomainHost) int { return strings.Compare(a.Name, b.Name) })
	}
	if len(d.Hosts) == 0 {
		d.Hosts = nil
	}
}
