package httpapi

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Reverse DNS: PUT and DELETE /v1/servers/:id/ips/:ip/ptr. The name is
// recorded in the replicated state, shown by GET /v1/servers/:id/ips and
// announced with server.ptr.changed; when a mapped reverse zone holds the
// address, the leader's reconciler (rdns/reconcile) makes PowerDNS serve it.

const (
	maxDNSName  = validate.MaxHostname
	maxDNSLabel = 63
)

// DecodePTR validates a PUT /v1/servers/:id/ips/:ip/ptr body. The hostname is
// returned in its canonical form (lower case, without a trailing dot).
func DecodePTR(body []byte) (api.PTRRequest, error) {
	return decodeChecked(body, func(req *api.PTRRequest) (err error) {
		req.Hostname, err = dnsName("hostname", req.Hostname)
		return err
	})
}

// dnsName checks a DNS name of at least two labels under the host-name input
// rule (validate.HostnameInput: capitals and one trailing dot are accepted,
// the canonical lower-case form without the dot is returned): at most 253
// characters, labels of 1-63 characters of a-z, 0-9 and '-' that neither start
// nor end with '-', the last not all digits (rdns.ValidTarget).
func dnsName(field, s string) (string, error) {
	if s == "" {
		return "", invalidField(field, "is required")
	}
	name, err := validate.HostnameInput(s) // the host-name rule of server creation, after folding
	if err != nil {
		return "", invalidField(field, "%s", validate.Reason(err))
	}
	if !strings.Contains(name, ".") {
		return "", invalidField(field, "must be a fully qualified name of at least two labels (e.g. mail.example.com)")
	}
	if err := rdns.ValidTarget(name); err != nil {
		return "", invalidField(field, "must be a host name, not an IP address or a name whose last label is all digits")
	}
	return name, nil
}

// serverAddr resolves the {ip} path value to one of the server's addresses; an
// unparsable address or one the server does not have is a 404.
func serverAddr(s store.Server, raw string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(raw)
	if err != nil || ip.Zone() != "" || !slices.Contains(fsm.ServerAddrs(s), ip) {
		return netip.Addr{}, notFound("ip")
	}
	return ip, nil
}

// ptrTarget loads the caller's server and the address of it named by the
// {ip} path value. A suspended server's PTRs do not change (409 suspended,
// as a power-on; the FSM refuses it too, for a suspension applied after
// this check).
func (a *API) ptrTarget(rq *request) (store.Server, netip.Addr, error) {
	s, err := a.loadServer(rq)
	if err != nil {
		return s, netip.Addr{}, err
	}
	ip, err := serverAddr(s, rq.PathValue("ip"))
	if err == nil && s.Suspension != nil && s.Status != api.ServerTerminated {
		err = &fsm.SuspendedError{ServerID: s.ID, Reason: s.Suspension.Reason}
	}
	return s, ip, err
}

func (a *API) setServerPTR(rq *request) (int, any, error) {
	s, ip, err := a.ptrTarget(rq)
	if err != nil {
		return 0, nil, err
	}
	req, err := DecodePTR(rq.body)
	if err != nil {
		return 0, nil, err
	}
	return a.propose(rq.Context(), rq, fsm.CmdServerPTR,
		fsm.ServerPTR{AccountID: rq.caller.accountID, ServerID: s.ID, IP: ip.String(), Hostname: req.Hostname}, http.StatusOK)
}

func (a *API) deleteServerPTR(rq *request) (int, any, error) {
	s, ip, err := a.ptrTarget(rq)
	if err != nil {
		return 0, nil, err
	}
	// DELETE bodies are not read (see API.serve): nothing to validate.
	return a.propose(rq.Context(), rq, fsm.CmdServerPTR,
		fsm.ServerPTR{AccountID: rq.caller.accountID, ServerID: s.ID, IP: ip.String()}, http.StatusOK)
}
