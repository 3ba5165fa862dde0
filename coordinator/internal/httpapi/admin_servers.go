package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
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

// ServerAdminConfig is the placement policy of admin server creation.
type ServerAdminConfig struct {
	// VMPrefix starts every libvirt domain name this cluster creates ("hp-").
	VMPrefix      string
	CPUOvercommit float64
	Nodes         NodeDeps
	// PlanAddrs is how many pool addresses each plan's servers get (a plan
	// not named gets DefaultPlanAddrs).
	PlanAddrs map[string]PlanAddrs
}

var (
	vmPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)
	networkRE  = regexp.MustCompile(`^(user|network:[A-Za-z0-9_.-]{1,64}|bridge:[A-Za-z0-9_.-]{1,15})$`)
)

// ValidVMPrefix checks the --vm-name-prefix setting.
func ValidVMPrefix(p string) bool { return vmPrefixRE.MatchString(p) }

// adminAccountPlan checks an operator create's account id and finds the
// plan it names among plans (each refusal a 400 naming its field; the plan
// one lists the slugs).
func adminAccountPlan[P any](accountID, slug string, plans []P, slugOf func(P) string) (P, error) {
	var none P
	if !ids.Valid("acc", accountID) {
		return none, invalidField("account_id", "must be an account id (acc_…)")
	}
	slugs := make([]string, 0, len(plans))
	for _, p := range plans {
		if slugOf(p) == slug {
			return p, nil
		}
		slugs = append(slugs, slugOf(p))
	}
	return none, invalidField("plan", "must be one of %s", strings.Join(slugs, ", "))
}

// DecodeAdminServerCreate validates an admin server create request.
func DecodeAdminServerCreate(body []byte) (api.AdminServerCreateRequest, api.ServerPlan, error) {
	var plan api.ServerPlan
	req, err := decodeChecked(body, func(req *api.AdminServerCreateRequest) (err error) {
		if plan, err = adminAccountPlan(req.AccountID, req.Plan, api.DefaultPlans, func(p api.ServerPlan) string { return p.Slug }); err != nil {
			return err
		}
		if err := templateName("template", req.Template); err != nil {
			return err
		}
		if req.OS == "" {
			req.OS, _, _ = strings.Cut(req.Template, "-")
		}
		if err := firstErr(text("os", req.OS, 1, maxOSName), nameChars("os", req.OS)); err != nil {
			return err
		}
		if err := checkLabel(req.Label, 0); err != nil {
			return err
		}
		if req.Hostname != "" {
			h, err := validate.HostnameInput(req.Hostname)
			if err != nil {
				return invalidField("hostname", "%s", validate.Reason(err))
			}
			req.Hostname = h
		}
		if err := sshKeys(req.SSHKeys); err != nil {
			return err
		}
		if req.NodeID != "" && validate.NodeID(req.NodeID) != nil {
			return invalidField("node_id", "is not a node id")
		}
		if err := locationField(req.Location); err != nil {
			return err
		}
		if req.IPv4 != "" {
			if p, err := netip.ParsePrefix(req.IPv4); err != nil || !p.Addr().Is4() {
				return invalidField("ipv4", "must be an IPv4 address in CIDR form, e.g. 192.0.2.10/24")
			}
		}
		if req.Gateway4 != "" {
			if a, err := netip.ParseAddr(req.Gateway4); err != nil || !a.Is4() || req.IPv4 == "" {
				return invalidField("gateway4", "must be an IPv4 address, and needs ipv4")
			}
		}
		if req.Network != "" && !networkRE.MatchString(req.Network) {
			return invalidField("network", `must be "user", "network:NAME" or "bridge:NAME"`)
		}
		return nil
	})
	return req, plan, err
}

// ServerAdmin adds the admin server routes and node scheduling to an admin
// handler. All run on the leader (placement needs its live sessions).
func (a *API) ServerAdmin(next http.Handler, cfg ServerAdminConfig) http.Handler {
	if cfg.VMPrefix == "" {
		cfg.VMPrefix = "hp-"
	}
	mux := a.newAdminMux()
	leader := func(h adminFunc) http.Handler { return a.adminWrap(h, true) }
	mux.Handle("POST /admin/servers", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		return a.adminCreateServer(r, body, now, cfg)
	}))
	mux.Handle("GET /admin/servers", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		return a.adminListServers(r.URL.Query().Get("account"), r.URL.Query().Get("node"))
	}))
	mux.Handle("GET /admin/servers/{id}", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		var s store.Server
		err := a.state.Read(func(rt store.ReadTx) (err error) { s, err = rt.Server(r.PathValue("id")); return })
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, s.Admin(), nil
	}))
	mux.Handle("GET /admin/nodes/{id}/detail", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		return a.adminNodeDetail(r.PathValue("id"), cfg)
	}))
	for verb, sched := range map[string]fsm.NodeSchedule{
		"cordon": {Cordoned: true}, "uncordon": {}, "drain": {Cordoned: true, Draining: true},
	} {
		mux.Handle("POST /admin/nodes/{id}/"+verb, leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
			p := sched
			p.NodeID = r.PathValue("id")
			if _, err := a.adminApply(r.Context(), fsm.CmdNodeSchedule, now, p); err != nil {
				return 0, nil, err
			}
			a.log.Info("node scheduling changed", "node", p.NodeID, "action", verb)
			return a.adminNodeDetail(p.NodeID, cfg)
		}))
	}
	// PUT /admin/nodes/{id}/location {"location": "fra-1"} ("" clears it):
	// the location orders and products place servers in.
	mux.Handle("PUT /admin/nodes/{id}/location", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		req, err := decodeChecked(body, func(req *api.NodeLocationRequest) error {
			if req.Location == nil {
				return invalidField("location", `is required ("" clears it)`)
			}
			return locationField(*req.Location)
		})
		if err != nil {
			return 0, nil, err
		}
		p := fsm.NodeLocation{NodeID: r.PathValue("id"), Location: *req.Location}
		if _, err := a.adminApply(r.Context(), fsm.CmdNodeLocation, now, p); err != nil {
			return 0, nil, err
		}
		a.log.Info("node location set", "node", p.NodeID, "location", p.Location)
		return a.adminNodeDetail(p.NodeID, cfg)
	}))
	a.ipPoolRoutes(mux, leader)
	a.hostingAdminRoutes(mux, leader, cfg)
	a.suspendAdminRoutes(mux, leader)
	a.catalogueAdminRoutes(mux, leader)
	a.templateAdminRoutes(mux, leader)
	a.domainRegAdminRoutes(mux, leader)
	a.actionAdminRoutes(mux, leader)
	a.orderCfg.Store(&cfg)
	mux.Handle("/", next)
	return mux
}

func (a *API) adminListServers(accountID, nodeID string) (int, any, error) {
	out := []api.AdminServer{}
	var ss []store.Server
	err := a.state.Read(func(r store.ReadTx) (err error) {
		if err := accountFilter(r, accountID); err != nil {
			return err
		}
		if nodeID != "" {
			ss, err = r.NodeServers(nodeID)
		} else {
			ss, err = r.AllServers()
		}
		return err
	})
	for _, s := range ss {
		if accountID == "" || s.AccountID == accountID {
			out = append(out, s.Admin())
		}
	}
	return http.StatusOK, out, err
}

// accountFilter checks an admin list's ?account= filter: an account id that
// names no account is a 404 naming it, not an empty list (a mistyped id
// would look like an account with nothing).
func accountFilter(r store.ReadTx, accountID string) error {
	if accountID != "" && !r.AccountExists(accountID) {
		return notFound("account " + accountID)
	}
	return nil
}

// used sums the plans of the servers on a node.
func used(ss []store.Server) api.AgentNodeCapacity {
	var u api.AgentNodeCapacity
	for _, s := range ss {
		u = placement.Add(u, placement.Need(s.Plan))
	}
	return u
}

func (a *API) adminNodeDetail(id string, cfg ServerAdminConfig) (int, any, error) {
	var d api.AdminNodeDetail
	err := a.state.Read(func(r store.ReadTx) error {
		n, err := r.AgentNode(id)
		if err != nil {
			return err
		}
		ss, err := r.NodeServers(id)
		if err != nil {
			return err
		}
		d.AgentNode = withLive(n, cfg.Nodes)
		d.Used = used(ss)
		d.Servers = make([]api.AdminServer, 0, len(ss))
		for _, s := range ss {
			d.Servers = append(d.Servers, s.Admin())
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	d.Templates = []string{}
	if deps, err := a.serverDeps(); err == nil && deps.NodeTemplates != nil {
		if t, ok := deps.NodeTemplates(id); ok {
			d.Templates = t
		}
		if deps.NodePHPVersions != nil {
			d.PHPVersions, _ = deps.NodePHPVersions(id)
		}
	}
	return http.StatusOK, d, nil
}

// locationField checks a body's "location" by the rule of node locations.
func locationField(l string) error {
	if err := fsm.CheckLocation(l); err != nil {
		return invalidField("location", "%s", strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": location "))
	}
	return nil
}

func (a *API) adminCreateServer(r *http.Request, body []byte, now time.Time, cfg ServerAdminConfig) (int, any, error) {
	deps, req, plan, err := decodeAdminCreate(a, body, DecodeAdminServerCreate)
	if err != nil {
		return 0, nil, err
	}
	var given struct {
		OS string `json:"os"`
	}
	if _ = json.Unmarshal(body, &given); given.OS == "" {
		// No "os": the template's family, its operator label's if it has one.
		req.OS = a.templateFamily(req.Template)
	} else if family, ok := a.templateRecordedFamily(req.Template); ok && !strings.EqualFold(family, req.OS) {
		// As an order's os_family and a reinstall's os: a server showing
		// "windows" for a debian image would mislead its owner (and support).
		return 0, nil, invalidField("os", "is %q but template %s is of the %s family: give %s or leave os out", req.OS, req.Template, family, family)
	}
	var locations []string
	if req.Location != "" {
		locations = []string{req.Location}
	}
	create, password, err := a.prepareServerCreate(req, plan, locations, deps, cfg, now)
	if err != nil {
		return 0, nil, err
	}
	actID := create.Action.ID
	out, err := applyPlaced[api.AdminServerCreated](a, r, deps, fsm.CmdServerCreate, now, create, actID, "admin server create")
	if err != nil {
		return 0, nil, err
	}
	out.RootPassword = password
	a.log.Info("server placed", "server", create.Server.ID, "node", create.Server.NodeID, "account", req.AccountID, "plan", plan.Slug, "template", req.Template, "action", actID)
	return http.StatusCreated, out, nil
}

// decodeAdminCreate is the server dependencies (503 while they are not
// installed) and the body and plan of an operator's create, server or
// hosting, as decode validates them.
func decodeAdminCreate[R, P any](a *API, body []byte, decode func([]byte) (R, P, error)) (*ServerDeps, R, P, error) {
	deps, err := a.serverDeps()
	if err != nil {
		var req R
		var plan P
		return nil, req, plan, err
	}
	req, plan, err := decode(body)
	return deps, req, plan, err
}

// applyPlaced proposes an operator's create command whose action secret
// (passwords) the dispatcher already holds: refused, the secret is dropped;
// committed, the dispatcher is kicked and the result must be a T (what names
// the operation in the error otherwise).
func applyPlaced[T any](a *API, r *http.Request, deps *ServerDeps, t fsm.CommandType, now time.Time, cmd any, actionID, what string) (T, error) {
	var out T
	v, err := a.adminApply(r.Context(), t, now, cmd)
	if err != nil {
		deps.DropSecret(actionID)
		return out, err
	}
	deps.Kick()
	out, ok := v.(T)
	if !ok {
		return out, errors.New(what + ": unexpected result")
	}
	return out, nil
}

// prepareServerCreate places a new server of plan for req (the admin create
// and the order share it): it chooses the node (409 no_capacity when none
// fits), the IP pools the command allocates from, the ids, the provision
// params, and the root password, which it hands sealed to the dispatcher
// (the caller drops it with deps.DropSecret(create.Action.ID) when nothing
// was committed). The password is never in the command.
//
// locations, when set, are the node locations it may be placed in (an
// order's location or its product's; an operator's --location).
func (a *API) prepareServerCreate(req api.AdminServerCreateRequest, plan api.ServerPlan, locations []string, deps *ServerDeps, cfg ServerAdminConfig, now time.Time) (fsm.ServerCreate, string, error) {
	cands, pools, err := a.placementCandidates(req, deps, cfg)
	if err != nil {
		return fsm.ServerCreate{}, "", err
	}
	return a.placeServer(req, plan, locations, cands, pools, deps, cfg, now)
}

// placeServer is prepareServerCreate among the candidates and IP pools
// placementCandidates read.
func (a *API) placeServer(req api.AdminServerCreateRequest, plan api.ServerPlan, locations []string, cands []placement.Candidate, pools []store.IPPool, deps *ServerDeps, cfg ServerAdminConfig, now time.Time) (fsm.ServerCreate, string, error) {
	want, ok := cfg.PlanAddrs[plan.Slug]
	if !ok {
		want = DefaultPlanAddrs
	}
	if req.IPv4 != "" {
		want.IPv4 = 0 // a static address given by hand
	}
	served := poolsFor(cands, pools, want)
	reqs := map[string]*fsm.AddrRequest{}
	for id, fam := range served {
		if len(fam[0])+len(fam[1]) > 0 {
			reqs[id] = &fsm.AddrRequest{IPv4Pools: fam[0], IPv4: want.IPv4, IPv6Pools: fam[1], IPv6: want.IPv6}
		}
	}
	if err := a.markExhausted(cands, pools, reqs, now); err != nil {
		return fsm.ServerCreate{}, "", err
	}
	nodeID, err := placement.Choose(cands, plan, req.Template, placement.Policy{CPUOvercommit: cfg.CPUOvercommit, Locations: locations})
	if errors.Is(err, placement.ErrReconnecting) {
		return fsm.ServerCreate{}, "", errf(http.StatusServiceUnavailable, "node_reconnecting", "%s; retry in a few seconds", err.Error())
	} else if err != nil {
		return fsm.ServerCreate{}, "", errf(http.StatusConflict, "no_capacity", "%s", err.Error())
	}
	srvID := ids.New("srv", now)
	vm := cfg.VMPrefix + strings.ReplaceAll(srvID, "_", "-")
	actID := ids.New("act", now)
	params, err := action.Encode(&action.Provision{
		Template: req.Template,
		Plan:     api.NodePlan{VCPUs: plan.VCPUs, MemoryMiB: plan.MemoryMiB, DiskGiB: plan.DiskGiB},
		Hostname: req.Hostname, SSHKeys: req.SSHKeys, IPv4: req.IPv4, Gateway4: req.Gateway4, Network: req.Network,
	})
	if err != nil {
		return fsm.ServerCreate{}, "", err
	}
	password, err := provisionPassword(deps, actID, req.NoPassword)
	if err != nil {
		return fsm.ServerCreate{}, "", err
	}
	s := store.Server{
		Server: api.Server{ID: srvID, Label: serverLabel(req, srvID), Hostname: req.Hostname, Plan: plan, OSTemplate: req.Template, OS: req.OS,
			IPv4: req.IPv4},
		AccountID: req.AccountID, NodeID: nodeID, VMName: vm,
	}
	// The server shows the location of the node it went to. A node has one
	// only from semantics level 2 (CmdNodeLocation), so no coordinator that
	// would not keep the field applies a command carrying it.
	for _, c := range cands {
		if c.Node.ID == nodeID {
			s.Location = c.Node.Location
		}
	}
	act := store.Action{
		Action: api.Action{ID: actID, Command: api.ActionServerProvision, ResourceType: "server", ResourceID: srvID},
		NodeID: nodeID, Target: vm, Params: params, NeedsSecret: !req.NoPassword, Mutating: true,
		Deadline: now.Add(deps.ActionDeadline),
	}
	overcommit := cfg.CPUOvercommit
	if overcommit <= 0 {
		overcommit = placement.DefaultCPUOvercommit
	}
	// The locations go in the command too: a node moved out of them before
	// it applies refuses the server as a full one does (from level 2).
	create := fsm.ServerCreate{Server: s, Action: act, CPUOvercommit: overcommit, Locations: locations}
	create.Addresses = reqs[nodeID]
	return create, password, nil
}

// placementCandidates lists the nodes a new server of req may go to (only
// req.NodeID when it names one) with their live state, the resources their
// servers use and the templates they report. The account must exist; a named
// node that does not is a 404.
func (a *API) placementCandidates(req api.AdminServerCreateRequest, deps *ServerDeps, cfg ServerAdminConfig) ([]placement.Candidate, []store.IPPool, error) {
	var cands []placement.Candidate
	var pools []store.IPPool
	err := a.state.Read(func(r store.ReadTx) (err error) {
		cands, pools, err = a.placementCandidatesIn(r, req, deps, cfg)
		return err
	})
	return cands, pools, err
}

// placementCandidatesIn is placementCandidates read in r.
func (a *API) placementCandidatesIn(r store.ReadTx, req api.AdminServerCreateRequest, deps *ServerDeps, cfg ServerAdminConfig) ([]placement.Candidate, []store.IPPool, error) {
	return a.placementCandidatesAmong(r, req, func() ([]store.AgentNode, error) { return placementNodes(r, req.NodeID) }, deps, cfg)
}

// placementCandidatesAmong is placementCandidatesIn among the nodes
// placeable lists (placementNodes' list, which a server order has read
// already), asked after the account and the IP pools are.
func (a *API) placementCandidatesAmong(r store.ReadTx, req api.AdminServerCreateRequest, placeable func() ([]store.AgentNode, error), deps *ServerDeps, cfg ServerAdminConfig) ([]placement.Candidate, []store.IPPool, error) {
	if !r.AccountExists(req.AccountID) {
		return nil, nil, fmt.Errorf("account %s: %w", req.AccountID, fsm.ErrNotFound)
	}
	pools, err := r.IPPools()
	if err != nil {
		return nil, nil, err
	}
	nodes, err := placeable()
	if err != nil {
		return nil, nil, err
	}
	var cands []placement.Candidate
	for _, n := range nodes {
		// What its servers use, as the FSM's apply path keeps it;
		// summed here only before the FSM has (after open or restore).
		u, ok := a.state.NodeUsed(n.ID)
		if !ok {
			ss, err := r.NodeServers(n.ID)
			if err != nil {
				return nil, nil, err
			}
			u = used(ss)
		}
		c := placement.Candidate{Node: withLive(n, cfg.Nodes), Used: u}
		c.Connected = c.Node.Connected
		if deps.NodeTemplates != nil {
			if t, ok := deps.NodeTemplates(n.ID); ok {
				c.Templates = t
			}
		}
		cands = append(cands, c)
	}
	if req.NodeID != "" && len(cands) == 0 {
		return nil, nil, notFound("node " + req.NodeID)
	}
	return cands, pools, nil
}

// placementNodes lists the nodes a placement may consider: every node
// (removed ones included, for the caller to refuse), or only nodeID when the
// request names one (none when no node has that id).
func placementNodes(r store.ReadTx, nodeID string) ([]store.AgentNode, error) {
	nodes, err := r.AgentNodes()
	if nodeID == "" || err != nil {
		return nodes, err
	}
	return slices.DeleteFunc(nodes, func(n store.AgentNode) bool { return n.ID != nodeID }), nil
}

// placementNodesOf is placementNodes of what r.AgentNodes returned (nodes,
// err), which it leaves unchanged (a named node's list is a new slice).
func placementNodesOf(nodes []store.AgentNode, err error, nodeID string) ([]store.AgentNode, error) {
	if nodeID == "" || err != nil {
		return nodes, err
	}
	return slices.DeleteFunc(slices.Clone(nodes), func(n store.AgentNode) bool { return n.ID != nodeID }), nil
}

// provisionPassword makes the new server's root password and hands it, sealed
// for the provision action actID, to the dispatcher; with noPassword there is
// none ("").
func provisionPassword(deps *ServerDeps, actID string, noPassword bool) (string, error) {
	if noPassword {
		return "", nil
	}
	password, err := newPassword()
	if err != nil {
		return "", err
	}
	secret, err := action.EncodeSecret(api.ActionServerProvision, password)
	if err != nil {
		return "", err
	}
	deps.PutSecret(actID, secret)
	return password, nil
}

// serverLabel is the label a new server shows: the one asked for, else its
// hostname, else its id.
func serverLabel(req api.AdminServerCreateRequest, srvID string) string {
	switch {
	case req.Label != "":
		return req.Label
	case req.Hostname != "":
		return req.Hostname
	}
	return srvID
}
