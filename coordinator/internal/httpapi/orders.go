package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// orderRoutes are the catalogue and the orders.
func (a *API) orderRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/products", Scope: api.ScopeAccountRead, handler: a.listProducts},
		{Method: "GET", Path: "/v1/os-templates", Scope: api.ScopeServersRead, handler: a.listOSTemplates},
		// An order spends money: MCP asks for a double confirmation.
		{Method: "POST", Path: "/v1/servers", Scope: api.ScopeOrdersWrite, Idempotent: true, SpendsMoney: true, Quote: "POST /v1/servers/quote", handler: a.orderServer},
		// The price of the same body, without ordering (MCP shows it before the confirmation).
		{Method: "POST", Path: "/v1/servers/quote", Scope: api.ScopeOrdersWrite, handler: a.quoteServer},
		{Method: "POST", Path: "/v1/hosting", Scope: api.ScopeOrdersWrite, Idempotent: true, SpendsMoney: true, Quote: "POST /v1/hosting/quote", handler: a.orderHosting, replay: a.hostingOrderReplay},
		{Method: "POST", Path: "/v1/hosting/quote", Scope: api.ScopeOrdersWrite, handler: a.quoteHosting},
	}
}

// listProducts is the orderable catalogue with the caller's own prices.
func (a *API) listProducts(rq *request) (int, any, error) {
	out := api.ProductList{Data: []api.Product{}}
	err := a.state.Read(func(r store.ReadTx) error {
		prods, err := r.Products()
		if err != nil {
			return err
		}
		pricing, err := r.AccountPricing(rq.caller.accountID)
		if err != nil {
			return err
		}
		for _, p := range prods {
			if p.Retired {
				continue
			}
			out.Data = append(out.Data, api.Product{
				Slug: p.Slug, Category: p.Category, NameEn: p.NameEn, Names: p.Names,
				RetailMonthlyUsdCents: p.RetailMonthlyUsdCents,
				YourMonthlyUsdCents:   pricing.EffectivePrice(p.Slug, p.RetailMonthlyUsdCents),
				Specs:                 p.Specs, Locations: p.Locations,
			})
			if p.Category == api.ProductDomain {
				d := &out.Data[len(out.Data)-1]
				d.Tld, d.RetailYearlyUsdCents = p.Tld, p.RetailYearlyUsdCents
				d.YourYearlyUsdCents = pricing.EffectivePrice(p.Slug, p.RetailYearlyUsdCents)
			}
		}
		return nil
	})
	return http.StatusOK, out, err
}

// DecodeServerOrder validates POST /v1/servers; every refusal names its field.
func DecodeServerOrder(body []byte) (api.ServerOrderRequest, error) {
	req, ok := readServerOrderRequest(body)
	if !ok {
		req = api.ServerOrderRequest{}
		if err := decodeStrict(body, &req); err != nil {
			return req, err
		}
	}
	if err := orderPlanSlug(req.PlanSlug); err != nil {
		return req, err
	}
	if err := checkLabel(req.Label, 0); err != nil {
		return req, err
	}
	if req.Hostname == "" {
		return req, invalidField("hostname", "is required")
	}
	h, err := validate.HostnameInput(req.Hostname) // capitals and one trailing dot folded, the canonical form ordered
	if err != nil {
		return req, invalidField("hostname", "%s", validate.Reason(err))
	}
	req.Hostname = h
	if req.OSTemplate == "" {
		return req, invalidField("os_template", "is required")
	}
	if err := templateName("os_template", req.OSTemplate); err != nil {
		return req, err
	}
	if req.OSFamily != "" {
		if err := nameChars("os_family", req.OSFamily); err != nil {
			return req, err
		}
		if err := text("os_family", req.OSFamily, 1, 32); err != nil {
			return req, err
		}
	}
	if err := orderLocation(req.Location); err != nil {
		return req, err
	}
	if err := sshKeys(req.SSHKeys); err != nil {
		return req, err
	}
	return req, nil
}

// orderPlanSlug checks an order body's plan_slug.
func orderPlanSlug(slug string) error {
	if slug == "" {
		return invalidField("plan_slug", "is required")
	}
	if !fsm.ProductSlugRE.MatchString(slug) {
		return invalidField("plan_slug", "is not a product slug (GET /v1/products lists them)")
	}
	return nil
}

// orderLocations are the node locations an order may be placed in: its
// location, else any of the product's (none: anywhere). Below the semantics
// level CmdNodeLocation needs (2) no node can be in a location, so none
// is asked for: the location is only checked against the product's, as
// before placement by location, instead of every order of a product that
// lists locations being a 409 during a rolling upgrade.
func (a *API) orderLocations(prod api.AdminProduct, location string) []string {
	return orderLocationsAt(a.state.ClusterLevel(), prod, location)
}

// orderLocationsAt is orderLocations on a cluster at semantics level level.
func orderLocationsAt(level uint16, prod api.AdminProduct, location string) []string {
	if level < fsm.LevelOf(fsm.CmdNodeLocation) {
		return nil
	}
	if location != "" {
		return []string{location}
	}
	return prod.Locations
}

// orderLocation checks an order body's optional location.
func orderLocation(location string) error {
	if location == "" {
		return nil
	}
	if err := nameChars("location", location); err != nil {
		return err
	}
	return text("location", location, 1, 64)
}

// orderDeps is the dispatcher and the placement settings an order needs
// (503 servers_unavailable while either is not installed).
func (a *API) orderDeps() (*ServerDeps, ServerAdminConfig, error) {
	deps, err := a.serverDeps()
	if err != nil {
		return nil, ServerAdminConfig{}, err
	}
	cfg := a.orderCfg.Load()
	if cfg == nil {
		return nil, ServerAdminConfig{}, errf(http.StatusServiceUnavailable, "servers_unavailable", "orders are starting on this coordinator; retry shortly")
	}
	return deps, *cfg, nil
}

// orderOS checks a server order's template and OS family and returns the
// OS the server shows: the template must be on some node (when the nodes'
// templates are known here; placement picks one that has it), and an
// os_family other than the family the template records is a 400 naming
// os_family (a server showing "windows" for a debian image would mislead
// its owner and support); without one, the template's family. The order
// and its quote both check so.
func (a *API) orderOS(deps *ServerDeps, req api.ServerOrderRequest) (string, error) {
	var osName string
	err := a.state.Read(func(r store.ReadTx) (err error) { osName, err = orderOSIn(r, deps, req); return })
	return osName, err
}

// orderOSIn is orderOS read in r.
func orderOSIn(r store.ReadTx, deps *ServerDeps, req api.ServerOrderRequest) (string, error) {
	return orderOSAmong(r, deps, r.AgentNodeIDs, req)
}

// orderOSAmong is orderOSIn with the nodes' ids from nodeIDs (every node's,
// in id order, as r.AgentNodeIDs lists them), asked only when the template
// is checked on the nodes: a server order has read the nodes already.
func orderOSAmong(r store.ReadTx, deps *ServerDeps, nodeIDs func() []string, req api.ServerOrderRequest) (string, error) {
	if deps != nil && deps.NodeTemplates != nil && !templateOnNodes(deps, nodeIDs(), req.OSTemplate) {
		return "", invalidField("os_template", "names template %q, which no node offers", req.OSTemplate)
	}
	label, _ := r.OSTemplateLabel(req.OSTemplate)
	if req.OSFamily == "" {
		return fsm.TemplateView(req.OSTemplate, label).Family, nil
	}
	if family, ok := recordedFamily(req.OSTemplate, label); ok && !strings.EqualFold(family, req.OSFamily) {
		return "", invalidField("os_family", "is %q but template %s is of the %s family: give %s or leave os_family out", req.OSFamily, req.OSTemplate, family, family)
	}
	return req.OSFamily, nil
}

// orderServer buys a server from the wallet: placement here (on the leader),
// then one command that prices, debits, invoices, creates and opens the
// provisioning action, or changes nothing.
func (a *API) orderServer(rq *request) (int, any, error) {
	req, err := DecodeServerOrder(rq.body)
	if err != nil {
		return 0, nil, err
	}
	p, err := a.placeServerOrder(req, rq.caller.accountID, rq.now)
	if err != nil {
		return 0, nil, a.scrubPlacement(rq, err)
	}
	create := p.create
	status, replay, out, err := proposeOrder[api.ServerOrder](a, rq, p.deps, fsm.CmdServerOrder, create.Action.ID, func(o fsm.OrderCharge) any {
		return fsm.ServerOrder{PlanSlug: o.PlanSlug, Create: create, InvoiceID: o.InvoiceID, PaymentID: o.PaymentID, TxID: o.TxID}
	}, p.prod.Slug, "server order")
	if err != nil || replay != nil {
		return status, replay, a.scrubPlacement(rq, err)
	}
	out.RootPassword = p.password
	infoAt(a.log, &serverOrderedPC, "server ordered", slog.String("server", out.Server.ID), slog.String("account", rq.caller.accountID),
		slog.String("plan", p.prod.Slug), slog.String("invoice", out.Invoice.Number), slog.Int64("amount_usd_cents", out.Invoice.TotalUsdCents),
		slog.String("action", create.Action.ID))
	return status, out, nil
}

// serverOrderedPC is the "server ordered" line's source (infoAt).
var serverOrderedPC atomic.Uintptr

// infoAt logs msg with attrs through log at info, as log.Info does, but
// for the program counter the record names as its source (the caller's,
// shown with AddSource): infoAt looks it up once, at the first line, and
// keeps it in *pc, where Logger.Info looks it up for every line
// (runtime.Callers: about a microsecond of an order). So one pc must serve
// one call site.
func infoAt(log *slog.Logger, pc *atomic.Uintptr, msg string, attrs ...slog.Attr) {
	ctx := context.Background() // as Logger.Info's
	h := log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	at := pc.Load()
	if at == 0 {
		var pcs [1]uintptr
		runtime.Callers(2, pcs[:]) // skipping Callers and infoAt
		at = pcs[0]
		pc.Store(at)
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, at)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}

// serverOrderPlaced is a server order placed, before its command.
type serverOrderPlaced struct {
	deps     *ServerDeps
	prod     api.AdminProduct
	create   fsm.ServerCreate
	password string // the root password, handed sealed to the dispatcher
}

// placeServerOrder is a server order's work before its command, for the
// account accountID at now: the dispatcher and placement settings, the
// orderable product, the OS the server shows (orderOS), the locations it
// may go to and its node (placementCandidates, placeServer). What it reads
// of the state it reads in one transaction, refusing as the steps did one
// after the other (the product first, then the template, then the
// account); the command's apply checks the placement again. An error is the
// order's refusal (placement's unscrubbed: the caller scrubs it); on
// success the root password is in the dispatcher, to drop when the command
// commits nothing.
func (a *API) placeServerOrder(req api.ServerOrderRequest, accountID string, now time.Time) (serverOrderPlaced, error) {
	deps, cfg, err := a.orderDeps()
	if err != nil {
		return serverOrderPlaced{}, err
	}
	create := api.AdminServerCreateRequest{AccountID: accountID, Template: req.OSTemplate,
		Label: req.Label, Hostname: req.Hostname, SSHKeys: req.SSHKeys}
	var prod api.AdminProduct
	var locations []string
	var cands []placement.Candidate
	var pools []store.IPPool
	err = a.state.Read(func(r store.ReadTx) (err error) {
		if prod, err = a.orderableIn(r, req.PlanSlug, api.ProductVPS, req.Location); err != nil {
			return err
		}
		// The nodes are read once, for the template's check and the
		// placement; a node that does not decode is the placement's
		// error, after the template's check on the ids as before.
		nodes, nodesErr := r.AgentNodes()
		nodeIDs := r.AgentNodeIDs
		if nodesErr == nil {
			nodeIDs = func() []string {
				ids := make([]string, len(nodes))
				for i := range nodes {
					ids[i] = nodes[i].ID
				}
				return ids
			}
		}
		if create.OS, err = orderOSAmong(r, deps, nodeIDs, req); err != nil {
			return err
		}
		locations = orderLocationsAt(r.ClusterLevel(), prod, req.Location)
		cands, pools, err = a.placementCandidatesAmong(r, create, func() ([]store.AgentNode, error) {
			return placementNodesOf(nodes, nodesErr, create.NodeID)
		}, deps, cfg)
		return err
	})
	if err != nil {
		return serverOrderPlaced{}, err
	}
	create.Plan = prod.Slug
	sc, password, err := a.placeServer(create, prod.Plan(), locations, cands, pools, deps, cfg, now)
	if err != nil {
		return serverOrderPlaced{}, err
	}
	return serverOrderPlaced{deps: deps, prod: prod, create: sc, password: password}, nil
}

// proposeOrder proposes an order command (payload makes it from the
// order's new money ids) whose provisioning action actID has its secret in
// the dispatcher: a refusal drops the secret and maps a shortfall to 402
// naming it; a replayed answer (Idempotency-Key) drops it too, since our
// action was not created, and is returned as it is in replay (the
// passwords were in the first answer only). A fresh answer is out, which
// must be a T (what names the order in the error otherwise).
func proposeOrder[T any](a *API, rq *request, deps *ServerDeps, t fsm.CommandType, actID string, payload func(fsm.OrderCharge) any, planSlug, what string) (status int, replay any, out T, err error) {
	drop := func() {
		if actID != "" && deps != nil {
			deps.DropSecret(actID)
		}
	}
	o := fsm.OrderCharge{PlanSlug: planSlug, InvoiceID: ids.New("inv", rq.now), PaymentID: ids.New("pay", rq.now), TxID: ids.New("wtx", rq.now)}
	status, v, err := a.propose(rq.Context(), rq, t, payload(o), http.StatusCreated)
	if err != nil {
		drop()
		return 0, nil, out, shortfall(err)
	}
	if deps != nil {
		deps.Kick()
	}
	if _, replayed := v.(json.RawMessage); replayed {
		drop()
		return status, v, out, nil
	}
	out, ok := v.(T)
	if !ok {
		return 0, nil, out, fmt.Errorf("%s: unexpected result %T", what, v)
	}
	return status, nil, out, nil
}

// shortfall maps a wallet shortfall refusing an order to 402
// insufficient_funds naming the amount to top up; other errors pass.
func shortfall(err error) error {
	var short *fsm.ShortfallError
	if errors.As(err, &short) {
		return errf(http.StatusPaymentRequired, "insufficient_funds", "%s; top up the wallet by at least %d cents", short.Error(), short.ShortfallUsdCents())
	}
	return err
}

// listOSTemplates lists the templates the nodes reported (to this
// coordinator: the leader unless the read asked for stale consistency), each
// once, sorted by name.
func (a *API) listOSTemplates(rq *request) (int, any, error) {
	out := api.OSTemplateList{Data: []api.OSTemplate{}}
	deps, err := a.serverDeps()
	if err != nil {
		return 0, nil, err
	}
	if deps.NodeTemplates == nil {
		return http.StatusOK, out, nil
	}
	var nodes []store.AgentNode
	var labels []api.OSTemplateLabel
	if err := a.state.Read(func(r store.ReadTx) (err error) {
		if nodes, err = r.AgentNodes(); err != nil {
			return err
		}
		labels, err = r.OSTemplateLabels()
		return err
	}); err != nil {
		return 0, nil, err
	}
	var names []string
	for _, n := range nodes {
		t, _ := deps.NodeTemplates(n.ID)
		names = append(names, t...)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		var label api.OSTemplateLabel
		if i, ok := slices.BinarySearchFunc(labels, name, func(l api.OSTemplateLabel, n string) int { return strings.Compare(l.Name, n) }); ok {
			label = labels[i]
		}
		out.Data = append(out.Data, fsm.TemplateView(name, label))
	}
	return http.StatusOK, out, nil
}

// templateFamily is the OS family of template: its operator label's, or
// the name before its first hyphen.
func (a *API) templateFamily(template string) string {
	var label api.OSTemplateLabel
	_ = a.state.Read(func(r store.ReadTx) (err error) { label, err = r.OSTemplateLabel(template); return })
	return fsm.TemplateView(template, label).Family
}

// templateRecordedFamily is the OS family template records, if it records
// one: its operator label's family, or the part of a family-version name
// (debian-12) before the hyphen. A name without a hyphen and without a
// labelled family (base) records none: an order's os_family is then the
// customer's to give.
func (a *API) templateRecordedFamily(template string) (string, bool) {
	var label api.OSTemplateLabel
	_ = a.state.Read(func(r store.ReadTx) (err error) { label, err = r.OSTemplateLabel(template); return })
	return recordedFamily(template, label)
}

// recordedFamily is templateRecordedFamily of template labelled label (the
// zero label: none).
func recordedFamily(template string, label api.OSTemplateLabel) (string, bool) {
	if label.Family == "" && !strings.Contains(template, "-") {
		return "", false
	}
	return fsm.TemplateView(template, label).Family, true
}

// labelIfUnchanged is the precondition (ifUnchanged) of a label write to the
// template r names, checked here too, so that a cluster below the level
// that checks it in apply refuses a stale write all the same (but for the
// moment between this read and the apply).
func (a *API) labelIfUnchanged(r *http.Request) (*time.Time, error) {
	since, err := ifUnchanged(r.Header)
	if err != nil || since == nil {
		return since, err
	}
	name := r.PathValue("name")
	return since, a.state.Read(func(rt store.ReadTx) error {
		cur, err := rt.OSTemplateLabel(name)
		if err != nil && err != store.ErrNotFound {
			return err
		}
		return fsm.UnchangedSince("the label of template "+name, cur.UpdatedAt, since)
	})
}

// templateAdminRoutes are `hostplanectl template list|label|unlabel`: the
// operators' labels of the templates their nodes hold.
func (a *API) templateAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler) {
	mux.Handle("GET /admin/os-templates", leader(func(_ *http.Request, _ []byte, _ time.Time) (int, any, error) {
		var out []api.OSTemplateLabel
		err := a.state.Read(func(r store.ReadTx) (err error) { out, err = r.OSTemplateLabels(); return })
		return http.StatusOK, out, err
	}))
	mux.Handle("PUT /admin/os-templates/{name}", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		req, err := DecodeOSTemplateLabel(r.PathValue("name"), body)
		if err != nil {
			return 0, nil, err
		}
		since, err := a.labelIfUnchanged(r)
		if err != nil {
			return 0, nil, err
		}
		v, err := a.adminApply(r.Context(), fsm.CmdOSTemplateLabel, now, fsm.OSTemplateLabelSet{Name: r.PathValue("name"), Label: req, IfUpdatedAt: since})
		if err != nil {
			return 0, nil, err
		}
		a.log.Info("template labelled", "template", r.PathValue("name"), "family", req.Family, "version", req.Version)
		return http.StatusOK, v, nil
	}))
	mux.Handle("DELETE /admin/os-templates/{name}", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		if err := templateName("name", r.PathValue("name")); err != nil {
			return 0, nil, err
		}
		since, err := a.labelIfUnchanged(r)
		if err != nil {
			return 0, nil, err
		}
		v, err := a.adminApply(r.Context(), fsm.CmdOSTemplateUnlabel, now, fsm.OSTemplateUnlabel{Name: r.PathValue("name"), IfUpdatedAt: since})
		if errors.Is(err, fsm.ErrNotFound) {
			return 0, nil, notFound("template label")
		}
		if err != nil {
			return 0, nil, err
		}
		a.log.Info("template unlabelled", "template", r.PathValue("name"))
		return http.StatusOK, v, nil
	}))
}

// DecodeOSTemplateLabel validates a template label body for the template
// name; every refusal names its field.
func DecodeOSTemplateLabel(name string, body []byte) (api.OSTemplateLabelRequest, error) {
	var req api.OSTemplateLabelRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if field, reason := fsm.CheckOSTemplateLabel(name, req); field != "" {
		return req, invalidField(field, "%s", reason)
	}
	return req, nil
}

// templateOnNodes reports whether some node of nodes (their ids) offers
// template, or none has reported its list (then the agent decides).
func templateOnNodes(deps *ServerDeps, nodes []string, template string) bool {
	reported := false
	for _, id := range nodes {
		if t, ok := deps.NodeTemplates(id); ok {
			reported = true
			if slices.Contains(t, template) {
				return true
			}
		}
	}
	return !reported
}

// ifUnchanged reads a conditional admin write's precondition (PUT
// /admin/products/{slug}, PUT and DELETE /admin/os-templates/{name}): If-Match
// is the updated_at of the record as the sender read it (RFC 3339, quoted as
// an entity tag); If-None-Match: * says there was none (a zero time). A
// write made from a read (hostplanectl product update, template label) then
// does not undo a change made after that read: a 412 precondition_failed
// instead, nothing changed. Neither header, or If-Match: *, is no
// precondition.
func ifUnchanged(h http.Header) (*time.Time, error) {
	match, none := h.Values("If-Match"), h.Values("If-None-Match")
	refused := &httpError{status: http.StatusBadRequest, code: "invalid_header",
		msg: `header "If-Match" takes one entity tag, the updated_at read, quoted ("2026-12-03T08:00:00.123456789Z"), and "If-None-Match" only *`}
	switch {
	case len(match) > 0 && len(none) > 0:
		return nil, refused
	case len(none) > 0:
		if len(none) != 1 || strings.TrimSpace(none[0]) != "*" {
			return nil, refused
		}
		return &time.Time{}, nil
	case len(match) == 0:
		return nil, nil
	case len(match) == 1 && strings.TrimSpace(match[0]) == "*":
		return nil, nil
	case len(match) != 1:
		return nil, refused
	}
	tag := strings.TrimSpace(match[0])
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return nil, refused
	}
	at, err := time.Parse(time.RFC3339Nano, tag[1:len(tag)-1])
	if err != nil {
		return nil, refused
	}
	return &at, nil
}

// catalogueAdminRoutes are `hostplanectl product` and `account pricing`.
func (a *API) catalogueAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler) {
	mux.Handle("GET /admin/products", leader(func(_ *http.Request, _ []byte, _ time.Time) (int, any, error) {
		var out []api.AdminProduct
		err := a.state.Read(func(r store.ReadTx) (err error) { out, err = r.Products(); return })
		return http.StatusOK, out, err
	}))
	put := func(create bool) adminFunc {
		return func(r *http.Request, body []byte, now time.Time) (int, any, error) {
			slug := r.PathValue("slug")
			req, err := DecodeProduct(slug, body)
			if err != nil {
				return 0, nil, err
			}
			var since *time.Time
			if !create {
				if since, err = ifUnchanged(r.Header); err != nil {
					return 0, nil, err
				}
				// Checked here too, so that a cluster below the level that
				// checks it in apply (mid-upgrade) refuses a stale update
				// all the same, but for the moment between this read and
				// the apply.
				if err := a.state.Read(func(rt store.ReadTx) error {
					cur, err := rt.Product(slug)
					if err != nil {
						return nil // the apply says so
					}
					return fsm.UnchangedSince("product "+slug, cur.UpdatedAt, since)
				}); err != nil {
					return 0, nil, err
				}
			}
			v, err := a.adminApply(r.Context(), fsm.CmdProductPut, now, fsm.ProductPut{Slug: slug, Create: create, Product: req, IfUpdatedAt: since})
			if err != nil {
				return 0, nil, err
			}
			if create {
				return http.StatusCreated, v, nil
			}
			return http.StatusOK, v, nil
		}
	}
	mux.Handle("POST /admin/products/{slug}", leader(put(true)))
	mux.Handle("PUT /admin/products/{slug}", leader(put(false)))
	mux.Handle("POST /admin/products/{slug}/retire", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		v, err := a.adminApply(r.Context(), fsm.CmdProductRetire, now, fsm.ProductRetire{Slug: r.PathValue("slug")})
		return http.StatusOK, v, err
	}))
	mux.Handle("GET /admin/accounts/{id}/pricing", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		var out api.AccountPricing
		err := a.state.Read(func(rt store.ReadTx) (err error) {
			if !rt.AccountExists(r.PathValue("id")) {
				return fmt.Errorf("account %s: %w", r.PathValue("id"), fsm.ErrNotFound)
			}
			out, err = rt.AccountPricing(r.PathValue("id"))
			return err
		})
		return http.StatusOK, out, err
	}))
	mux.Handle("PUT /admin/accounts/{id}/pricing", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		req, err := DecodeAccountPricing(body)
		if err != nil {
			return 0, nil, err
		}
		// A price for a slug the catalogue does not hold (a typo) would be
		// recorded and never apply.
		err = a.state.Read(func(rt store.ReadTx) error {
			for slug := range req.Prices {
				if _, err := rt.Product(slug); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return invalidField("prices_usd_cents", "%q names no product (hostplanectl product list)", slug)
					}
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		v, err := a.adminApply(r.Context(), fsm.CmdAccountPricing, now, fsm.AccountPricingSet{AccountID: r.PathValue("id"), Pricing: req})
		return http.StatusOK, v, err
	}))
}

// DecodeProduct validates a product create/update body for slug.
func DecodeProduct(slug string, body []byte) (api.ProductRequest, error) {
	var req api.ProductRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	switch {
	case !fsm.ProductSlugRE.MatchString(slug):
		return req, invalidField("slug", "must be 1-63 lower-case letters, digits and dashes")
	case req.Category != api.ProductVPS && req.Category != api.ProductHosting && req.Category != api.ProductDomain:
		return req, invalidField("category", "must be vps, hosting or domain")
	case req.Category == api.ProductDomain && !fsm.TldRE.MatchString(req.Tld):
		return req, invalidField("tld", "must be the top-level domain in lower-case ASCII (com, com.tr, xn--p1ai)")
	case req.Category != api.ProductDomain && req.Tld != "":
		return req, invalidField("tld", "is only for domain products")
	}
	if err := oneLine("name_en", req.NameEn, 1, 100); err != nil {
		return req, err
	}
	for lang, name := range req.Names {
		if err := oneLine("names."+lang, name, 1, 100); err != nil || len(lang) < 2 || len(lang) > 8 {
			return req, invalidField("names", "maps a language code (2-8 characters) to a name of 1-100 characters, each one line: no line break, tab or other control character")
		}
	}
	for _, l := range req.Locations {
		// The rule of node locations (fsm.CheckLocation), which orders
		// for these are placed in.
		if l == "" || fsm.CheckLocation(l) != nil {
			return req, invalidField("locations", "are location names of 1-64 letters, digits, dots, dashes and underscores")
		}
	}
	if err := fsm.CheckProduct(slug, req); err != nil {
		return req, invalidField(productField(req), "%s", strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": "))
	}
	// A size no agent provisions (validate.Plan's bounds, which agents
	// check) would be sold, charged and refunded on every order; past them,
	// placement's byte counts overflow.
	if req.Category == api.ProductVPS {
		if err := validate.Plan(validate.DefaultLimits, req.Specs.VCPU, req.Specs.RAMMB, req.Specs.DiskGB); err != nil {
			return req, invalidField("specs", "%s", validate.Reason(err))
		}
	}
	return req, nil
}

// productField is the field CheckProduct refused (category and slug were
// checked before it).
func productField(req api.ProductRequest) string {
	if req.RetailMonthlyUsdCents < 0 || req.RetailMonthlyUsdCents > 100_000_000 {
		return "retail_monthly_usd_cents"
	}
	if req.Category == api.ProductDomain || req.RetailYearlyUsdCents != 0 {
		return "retail_yearly_usd_cents"
	}
	if req.Category == api.ProductHosting {
		return "specs.hosting"
	}
	return "specs"
}

// DecodeAccountPricing validates `hostplanectl account pricing`.
func DecodeAccountPricing(body []byte) (api.AccountPricing, error) {
	var req api.AccountPricing
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if req.DiscountPercent < 0 || req.DiscountPercent > 100 {
		return req, invalidField("discount_percent", "must be 0 to 100")
	}
	for slug, p := range req.Prices {
		if !fsm.ProductSlugRE.MatchString(slug) || p < 0 || p > 100_000_000 {
			return req, invalidField("prices_usd_cents", "maps product slugs to 0 to 100000000 cents")
		}
	}
	return req, nil
}

// orderableProduct is the product an order of category names: 400 naming
// plan_slug when it is unknown, retired or of another category, or location
// when it is not sold there.
func (a *API) orderableProduct(slug, category, location string) (api.AdminProduct, error) {
	var prod api.AdminProduct
	err := a.state.Read(func(r store.ReadTx) (err error) { prod, err = a.orderableIn(r, slug, category, location); return })
	return prod, err
}

// orderableIn is orderableProduct read in r.
func (a *API) orderableIn(r store.ReadTx, slug, category, location string) (api.AdminProduct, error) {
	prod, err := r.Product(slug)
	if errors.Is(err, store.ErrNotFound) {
		return prod, invalidField("plan_slug", "names no product (GET /v1/products lists them)")
	}
	if err != nil {
		return prod, err
	}
	orderRoute := map[string]string{api.ProductVPS: "POST /v1/servers", api.ProductHosting: "POST /v1/hosting", api.ProductDomain: "POST /v1/domains"}
	switch {
	case prod.Retired:
		return prod, invalidField("plan_slug", "names product %q, which is retired and can no longer be ordered", prod.Slug)
	case prod.Category != category:
		return prod, invalidField("plan_slug", "names a %s product; order it with %s", prod.Category, a.brand.Operation(orderRoute[prod.Category]))
	case location != "" && len(prod.Locations) > 0 && !slices.Contains(prod.Locations, location):
		return prod, invalidField("location", "must be one of %s for %s", strings.Join(prod.Locations, ", "), prod.Slug)
	}
	return prod, nil
}

// quoteServer prices an order body without ordering: the caller's price now
// and what the wallet lacks. A template no node offers, or an os_family
// other than the template's, is the order's 400 (orderOS).
func (a *API) quoteServer(rq *request) (int, any, error) {
	req, err := DecodeServerOrder(rq.body)
	if err != nil {
		return 0, nil, err
	}
	deps, _ := a.serverDeps() // nil while starting: the template is then not checked
	return a.quote(rq, req.PlanSlug, api.ProductVPS, req.Location, func() error { _, err := a.orderOS(deps, req); return err })
}

// quote is the price of an order of the product slug of category. It
// refuses what the order would refuse without placing: a location the
// product is not offered in (400), and one no node of the kind is in
// (quoteLocations: the order's 409 no_capacity). check, if set, is the
// order's other checks of its body, run after the product's as the order
// runs them.
func (a *API) quote(rq *request, slug, category, location string, check func() error) (int, any, error) {
	prod, err := a.orderableProduct(slug, category, location)
	if err != nil {
		return 0, nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return 0, nil, err
		}
	}
	if err := a.quoteLocations(prod, location); err != nil {
		return 0, nil, err
	}
	out := api.ServerQuote{PlanSlug: prod.Slug, RetailMonthlyUsdCents: prod.RetailMonthlyUsdCents}
	err = a.state.Read(func(r store.ReadTx) (err error) {
		out.YourMonthlyUsdCents, out.BalanceUsdCents, err = callerPrice(r, rq.caller.accountID, prod.Slug, prod.RetailMonthlyUsdCents)
		return err
	})
	out.ShortfallUsdCents = max(0, out.YourMonthlyUsdCents-out.BalanceUsdCents)
	return http.StatusOK, out, err
}

// quoteLocations refuses a quote whose order would be placed only in
// locations (orderLocations: its location, else its product's; from
// semantics level 2) that no node taking its kind of service (not removed)
// is in: that order is a 409 no_capacity whatever the room, and a quote
// should not price what the order refuses (an MCP client would ask its
// user to confirm it). Room is not checked: nodes there may still be full
// or cordoned when the order comes.
func (a *API) quoteLocations(prod api.AdminProduct, location string) error {
	locs := a.orderLocations(prod, location)
	if len(locs) == 0 {
		return nil
	}
	role := map[string]string{api.ProductVPS: api.RoleKVM, api.ProductHosting: api.RoleHosting}[prod.Category]
	found := false
	err := a.state.Read(func(r store.ReadTx) error {
		nodes, err := r.AgentNodes()
		for _, n := range nodes {
			found = found || n.State != api.AgentNodeRemoved && slices.Contains(n.Roles, role) && slices.Contains(locs, n.Location)
		}
		return err
	})
	if err != nil || found {
		return err
	}
	return errf(http.StatusConflict, "no_capacity", "%s", noCapacityMessage)
}

// noCapacityMessage is a customer's 409 no_capacity: an order no node can
// take now, named no node (SPEC: a customer's views name no node).
const noCapacityMessage = "no node can take the order now; try again later or ask support"

// scrubPlacement is what a customer's order is told when placement refused
// it, or its node filled up between placement and the order's command
// (fsm.NoCapacityError): a no_capacity answer says no node can take the order
// now, without the per-node reasons an operator gets (SPEC: a customer's views
// name no node); the reasons go to the log. Other errors pass unchanged.
func (a *API) scrubPlacement(rq *request, err error) error {
	var he *httpError
	var full *fsm.NoCapacityError
	var reasons string
	switch {
	case errors.As(err, &he) && he.code == "node_reconnecting":
		a.log.Info("order refused: a node that fits is reconnecting", "request_id", rq.id, "account", rq.caller.accountID, "reasons", he.msg)
		return errf(http.StatusServiceUnavailable, "node_reconnecting", "a host is reconnecting after a change of coordinator; retry in a few seconds")
	case errors.As(err, &he) && he.code == "no_capacity":
		reasons = he.msg
	case errors.As(err, &full):
		reasons = full.Error()
	default:
		return err
	}
	a.log.Info("order refused: no capacity", "request_id", rq.id, "account", rq.caller.accountID, "reasons", reasons)
	return errf(http.StatusConflict, "no_capacity", "%s", noCapacityMessage)
}
