package httpapi

import (
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Id prefixes of the server routes. Server ids are made by the order / admin
// create path; they must use serverIDPrefix.
const (
	serverIDPrefix   = "srv"
	actionIDPrefix   = "act"
	snapshotIDPrefix = "snp"
)

// serverRoutes are the /v1/servers and /v1/actions operations.
func (a *API) serverRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/servers", Scope: api.ScopeServersRead, handler: a.listServers},
		{Method: "GET", Path: "/v1/servers/ips", Scope: api.ScopeServersRead, handler: a.listAccountIPs},
		{Method: "GET", Path: "/v1/servers/{id}", Scope: api.ScopeServersRead, handler: a.getServer},
		{Method: "GET", Path: "/v1/servers/{id}/stats", Scope: api.ScopeServersRead, handler: a.serverStats},
		{Method: "GET", Path: "/v1/servers/{id}/snapshots", Scope: api.ScopeServersRead, handler: a.listSnapshots},
		{Method: "GET", Path: "/v1/servers/{id}/ips", Scope: api.ScopeServersRead, handler: a.listServerIPs},
		// Idempotent: a reboot retried after a lost answer must not reboot
		// twice (without the key the retry is a 409 while the first runs, a
		// second reboot after it).
		{Method: "POST", Path: "/v1/servers/{id}/power/{action}", Scope: api.ScopeServersWrite, Idempotent: true, handler: a.powerServer},
		{Method: "POST", Path: "/v1/servers/{id}/snapshots", Scope: api.ScopeServersWrite, Idempotent: true, handler: a.createSnapshot},
		{Method: "DELETE", Path: "/v1/servers/{id}/snapshots/{snapshotId}", Scope: api.ScopeServersWrite, Idempotent: true, handler: a.deleteSnapshot},
		// Not Idempotent on purpose: the new password is only in the live
		// response, so a replayed one would say "accepted" without the
		// password and the customer would be locked out. A retry makes a new
		// password instead (the busy rule makes a duplicate a 409, not a race).
		{Method: "POST", Path: "/v1/servers/{id}/password-reset", Scope: api.ScopeServersWrite, handler: a.resetServerPassword},
		// Not Idempotent: each call makes a new single-use console URL.
		{Method: "POST", Path: "/v1/servers/{id}/console", Scope: api.ScopeServersWrite, handler: a.serverConsole},
		{Method: "PATCH", Path: "/v1/servers/{id}/label", Scope: api.ScopeServersWrite, handler: a.labelServer},
		// An upsert: a repeat is naturally idempotent, no Idempotency-Key needed.
		{Method: "PUT", Path: "/v1/servers/{id}/ips/{ip}/ptr", Scope: api.ScopeServersWrite, handler: a.setServerPTR},
		{Method: "DELETE", Path: "/v1/servers/{id}/ips/{ip}/ptr", Scope: api.ScopeServersWrite, handler: a.deleteServerPTR},
		{Method: "POST", Path: "/v1/servers/{id}/reinstall", Scope: api.ScopeServersDestroy, Idempotent: true, handler: a.reinstallServer},
		{Method: "POST", Path: "/v1/servers/{id}/snapshots/{snapshotId}/revert", Scope: api.ScopeServersDestroy, Idempotent: true, handler: a.revertSnapshot},
		{Method: "DELETE", Path: "/v1/servers/{id}", Scope: api.ScopeServersDestroy, Idempotent: true, handler: a.terminateServer},
		// servers:read or hosting:read lets a key in; the handler then checks
		// the scope that reads the action's resource.
		{Method: "GET", Path: "/v1/actions/{id}", Scope: api.ScopeServersRead, AltScope: api.ScopeHostingRead, handler: a.getAction},
		// The same scopes; the list holds the actions the key's scopes read
		// (actions.go).
		{Method: "GET", Path: "/v1/actions", Scope: api.ScopeServersRead, AltScope: api.ScopeHostingRead, handler: a.listActions},
	}
}

// loadServer loads the caller's server named by the {id} path value; a
// malformed id or another account's server is a 404.
func (a *API) loadServer(rq *request) (store.Server, error) {
	return readOwned(a, rq, serverIDPrefix, "server", store.ReadTx.OwnedServer)
}

// listServers pages the account's servers, newest first (ids sort by creation
// time); terminated servers stay listed with status "terminated".
func (a *API) listServers(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, serverIDPrefix, store.ReadTx.ServersAt, store.Server.Public)
}

func (a *API) getServer(rq *request) (int, any, error) {
	s, err := a.loadServer(rq)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.Public(), nil
}

func (a *API) listSnapshots(rq *request) (int, any, error) {
	s, err := a.loadServer(rq)
	if err != nil {
		return 0, nil, err
	}
	out := api.ServerSnapshotList{Data: make([]api.ServerSnapshot, 0, len(s.Snapshots))}
	// Newest first, like every other list.
	for i := len(s.Snapshots) - 1; i >= 0; i-- {
		out.Data = append(out.Data, s.Snapshots[i])
	}
	return http.StatusOK, out, nil
}

// listServerIPs lists the server's static address with its PTR name; a DHCP
// server (no recorded address) has none to show.
func (a *API) listServerIPs(rq *request) (int, any, error) {
	s, err := a.loadServer(rq)
	if err != nil {
		return 0, nil, err
	}
	zones, err := a.reverseZones()
	if err != nil {
		return 0, nil, err
	}
	out := api.ServerIPList{Data: []api.ServerIP{}}
	if s.Status != api.ServerTerminated {
		out.Data = ipViews(s, zones)
	}
	return http.StatusOK, out, nil
}

// ipViews are the views of a server's addresses, with their reverse DNS
// (zoneHosted, ptrSync) from the mapped reverse zones.
func ipViews(s store.Server, zones []store.ReverseZone) []api.ServerIP {
	out := []api.ServerIP{}
	for _, ip := range fsm.ServerAddrs(s) {
		out = append(out, fsm.WithReverseDNS(fsm.ServerIPView(s, ip), s, ip, zones))
	}
	return out
}

// listAccountIPs pages every address of the account's servers that are not
// terminated, grouped per server, newest server first, with PTR names
// (444host's all-ips); page and limit as for GET /v1/servers.
func (a *API) listAccountIPs(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, serverIDPrefix, func(r store.ReadTx, owner string, at store.PageAt, limit int) ([]api.ServerIPGroup, int, string, error) {
		ss, total, next, err := r.LiveServersAt(owner, at, limit)
		if err != nil {
			return nil, 0, "", err
		}
		zones, err := r.ReverseZones()
		if err != nil {
			return nil, 0, "", err
		}
		out := make([]api.ServerIPGroup, 0, len(ss))
		for _, s := range ss {
			out = append(out, api.ServerIPGroup{ServerID: s.ID, Label: s.Label, IPs: ipViews(s, zones)})
		}
		return out, total, next, nil
	}, same[api.ServerIPGroup])
}

func (a *API) getAction(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid(actionIDPrefix, id) {
		return 0, nil, notFound("action")
	}
	act, err := readOne(a, "action", func(r store.ReadTx) (store.Action, error) { return r.Action(id) })
	// The scope that reads the action's resource (the route lets either in).
	read := api.ScopeServersRead
	if err == nil && act.ResourceType == fsm.ResourceHosting {
		read = api.ScopeHostingRead
	}
	read = a.brand.Scope(read)
	if err == nil && (act.AccountID != rq.caller.accountID || !auth.HasScope(rq.caller.scopes, read)) {
		return 0, nil, notFound("action")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, publicAction(act), nil
}
