package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

const hostingIDPrefix = "hst"

func (a *API) hostingRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/hosting", Scope: api.ScopeHostingRead, handler: a.listHosting},
		{Method: "GET", Path: "/v1/hosting/{id}", Scope: api.ScopeHostingRead, handler: a.getHosting},
		{Method: "POST", Path: "/v1/hosting/{id}/suspend", Scope: api.ScopeHostingWrite, Idempotent: true, handler: a.suspendHosting, replay: a.hostingActionReplay},
		{Method: "POST", Path: "/v1/hosting/{id}/unsuspend", Scope: api.ScopeHostingWrite, Idempotent: true, handler: a.unsuspendHosting, replay: a.hostingActionReplay},
		{Method: "PUT", Path: "/v1/hosting/{id}/php", Scope: api.ScopeHostingWrite, Idempotent: true, handler: a.setHostingPHP, replay: a.hostingActionReplay},
		// Not Idempotent on purpose, as POST /v1/servers/{id}/password-reset:
		// the new passwords are only in the live response, so a replay would
		// say "accepted" without them and lock the customer out. A retry
		// makes new passwords (while the first runs, a 409 action_in_progress).
		{Method: "POST", Path: "/v1/hosting/{id}/password-reset", Scope: api.ScopeHostingWrite, handler: a.resetHostingPassword},
		{Method: "DELETE", Path: "/v1/hosting/{id}", Scope: api.ScopeHostingDestroy, Idempotent: true, handler: a.deleteHosting, replay: a.hostingActionReplay},
	}
}

// hostingView is the customer view of a stored account (no node name): its
// connection details are its node's as the node reported them (its public
// host name, its sshd's and MariaDB's ports), or the defaults (the
// account's domain, 22, 3306) while the node has reported none
// (api.HostingConnection); the database is reached from the account's PHP
// on the node.
func (a *API) hostingView(h store.HostingAccount) api.HostingAccount {
	return hostingViewOn(h, a.nodeHostingConnection(h.NodeID))
}

// hostingViews is hostingView for the accounts of a list: each node read once.
func (a *API) hostingViews() func(store.HostingAccount) api.HostingAccount {
	conns := map[string]*api.NodeHostingConnection{}
	return func(h store.HostingAccount) api.HostingAccount {
		c, ok := conns[h.NodeID]
		if !ok {
			c = a.nodeHostingConnection(h.NodeID)
			conns[h.NodeID] = c
		}
		return hostingViewOn(h, c)
	}
}

// nodeHostingConnection is what node nodeID reported of its connection
// details (nil: none, or no such node).
func (a *API) nodeHostingConnection(nodeID string) *api.NodeHostingConnection {
	var c *api.NodeHostingConnection
	if nodeID == "" {
		return nil
	}
	_ = a.state.Read(func(r store.ReadTx) error {
		if n, err := r.AgentNode(nodeID); err == nil {
			c = n.HostingConnection
		}
		return nil
	})
	return c
}

// hostingViewOn is the customer view of h on a node that reported conn.
func hostingViewOn(h store.HostingAccount, conn *api.NodeHostingConnection) api.HostingAccount {
	v := h.HostingAccount
	v.Connection = hostingConnection(h, conn)
	v.Quota.DiskMiB = h.Limits.DiskMiB
	return v
}

// hostingConnection is the connection details of account h on a node that
// reported conn (nil: it reported none): the node's public host name, else
// the account's domain; the node's sshd port, else 22; its MariaDB's TCP
// port as it reported it: 0 when MariaDB takes no TCP connections
// (skip_networking) or could not be asked yet, never a port nothing may
// listen on (3306 only while the node reported nothing). db_network says
// which a 0 is when the node knows (socket_only), else unknown.
func hostingConnection(h store.HostingAccount, conn *api.NodeHostingConnection) api.HostingConnection {
	out := api.HostingConnection{SFTPHost: h.Domain, SFTPPort: api.DefaultSFTPPort, SFTPUser: h.Username,
		DBHost: "localhost", DBPort: api.DefaultDBPort, DBNetwork: api.DBNetworkUnknown, DBName: h.Username, DBUser: h.Username}
	if conn == nil {
		return out
	}
	if conn.SFTPHost != "" {
		out.SFTPHost = conn.SFTPHost
	}
	if conn.SFTPPort != 0 {
		out.SFTPPort = conn.SFTPPort
	}
	out.DBPort = conn.DBPort
	switch {
	case conn.DBPort != 0:
		out.DBNetwork = api.DBNetworkTCP
	case conn.DBKnown:
		out.DBNetwork = api.DBNetworkSocketOnly
	}
	return out
}

func (a *API) loadHosting(rq *request) (store.HostingAccount, error) {
	return readOwned(a, rq, hostingIDPrefix, "hosting account", store.ReadTx.OwnedHostingAccount)
}

func (a *API) listHosting(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, hostingIDPrefix, store.ReadTx.HostingAccountsAt, a.hostingViews())
}

func (a *API) getHosting(rq *request) (int, any, error) {
	h, err := a.loadHosting(rq)
	if err != nil {
		return 0, nil, err
	}
	v := a.hostingView(h)
	if d, err := readOne(a, "custom domain", func(r store.ReadTx) (store.CustomDomain, error) {
		return r.CustomDomain(rq.caller.accountID, h.ID)
	}); err == nil {
		v.CustomDomain = &api.HostingCustomDomain{Domain: d.Domain, Status: d.Status, Certificate: d.Certificate}
	}
	return http.StatusOK, v, nil
}

// DecodeHostingPHP validates a PUT /v1/hosting/:id/php body.
func DecodeHostingPHP(body []byte) (api.HostingPHPRequest, error) {
	return decodeChecked(body, func(req *api.HostingPHPRequest) error {
		if req.PHPVersion == "" {
			return invalidField("php_version", "is required")
		}
		if validate.PHPVersion(req.PHPVersion) != nil {
			return invalidField("php_version", "must be a PHP version such as 8.2")
		}
		return nil
	})
}

// startHostingAction commits a hosting action and wakes the dispatcher.
func (a *API) startHostingAction(rq *request, deps *ServerDeps, h store.HostingAccount, command string, params action.Params, php string) (int, any, error) {
	enc, err := action.Encode(params)
	if err != nil {
		return 0, nil, err
	}
	act := store.Action{
		Action:    api.Action{ID: ids.New(actionIDPrefix, rq.now), Command: command, ResourceType: fsm.ResourceHosting, ResourceID: h.ID},
		AccountID: rq.caller.accountID, NodeID: h.NodeID, Target: h.Username, Params: enc, Mutating: true,
		Deadline: rq.now.Add(deps.actionDeadline()),
	}
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdHostingAction, fsm.HostingAction{Action: act, PHPVersion: php}, http.StatusAccepted)
	if err != nil {
		return 0, nil, err
	}
	if acc, ok := v.(api.HostingActionAccepted); ok && acc.Hosting != nil {
		hv := a.hostingView(store.HostingAccount{HostingAccount: *acc.Hosting, NodeID: h.NodeID})
		acc.Hosting = &hv
		v = acc
	} else if raw, ok := v.(json.RawMessage); ok { // the FSM replayed a record it already held
		v = a.hostingActionReplay(rq, raw)
	}
	deps.Kick()
	return status, v, nil
}

// simpleHostingAction starts a hosting action without parameters: the account
// resolved first (404), then the dispatcher (503), then the empty body.
func (a *API) simpleHostingAction(rq *request, command string) (int, any, error) {
	h, deps, _, err := depsAndBody(a, rq, a.loadHosting, noBody)
	if err != nil {
		return 0, nil, err
	}
	return a.startHostingAction(rq, deps, h, command, &action.None{}, "")
}

func (a *API) suspendHosting(rq *request) (int, any, error) {
	return a.simpleHostingAction(rq, api.ActionHostingSuspend)
}

func (a *API) unsuspendHosting(rq *request) (int, any, error) {
	return a.simpleHostingAction(rq, api.ActionHostingUnsuspend)
}

func (a *API) deleteHosting(rq *request) (int, any, error) {
	return a.simpleHostingAction(rq, api.ActionHostingDelete)
}

func (a *API) setHostingPHP(rq *request) (int, any, error) {
	h, deps, req, err := depsAndBody(a, rq, a.loadHosting, DecodeHostingPHP)
	if err != nil {
		return 0, nil, err
	}
	if deps.NodePHPVersions != nil {
		// An unknown list (the node has not reported one here) lets the agent
		// decide; it refuses an uninstalled version the same way.
		if vs, ok := deps.NodePHPVersions(h.NodeID); ok && !slices.Contains(vs, req.PHPVersion) {
			return 0, nil, invalidField("php_version", "names PHP %s, which is not installed for this account; installed: %s", req.PHPVersion, strings.Join(vs, ", "))
		}
	}
	return a.startHostingAction(rq, deps, h, api.ActionHostingSetPHP, &action.HostingPHP{PHPVersion: req.PHPVersion}, req.PHPVersion)
}

// DecodeHostingPasswordReset validates the optional body of POST
// /v1/hosting/:id/password-reset: none or {} is "both".
func DecodeHostingPasswordReset(body []byte) (api.HostingPasswordResetRequest, error) {
	var req api.HostingPasswordResetRequest
	if len(bytes.TrimSpace(body)) == 0 {
		req.Target = api.HostingPasswordBoth
		return req, nil
	}
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if req.Target == "" {
		req.Target = api.HostingPasswordBoth
	}
	if err := oneOf("target", req.Target, api.HostingPasswordTargets); err != nil {
		return req, err
	}
	return req, nil
}

// resetHostingPassword opens a hosting.password_reset: fresh passwords
// (made as the hosting order makes them) ride in the action's secret to the
// node, are put in the dispatcher before the proposal (the node may ask for
// them as soon as the entry commits), dropped when nothing was committed,
// and returned in this response only. The log, the FSM and the journal on
// the node hold no password (the node journals hashes).
func (a *API) resetHostingPassword(rq *request) (int, any, error) {
	h, deps, req, err := depsAndBody(a, rq, a.loadHosting, DecodeHostingPasswordReset)
	if err != nil {
		return 0, nil, err
	}
	return a.openHostingPasswordReset(h, req.Target, deps, rq.now, "customer", func(p fsm.HostingPasswordReset) (int, any, error) {
		return a.propose(rq.Context(), rq, fsm.CmdHostingPasswordReset, p, http.StatusAccepted)
	})
}

// openHostingPasswordReset makes the new passwords of target for h, puts
// them in the dispatcher, proposes the action with propose and answers the
// passwords with it; by names who asked in the log line (never a password).
func (a *API) openHostingPasswordReset(h store.HostingAccount, target string, deps *ServerDeps, now time.Time, by string,
	propose func(fsm.HostingPasswordReset) (int, any, error)) (int, any, error) {
	if err := hostingResettable(h); err != nil {
		return 0, nil, err
	}
	secrets := map[string]string{}
	var err error
	if target != api.HostingPasswordDB {
		if secrets[action.SecretSFTPPassword], err = newPassword(); err != nil {
			return 0, nil, err
		}
	}
	if target != api.HostingPasswordSFTP {
		if secrets[action.SecretDBPassword], err = newPassword(); err != nil {
			return 0, nil, err
		}
	}
	params, err := action.Encode(&action.HostingPasswordReset{Target: target})
	if err != nil {
		return 0, nil, err
	}
	sec, err := action.EncodeSecrets(api.ActionHostingPasswordReset, secrets)
	if err != nil {
		return 0, nil, err
	}
	act := store.Action{
		Action:    api.Action{ID: ids.New(actionIDPrefix, now), Command: api.ActionHostingPasswordReset, ResourceType: fsm.ResourceHosting, ResourceID: h.ID},
		AccountID: h.AccountID, NodeID: h.NodeID, Target: h.Username, Params: params, NeedsSecret: true, Mutating: true,
		Deadline: now.Add(deps.actionDeadline()),
	}
	deps.PutSecret(act.ID, sec)
	status, v, err := propose(fsm.HostingPasswordReset{Action: act})
	if err != nil {
		deps.DropSecret(act.ID)
		return 0, nil, err
	}
	acc, ok := v.(api.HostingActionAccepted)
	if !ok {
		// Not ours (the route takes no Idempotency-Key, so this does not
		// happen): show no password for an action that was not created.
		deps.DropSecret(act.ID)
		return status, v, nil
	}
	out := api.HostingPasswordResetAccepted{Action: acc.Action, Hosting: acc.Hosting,
		SFTPPassword: secrets[action.SecretSFTPPassword], DBPassword: secrets[action.SecretDBPassword]}
	if out.Hosting != nil {
		hv := a.hostingView(store.HostingAccount{HostingAccount: *out.Hosting, NodeID: h.NodeID})
		out.Hosting = &hv
	}
	deps.Kick()
	a.log.Info("hosting password reset", "hosting", h.ID, "account", h.AccountID, "by", by, "target", target, "action", act.ID)
	return status, out, nil
}

// hostingResettable refuses, before any password is made, an account whose
// state cannot take a reset (the FSM checks the same on apply, with the same
// codes).
func hostingResettable(h store.HostingAccount) error {
	switch {
	case h.Status == api.HostingSuspended || h.Suspension != nil:
		return errf(http.StatusConflict, "suspended", "hosting account %s is suspended: unsuspend it first to reset its passwords", h.ID)
	case h.Status == api.HostingProvisioning:
		return errf(http.StatusConflict, fsm.CodeHostingNotActive, "hosting account %s is still being provisioned; its passwords can be reset once it is active", h.ID)
	case h.Status == api.HostingError:
		return errf(http.StatusConflict, fsm.CodeHostingNotActive, "hosting account %s failed to provision; it can only be deleted", h.ID)
	case h.Status != api.HostingActive:
		return errf(http.StatusConflict, fsm.CodeHostingNotActive, "hosting account %s is %s, not active: its passwords cannot be reset", h.ID, h.Status)
	}
	return nil
}

// DecodeAdminHostingCreate validates an admin hosting create request; every
// error names its field.
func DecodeAdminHostingCreate(body []byte) (api.AdminHostingCreateRequest, api.HostingPlanInfo, error) {
	var plan api.HostingPlanInfo
	req, err := decodeChecked(body, func(req *api.AdminHostingCreateRequest) (err error) {
		if plan, err = adminAccountPlan(req.AccountID, req.Plan, api.DefaultHostingPlans, func(p api.HostingPlanInfo) string { return p.Slug }); err != nil {
			return err
		}
		d, err := hostingFields(req.Domain, req.Username, req.PHPVersion)
		if err != nil {
			return err
		}
		req.Domain = d
		if req.NodeID != "" && validate.NodeID(req.NodeID) != nil {
			return invalidField("node_id", "is not a node id")
		}
		return locationField(req.Location)
	})
	return req, plan, err
}

// hostingFields checks the domain, username and optional PHP version of a
// new hosting account (each error names its field) and returns the domain
// in its canonical form.
func hostingFields(domain, username, php string) (string, error) {
	d, err := validate.HostingDomainInput(domain)
	if err != nil {
		return "", invalidField("domain", "%s", validate.Reason(err))
	}
	if err := validate.NewHostingUsername(username); err != nil {
		return "", invalidField("username", "%s", validate.Reason(err))
	}
	if php != "" && validate.PHPVersion(php) != nil {
		return "", invalidField("php_version", "must be a PHP version such as 8.2")
	}
	return d, nil
}

// DecodeHostingOrder validates POST /v1/hosting; every refusal names its
// field.
func DecodeHostingOrder(body []byte) (api.HostingOrderRequest, error) {
	var req api.HostingOrderRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if err := orderPlanSlug(req.PlanSlug); err != nil {
		return req, err
	}
	d, err := hostingFields(req.Domain, req.Username, req.PHPVersion)
	if err != nil {
		return req, err
	}
	req.Domain = d
	if err := orderLocation(req.Location); err != nil {
		return req, err
	}
	return req, nil
}

// orderHosting buys a hosting account from the wallet: placement here (on
// the leader), then one command that prices, debits, invoices, creates the
// account with the product's quotas and opens its hosting.create, or
// changes nothing.
func (a *API) orderHosting(rq *request) (int, any, error) {
	req, err := DecodeHostingOrder(rq.body)
	if err != nil {
		return 0, nil, err
	}
	if err := a.domainNotReserved(req.Domain); err != nil {
		return 0, nil, err
	}
	deps, cfg, err := a.orderDeps()
	if err != nil {
		return 0, nil, err
	}
	// The product, the order's locations and the placement are read in one
	// transaction, refusing as the steps did one after the other (the
	// product first, then the account, the names, the nodes).
	hreq := api.AdminHostingCreateRequest{AccountID: rq.caller.accountID, Domain: req.Domain, Username: req.Username, PHPVersion: req.PHPVersion}
	var prod api.AdminProduct
	var locations []string
	var hc hostingCands
	if err := a.state.Read(func(r store.ReadTx) (err error) {
		if prod, err = a.orderableIn(r, req.PlanSlug, api.ProductHosting, req.Location); err != nil {
			return err
		}
		locations = orderLocationsAt(r.ClusterLevel(), prod, req.Location)
		hc, err = hostingCandidatesIn(r, hreq, locations, deps, cfg)
		return err
	}); err != nil {
		return 0, nil, a.scrubPlacement(rq, err)
	}
	hreq.Plan = prod.Slug
	create, sftpPW, dbPW, err := makeHostingCreate(hreq, api.HostingPlanInfo{Slug: prod.Slug, HostingPlan: fsm.HostingPlanOf(prod)}, locations, hc, deps, rq.now)
	if err != nil {
		return 0, nil, a.scrubPlacement(rq, err)
	}
	status, replay, out, err := proposeOrder[api.HostingOrder](a, rq, deps, fsm.CmdHostingOrder, create.Action.ID, func(o fsm.OrderCharge) any {
		return fsm.HostingOrder{OrderCharge: o, Create: create}
	}, prod.Slug, "hosting order")
	if err != nil {
		// A node moved out of the order's location before the command
		// applied is a NoCapacityError naming the node: scrubbed as for
		// a server order.
		return status, nil, a.scrubPlacement(rq, err)
	}
	if replay != nil {
		return status, a.hostingOrderReplay(rq, replay), nil
	}
	out.Hosting = a.hostingView(store.HostingAccount{HostingAccount: out.Hosting, NodeID: create.Hosting.NodeID})
	out.SFTPPassword, out.DBPassword = sftpPW, dbPW
	a.log.Info("hosting ordered", "hosting", out.Hosting.ID, "account", rq.caller.accountID, "plan", prod.Slug,
		"invoice", out.Invoice.Number, "amount_usd_cents", out.Invoice.TotalUsdCents, "action", create.Action.ID)
	return status, out, nil
}

// hostingOrderReplay is a hosting order's answer replayed for its
// Idempotency-Key: the command's stored answer (without the passwords) with
// the account's connection details and disk allowance as the first answer
// gave them (hostingView). The stored answer holds the record's own, empty
// connection: replayed as it was, its sftp_host, ports and db_network were
// empty or missing (review56). An answer that does not decode, or whose
// account is gone, is replayed as it is.
func (a *API) hostingOrderReplay(rq *request, replay any) any {
	raw, ok := replay.(json.RawMessage)
	if !ok {
		return replay
	}
	var o api.HostingOrder
	if json.Unmarshal(raw, &o) != nil || o.Hosting.ID == "" {
		return replay
	}
	hv, ok := a.replayedHostingView(rq, o.Hosting)
	if !ok {
		return replay
	}
	o.Hosting = hv
	return o
}

// hostingActionReplay is the answer of a hosting action (suspend,
// unsuspend, PHP version, delete) replayed for its Idempotency-Key, as
// hostingOrderReplay: the stored answer's account with its connection
// details and disk allowance as the first answer gave them. Replayed as
// stored, its connection was all empty (sftp_host "", ports 0, no
// db_network) and its disk allowance 0 (probe58).
func (a *API) hostingActionReplay(rq *request, replay any) any {
	raw, ok := replay.(json.RawMessage)
	if !ok {
		return replay
	}
	var acc api.HostingActionAccepted
	if json.Unmarshal(raw, &acc) != nil || acc.Hosting == nil || acc.Hosting.ID == "" {
		return replay
	}
	hv, ok := a.replayedHostingView(rq, *acc.Hosting)
	if !ok {
		return replay
	}
	acc.Hosting = &hv
	return acc
}

// replayedHostingView is the customer view (hostingView) of h, an account as
// a stored answer holds it, on the node the caller's account h is on; false
// when the caller has no such account.
func (a *API) replayedHostingView(rq *request, h api.HostingAccount) (api.HostingAccount, bool) {
	var rec store.HostingAccount
	if err := a.state.Read(func(r store.ReadTx) (err error) {
		rec, err = r.OwnedHostingAccount(rq.caller.accountID, h.ID)
		return err
	}); err != nil {
		return api.HostingAccount{}, false
	}
	rec.HostingAccount = h
	return a.hostingView(rec), true
}

// quoteHosting prices a hosting order body without ordering. A username or
// domain another hosting account holds is the order's 409 naming it, not a
// price: before, the quote priced an order that could only be refused, and
// an MCP client asked its user to confirm it.
func (a *API) quoteHosting(rq *request) (int, any, error) {
	req, err := DecodeHostingOrder(rq.body)
	if err != nil {
		return 0, nil, err
	}
	// A username or domain another hosting account holds is checked where
	// the order checks it: after the product, before placement.
	return a.quote(rq, req.PlanSlug, api.ProductHosting, req.Location, func() error {
		if err := a.domainNotReserved(req.Domain); err != nil {
			return err
		}
		return a.state.Read(func(r store.ReadTx) error { return hostingNamesFree(r, req.Username, req.Domain) })
	})
}

// hostingNamesFree refuses a new hosting account's username or domain that
// a live hosting account holds: a 409 naming the field.
func hostingNamesFree(r store.ReadTx, username, domain string) error {
	if r.HostingUsernameTaken(username) != "" {
		return errf(http.StatusConflict, "conflict", "field \"username\": username %s is taken", username)
	}
	if r.HostingDomainTaken(domain) != "" {
		return errf(http.StatusConflict, "conflict", "field \"domain\": domain %s is already served by a hosting account", domain)
	}
	return nil
}

// hostingAdminRoutes adds the operator's hosting routes (leader only).
func (a *API) hostingAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler, cfg ServerAdminConfig) {
	mux.Handle("POST /admin/hosting", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		return a.adminCreateHosting(r, body, now, cfg)
	}))
	// An operator's reset for a customer who lost the passwords
	// (hostplanectl hosting password-reset): the same action and refusals
	// as the customer's route, the passwords in this answer only.
	mux.Handle("POST /admin/hosting/{id}/password-reset", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		var h store.HostingAccount
		if err := a.state.Read(func(rt store.ReadTx) (err error) { h, err = rt.HostingAccountByID(r.PathValue("id")); return }); err != nil {
			return 0, nil, err
		}
		req, err := DecodeHostingPasswordReset(body)
		if err != nil {
			return 0, nil, err
		}
		deps, err := a.serverDeps()
		if err != nil {
			return 0, nil, err
		}
		return a.openHostingPasswordReset(h, req.Target, deps, now, "operator", func(p fsm.HostingPasswordReset) (int, any, error) {
			v, err := a.adminApply(r.Context(), fsm.CmdHostingPasswordReset, now, p)
			return http.StatusAccepted, v, err
		})
	}))
	mux.Handle("GET /admin/hosting", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		var hs []store.HostingAccount
		if err := a.state.Read(func(rt store.ReadTx) (err error) {
			if err := accountFilter(rt, r.URL.Query().Get("account")); err != nil {
				return err
			}
			hs, err = rt.AllHostingAccounts()
			return
		}); err != nil {
			return 0, nil, err
		}
		out := []api.AdminHostingAccount{}
		view := a.hostingViews()
		for _, h := range hs {
			if acc := r.URL.Query().Get("account"); acc == "" || acc == h.AccountID {
				v := h.Admin()
				v.HostingAccount = view(h)
				out = append(out, v)
			}
		}
		return http.StatusOK, out, nil
	}))
}

// adminCreateHosting places a hosting account on a connected hosting node
// (the one holding the fewest accounts, or the one named) and starts its
// hosting.create; the SFTP and database passwords ride in the action's
// secret to the node and are returned here once.
func (a *API) adminCreateHosting(r *http.Request, body []byte, now time.Time, cfg ServerAdminConfig) (int, any, error) {
	deps, req, plan, err := decodeAdminCreate(a, body, DecodeAdminHostingCreate)
	if err != nil {
		return 0, nil, err
	}
	// An operator's location places it as an order's does (and as
	// hostplanectl server create --location places a server).
	var locations []string
	if req.Location != "" {
		locations = []string{req.Location}
	}
	create, sftpPW, dbPW, err := a.prepareHostingCreate(req, plan, locations, deps, cfg, now)
	if err != nil {
		return 0, nil, err
	}
	out, err := applyPlaced[api.AdminHostingCreated](a, r, deps, fsm.CmdHostingCreate, now, create, create.Action.ID, "admin hosting create")
	if err != nil {
		return 0, nil, err
	}
	out.Hosting = a.hostingView(store.HostingAccount{HostingAccount: out.Hosting, NodeID: create.Hosting.NodeID})
	out.SFTPPassword, out.DBPassword = sftpPW, dbPW
	a.log.Info("hosting account placed", "hosting", create.Hosting.ID, "node", create.Hosting.NodeID, "account", req.AccountID, "plan", plan.Slug, "action", create.Action.ID)
	return http.StatusCreated, out, nil
}

// prepareHostingCreate places a new hosting account (hostingCandidatesIn,
// hostingCands.choose) and makes its create command; the SFTP and database
// passwords ride in the action's secret to the node, put in the dispatcher
// here (the caller drops it when the command is refused) and returned to be
// shown once.
// locations, when set, are the node locations it may be placed in.
func (a *API) prepareHostingCreate(req api.AdminHostingCreateRequest, plan api.HostingPlanInfo, locations []string, deps *ServerDeps, cfg ServerAdminConfig, now time.Time) (fsm.HostingCreate, string, string, error) {
	var hc hostingCands
	if err := a.state.Read(func(r store.ReadTx) (err error) {
		hc, err = hostingCandidatesIn(r, req, locations, deps, cfg)
		return err
	}); err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	return makeHostingCreate(req, plan, locations, hc, deps, now)
}

// makeHostingCreate is prepareHostingCreate among the candidates
// hostingCandidatesIn read.
func makeHostingCreate(req api.AdminHostingCreateRequest, plan api.HostingPlanInfo, locations []string, hc hostingCands, deps *ServerDeps, now time.Time) (fsm.HostingCreate, string, string, error) {
	nodeID, php, loc, err := hc.choose(req)
	if err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	sftpPW, err := newPassword()
	if err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	dbPW, err := newPassword()
	if err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	hstID, actID := ids.New(hostingIDPrefix, now), ids.New(actionIDPrefix, now)
	params, err := action.Encode(&action.HostingCreate{Domain: req.Domain, PHPVersion: php, Plan: plan.HostingPlan})
	if err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	secret, err := action.EncodeSecrets(api.ActionHostingCreate, map[string]string{action.SecretSFTPPassword: sftpPW, action.SecretDBPassword: dbPW})
	if err != nil {
		return fsm.HostingCreate{}, "", "", err
	}
	h := store.HostingAccount{
		HostingAccount: api.HostingAccount{ID: hstID, Username: req.Username, Domain: req.Domain, Plan: plan.Slug,
			PHPVersion: php, Limits: plan.HostingPlan, Location: loc},
		AccountID: req.AccountID, NodeID: nodeID,
	}
	act := store.Action{
		Action: api.Action{ID: actID, Command: api.ActionHostingCreate, ResourceType: fsm.ResourceHosting, ResourceID: hstID},
		NodeID: nodeID, Target: req.Username, Params: params, NeedsSecret: true, Mutating: true,
		Deadline: now.Add(deps.actionDeadline()),
	}
	deps.PutSecret(actID, secret)
	// The locations go in the command too, checked again at apply (level 2).
	return fsm.HostingCreate{Hosting: h, Action: act, Locations: locations}, sftpPW, dbPW, nil
}

// Hosting placement picks the node and PHP version: connected, not
// cordoned nodes with the hosting role (only req.NodeID when given) that
// offer the version asked for (default: each node's newest); the fewest
// accounts wins. hostingCandidatesIn reads the nodes that could take the
// account (refusing a missing account or a taken username or domain), and
// hostingCands.choose picks among them: the node, the PHP version and the
// node's location, which the account records and shows as a server does (a
// node has one only from semantics level 2, CmdNodeLocation, so no
// coordinator that would not keep the field applies a command carrying it).

// hostingCands is what hostingCandidatesIn read: the nodes that can take
// the account, and why the others cannot.
type hostingCands struct {
	cands        []hostingCand
	reasons      []string
	installed    []string // every version the nodes that could take the account offer
	reconnecting bool
}

// hostingCand is a node that can take a hosting account: its id, the PHP
// version the account gets there, its location and how many accounts it
// holds.
type hostingCand struct {
	id, php, loc string
	n            int
}

// hostingCandidatesIn reads in r the nodes a hosting account of req may go
// to, within locations.
func hostingCandidatesIn(r store.ReadTx, req api.AdminHostingCreateRequest, locations []string, deps *ServerDeps, cfg ServerAdminConfig) (hostingCands, error) {
	var hc hostingCands
	if !r.AccountExists(req.AccountID) {
		return hc, fmt.Errorf("account %s: %w", req.AccountID, fsm.ErrNotFound)
	}
	if err := hostingNamesFree(r, req.Username, req.Domain); err != nil {
		return hc, err
	}
	nodes, err := placementNodes(r, req.NodeID)
	if err != nil {
		return hc, err
	}
	for _, n := range nodes {
		if why := placement.Outside(n.Location, locations); why != "" {
			hc.reasons = append(hc.reasons, n.ID+": "+why)
			continue
		}
		live := withLive(n, cfg.Nodes)
		if !slices.Contains(n.Roles, api.RoleHosting) || n.State == api.AgentNodeRemoved || n.Cordoned || !live.Connected {
			hc.reasons = append(hc.reasons, n.ID+": not a connected, schedulable hosting node")
			// Ready but not connected to this leader: reconnecting (placement.ErrReconnecting).
			hc.reconnecting = hc.reconnecting || slices.Contains(n.Roles, api.RoleHosting) && n.State == api.AgentNodeReady && !n.Cordoned
			continue
		}
		var vs []string
		if deps.NodePHPVersions != nil {
			vs, _ = deps.NodePHPVersions(n.ID)
		}
		php := req.PHPVersion
		switch {
		case len(vs) == 0:
			hc.reasons = append(hc.reasons, n.ID+": reported no PHP-FPM versions")
			continue
		case php == "":
			php = vs[len(vs)-1]
		case !slices.Contains(vs, php):
			hc.reasons = append(hc.reasons, fmt.Sprintf("%s: PHP %s not installed (installed: %s)", n.ID, php, strings.Join(vs, ", ")))
			for _, v := range vs {
				if !slices.Contains(hc.installed, v) {
					hc.installed = append(hc.installed, v)
				}
			}
			continue
		}
		hc.cands = append(hc.cands, hostingCand{id: n.ID, php: php, loc: n.Location, n: r.NodeHostingCount(n.ID)})
	}
	return hc, nil
}

// choose picks the node for req among hc: its id, the PHP version and its
// location, or the refusal.
func (hc hostingCands) choose(req api.AdminHostingCreateRequest) (string, string, string, error) {
	cands, reasons, installed := hc.cands, hc.reasons, hc.installed
	if req.NodeID != "" && len(cands) == 0 && len(reasons) == 0 {
		return "", "", "", notFound("node " + req.NodeID)
	}
	if len(cands) == 0 && hc.reconnecting {
		return "", "", "", errf(http.StatusServiceUnavailable, "node_reconnecting", "%s: %s; retry in a few seconds", placement.ErrReconnecting, strings.Join(reasons, "; "))
	}
	if len(cands) == 0 {
		if req.PHPVersion != "" && len(reasons) > 0 && strings.Contains(strings.Join(reasons, ""), "not installed") {
			// A customer's answer names no node (SPEC: backbone-scrubbed).
			slices.Sort(installed)
			return "", "", "", invalidField("php_version", "names PHP %s, which no hosting node that can take the account has; installed: %s", req.PHPVersion, strings.Join(installed, ", "))
		}
		return "", "", "", errf(http.StatusConflict, "no_capacity", "no hosting node can take the account: %s", strings.Join(append(reasons, "(none enrolled)")[:max(1, len(reasons))], "; "))
	}
	slices.SortStableFunc(cands, func(x, y hostingCand) int { return x.n - y.n })
	return cands[0].id, cands[0].php, cands[0].loc, nil
}
