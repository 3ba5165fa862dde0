package httpapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// A domain's child name servers (fsm.LevelDomainHosts): host names inside
// the domain with their glue addresses, kept at the registry as host
// objects. PUT creates or changes one, DELETE deletes it; each is a
// registry operation like a PATCH's change (the domain's change shows it
// pending, then applied or failed with the registry's reason), answered
// 202 at once (the domain, its change pending) or 200 when there is
// nothing to ask the registry. Once applied, the host can be a name server
// of the domain itself (in-bailiwick) or of another domain.

const hostOpIDPrefix = "dho"

// hostName is the {name} path value in its canonical form, inside the
// domain; a 400 naming "name" otherwise.
func hostName(rq *request, domain string) (string, error) {
	h, err := validate.DomainInput(rq.PathValue("name"))
	if err != nil {
		return "", invalidField("name", "%s", validate.Reason(err))
	}
	if !fsm.HostInside(h, domain) {
		return "", invalidField("name", "%s is not inside %s: a child name server is a host name under its domain (ns1.%s)", h, domain, domain)
	}
	return h, nil
}

// DecodeDomainHost validates PUT /v1/domains/{id}/hosts/{name}: 1 to
// api.MaxHostAddresses public unicast addresses, answered canonical (IPv4
// first); each refusal names its field.
func DecodeDomainHost(body []byte) (api.DomainHostRequest, error) {
	return decodeChecked(body, func(req *api.DomainHostRequest) error {
		addrs, i, err := fsm.CheckHostAddresses(req.Addresses)
		if err != nil {
			if i >= 0 {
				return invalidField(fmt.Sprintf("addresses[%d]", i), "%v", err)
			}
			return invalidField("addresses", "%v", err)
		}
		for i, s := range req.Addresses {
			if ip := netip.MustParseAddr(s).Unmap(); !publicGlueAddress(ip) {
				return invalidField(fmt.Sprintf("addresses[%d]", i), "%s is not a public unicast address", ip)
			}
		}
		req.Addresses = addrs
		return nil
	})
}

// notPublic are the ranges a glue address may not be in beyond what
// netip's predicates tell: this network, shared (CGNAT), IETF protocol
// assignments, documentation, benchmarking, reserved, and IPv6 transition
// and documentation prefixes. The API's policy, not the command's: a
// release may change it (the command applies what it holds).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("3fff::/20"),
}

// publicGlueAddress reports whether ip may be a name server's glue: public
// unicast (not private, loopback, link-local, multicast, unspecified, nor
// in notPublic).
func publicGlueAddress(ip netip.Addr) bool {
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// hostTarget is the route's host name inside domain (400 naming it), once
// the registrar is known to make host objects (else 409): the checks PUT and
// DELETE share, in the order they answer.
func (a *API) hostTarget(rq *request, domain string) (string, error) {
	name, err := hostName(rq, domain)
	if err != nil {
		return "", err
	}
	return name, a.hostObjectsOffered()
}

func (a *API) putDomainHost(rq *request) (int, any, error) {
	cur, req, err := loadAndBody(rq, a.loadRegDomain, DecodeDomainHost)
	if err != nil {
		return 0, nil, err
	}
	name, err := a.hostTarget(rq, cur.Name)
	if err != nil {
		return 0, nil, err
	}
	same := slices.ContainsFunc(cur.Hosts, func(h api.DomainHost) bool { return h.Name == name && slices.Equal(h.Addresses, req.Addresses) })
	return a.proposeHost(rq, cur.ID, fsm.DomainHost{Name: name, Addresses: req.Addresses}, same)
}

func (a *API) deleteDomainHost(rq *request) (int, any, error) {
	cur, err := a.loadRegDomain(rq)
	if err != nil {
		return 0, nil, err
	}
	name, err := a.hostTarget(rq, cur.Name)
	if err != nil {
		return 0, nil, err
	}
	if !slices.ContainsFunc(cur.Hosts, func(h api.DomainHost) bool { return h.Name == name }) {
		return 0, nil, notFound("host")
	}
	if err := a.hostNotInUse(rq, name); err != nil {
		return 0, nil, err
	}
	return a.proposeHost(rq, cur.ID, fsm.DomainHost{Name: name, Delete: true}, false)
}

// hostObjectsOffered refuses a host change up front (409
// host_objects_not_offered, nothing recorded) when the registrar cannot
// make host objects: one that delegates with host attributes would refuse
// the operation in the leader's job, after the change was recorded.
func (a *API) hostObjectsOffered() error {
	deps, err := a.domainDeps()
	if err != nil {
		return err
	}
	if !deps.Registrar.HostObjects() {
		return errf(http.StatusConflict, "host_objects_not_offered", "this provider's registrar delegates with host attributes: a child name server needs RFC 5732 host objects at the registry, which it does not use (the coordinators' --registrar-epp-host-objects); nothing was changed")
	}
	return nil
}

// hostNotInUse refuses the deletion of a child name server that one of
// the caller's domains delegates to, or asks to (a pending change): 409
// host_in_use naming them, nothing recorded (the registry would refuse
// host:delete with 2305 in the job). Only domains the customer can still
// change count (active, or registering with these name servers): an expired
// domain cannot be PATCHed, so naming it would block the deletion for good;
// the registry judges those, as it does another account's delegation.
func (a *API) hostNotInUse(rq *request, name string) error {
	var doms []store.RegDomain
	if err := a.state.Read(func(r store.ReadTx) (err error) {
		doms, _, err = r.RegDomains(rq.caller.accountID, 0, math.MaxInt32)
		return err
	}); err != nil {
		return err
	}
	var by []string
	for _, d := range doms {
		pending := d.Change != nil && d.Change.Status == api.ChangePending && slices.Contains(d.Change.Nameservers, name)
		changeable := d.Status == api.DomainActive || d.Status == api.DomainRegistering
		if changeable && (slices.Contains(d.Nameservers, name) || pending) {
			by = append(by, d.Name)
		}
	}
	if len(by) == 0 {
		return nil
	}
	slices.Sort(by)
	return errf(http.StatusConflict, "host_in_use", "%s is a name server of %s: change their name servers (PATCH /v1/domains/{id}) first; nothing was changed", name, strings.Join(by, ", "))
}

// proposeHost records the host operation; the leader's driver asks the
// registry. 202 with the domain (its change pending), or 200 when the
// host had these addresses already as read before (same). The status is
// the one the command records for an Idempotency-Key, so a replay answers
// what this send answers.
func (a *API) proposeHost(rq *request, domainID string, p fsm.DomainHost, same bool) (int, any, error) {
	deps, err := a.domainDeps()
	if err != nil {
		return 0, nil, err
	}
	opID := ids.New(hostOpIDPrefix, rq.now)
	p.DomainID, p.AccountID, p.OpID, p.ClTRID = domainID, rq.caller.accountID, opID, fsm.DomainClTRID(opID)
	want := http.StatusAccepted
	if same {
		want = http.StatusOK
	}
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdDomainHost, p, want)
	if err != nil {
		var state *fsm.DomainStateError
		switch {
		case errors.As(err, &state):
			return 0, nil, errf(http.StatusConflict, "domain_not_active", "%s", userMessage(state))
		case errors.Is(err, fsm.ErrConflict):
			return 0, nil, errf(http.StatusConflict, "change_pending", "%s", userMessage(err))
		case errors.Is(err, fsm.ErrNotFound):
			return 0, nil, notFound("host")
		}
		return 0, nil, err
	}
	if d, ok := v.(api.Domain); ok && d.Change != nil && d.Change.ID == opID && deps.Kick != nil {
		deps.Kick()
	}
	return status, v, nil
}
