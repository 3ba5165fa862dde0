package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// IP pools (operator API): /admin/ip-pools. The pools and their allocations
// live in the FSM (fsm/ippools.go); a server's addresses are allocated by the
// command that places it.

// maxPoolQuarantine bounds a pool's quarantine (a year).
const maxPoolQuarantine = 366 * 24 * 3600

// ipamField is the admin API's name of an ipam field ("prefixLen" is the
// request's "prefix_len").
func ipamField(f string) string {
	switch f {
	case "prefixLen":
		return "prefix_len"
	case "quarantineSeconds":
		return "quarantine_seconds"
	}
	return f
}

// DecodeIPPoolCreate validates a POST /admin/ip-pools body on its own (the
// overlap with other pools is checked by the command): an error names the
// field.
func DecodeIPPoolCreate(body []byte) (store.IPPool, error) {
	var req api.IPPoolCreateRequest
	if err := decodeStrict(body, &req); err != nil {
		return store.IPPool{}, err
	}
	p := store.IPPool{Pool: ipam.Pool{Name: req.Name, CIDR: req.CIDR, Gateway: req.Gateway, Exclude: req.Exclude,
		Nodes: req.Nodes, PrefixLen: req.PrefixLen, Bridge: req.Bridge, Resolvers: req.Resolvers}, QuarantineSeconds: req.QuarantineSeconds}
	if err := p.Validate(); err != nil {
		var fe *ipam.FieldError
		if errors.As(err, &fe) {
			return p, invalidField(ipamField(fe.Field), "%s", fe.Message)
		}
		return p, err
	}
	if req.QuarantineSeconds < 0 || req.QuarantineSeconds > maxPoolQuarantine {
		return p, invalidField("quarantine_seconds", "must be 0 (the default, 24 hours) to %d", maxPoolQuarantine)
	}
	return p, nil
}

// DecodeIPReserve validates a reserve or release body.
func DecodeIPReserve(body []byte) (api.IPReserveRequest, error) {
	return decodeChecked(body, func(req *api.IPReserveRequest) error {
		if req.IP == "" {
			return invalidField("ip", "is required")
		}
		return oneLine("note", req.Note, 0, 200)
	})
}

// poolFieldError turns a command's refusal that names an ipam field into the
// 400 that names it; other errors pass through.
func poolFieldError(err error) error {
	var fe *ipam.FieldError
	if errors.As(err, &fe) && errors.Is(err, fsm.ErrInvalid) {
		return invalidField(ipamField(fe.Field), "%s", fe.Message)
	}
	return err
}

// ipPoolRoutes adds the /admin/ip-pools routes to mux.
func (a *API) ipPoolRoutes(mux *http.ServeMux, leader func(h adminFunc) http.Handler) {
	mux.Handle("POST /admin/ip-pools", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		p, err := DecodeIPPoolCreate(body)
		if err != nil {
			return 0, nil, err
		}
		if _, err := a.adminApply(r.Context(), fsm.CmdIPPoolCreate, now, fsm.IPPoolCreate{Pool: p}); err != nil {
			return 0, nil, poolFieldError(err)
		}
		a.log.Info("ip pool created", "pool", p.Name, "cidr", p.CIDR)
		return a.ipPoolView(p.Name, now, false, http.StatusCreated)
	}))
	mux.Handle("GET /admin/ip-pools", leader(func(_ *http.Request, _ []byte, now time.Time) (int, any, error) {
		out := []api.IPPool{}
		err := a.state.Read(func(r store.ReadTx) error {
			pools, err := r.IPPools()
			if err != nil {
				return err
			}
			for _, p := range pools {
				d, err := poolDetail(r, p, now, false)
				if err != nil {
					return err
				}
				out = append(out, d.IPPool)
			}
			return nil
		})
		return http.StatusOK, out, err
	}))
	mux.Handle("GET /admin/ip-pools/{name}", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		return a.ipPoolView(r.PathValue("name"), now, true, http.StatusOK)
	}))
	mux.Handle("POST /admin/ip-pools/{name}/remove", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		code, view, err := a.ipPoolView(r.PathValue("name"), now, false, http.StatusOK)
		if err != nil {
			return 0, nil, err
		}
		if _, err := a.adminApply(r.Context(), fsm.CmdIPPoolRemove, now, fsm.IPPoolRemove{Name: r.PathValue("name")}); err != nil {
			return 0, nil, err
		}
		a.log.Info("ip pool removed", "pool", r.PathValue("name"))
		return code, view, nil
	}))
	for _, verb := range []string{"reserve", "release"} {
		mux.Handle("POST /admin/ip-pools/{name}/"+verb, leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
			req, err := DecodeIPReserve(body)
			if err != nil {
				return 0, nil, err
			}
			name := r.PathValue("name")
			var v any
			if verb == "reserve" {
				v, err = a.adminApply(r.Context(), fsm.CmdIPReserve, now, fsm.IPReserve{Pool: name, IP: req.IP, Note: req.Note})
			} else {
				v, err = a.adminApply(r.Context(), fsm.CmdIPRelease, now, fsm.IPRelease{Pool: name, IP: req.IP})
			}
			if err != nil {
				return 0, nil, poolFieldError(err)
			}
			u, _ := v.(store.IPUnit)
			out := unitView(u, now)
			if verb == "release" {
				out.Status = "free"
				out.Until = nil
			}
			a.log.Info("ip pool address "+verb+"d", "pool", name, "unit", u.Prefix.String())
			return http.StatusOK, out, nil
		}))
	}
}

func (a *API) ipPoolView(name string, now time.Time, units bool, code int) (int, any, error) {
	var d api.IPPoolDetail
	err := a.state.Read(func(r store.ReadTx) error {
		p, err := r.IPPool(name)
		if err != nil {
			return err
		}
		d, err = poolDetail(r, p, now, units)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if !units {
		return code, d.IPPool, nil
	}
	return code, d, nil
}

// poolDetail is the API view of a pool with its usage at now (and its units
// that are not free, with units).
func poolDetail(r store.ReadTx, p store.IPPool, now time.Time, units bool) (api.IPPoolDetail, error) {
	d := api.IPPoolDetail{IPPool: api.IPPool{IPPoolCreateRequest: api.IPPoolCreateRequest{
		Name: p.Name, CIDR: p.CIDR, Gateway: p.Gateway, Exclude: p.Exclude, Nodes: p.Nodes, Bridge: p.Bridge,
		Resolvers: p.Resolvers, PrefixLen: p.PrefixLen, QuarantineSeconds: int64(p.Quarantine() / time.Second),
	}, Version: 4, CreatedAt: p.CreatedAt}}
	if p.IPv6() {
		d.Version = 6
		if d.PrefixLen == 0 {
			d.PrefixLen = ipam.DefaultPrefixLen
		}
	}
	us, err := r.IPUnits(p.Name)
	if err != nil {
		return d, err
	}
	alloc, err := ipam.New(p.Pool, store.IPState(us))
	if err != nil {
		return d, err
	}
	u := alloc.Usage(now)
	d.Usage = api.IPPoolUsage{Total: u.Total, Used: u.Used, Quarantined: u.Quarantined, Free: u.Free}
	d.Addresses = []api.IPPoolAddress{}
	for _, x := range us {
		if x.Reserved && x.Until == nil {
			d.Usage.Reserved++
		}
		if units && (x.Until == nil || x.Until.After(now)) {
			d.Addresses = append(d.Addresses, unitView(x, now))
		}
	}
	return d, nil
}

func unitView(u store.IPUnit, now time.Time) api.IPPoolAddress {
	v := api.IPPoolAddress{Prefix: u.Prefix.String(), ServerID: u.ServerID, AccountID: u.AccountID, Note: u.Note}
	switch {
	case u.Until != nil && u.Until.After(now):
		v.Status, v.Until = api.IPQuarantined, u.Until
	case u.Until != nil:
		v.Status = "free"
	case u.Reserved:
		v.Status = api.IPReserved
	default:
		v.Status = api.IPAllocated
	}
	return v
}

// PlanAddrs is how many IPv4 addresses and IPv6 prefixes a server of a plan
// gets from the pools.
type PlanAddrs struct{ IPv4, IPv6 int }

// DefaultPlanAddrs is what a plan not named in --plan-addresses gets.
var DefaultPlanAddrs = PlanAddrs{IPv4: 1, IPv6: 1}

// ParsePlanAddresses parses the --plan-addresses setting:
// "SLUG=V4/V6,…" (nano=1/0: one IPv4, no IPv6 prefix).
func ParsePlanAddresses(s string) (map[string]PlanAddrs, error) {
	out := map[string]PlanAddrs{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		slug, counts, ok := strings.Cut(strings.TrimSpace(item), "=")
		v4s, v6s, ok2 := strings.Cut(counts, "/")
		v4, err1 := strconv.Atoi(v4s)
		v6, err2 := strconv.Atoi(v6s)
		if _, known := api.PlanBySlug(slug); !ok || !ok2 || err1 != nil || err2 != nil || !known ||
			v4 < 0 || v6 < 0 || v4 > 16 || v6 > 16 {
			return nil, fmt.Errorf("plan-addresses: %q is not PLAN=IPV4/IPV6 with a known plan and counts 0-16", item)
		}
		out[slug] = PlanAddrs{IPv4: v4, IPv6: v6}
	}
	return out, nil
}

// poolsFor marks the candidates that cannot get addresses (a node that
// reports bridges needs a pool serving it in each family the plan takes from
// pools, when pools of that family exist) and returns, for each node, the
// pools that serve it in each family.
func poolsFor(cands []placement.Candidate, pools []store.IPPool, want PlanAddrs) map[string][2][]string {
	out := map[string][2][]string{}
	var have [2]bool
	for _, p := range pools {
		have[b2i(p.IPv6())] = true
	}
	for i := range cands {
		n := cands[i].Node
		var fam [2][]string
		for _, p := range pools {
			if fsm.PoolServes(p, n) {
				fam[b2i(p.IPv6())] = append(fam[b2i(p.IPv6())], p.Name)
			}
		}
		out[n.ID] = fam
		if len(n.Bridges) == 0 {
			continue
		}
		for f, count := range []int{want.IPv4, want.IPv6} {
			if count > 0 && have[f] && len(fam[f]) == 0 && cands[i].Unfit == "" {
				cands[i].Unfit = fmt.Sprintf("no IPv%d pool on its bridges (%s)", 4+2*f, strings.Join(n.Bridges, ", "))
			}
		}
	}
	return out
}

// markExhausted marks the candidates whose pools cannot give the addresses
// their request asks (pool exhausted, counted at now), so placement picks a
// node whose pools can; CmdServerCreate's allocation stays authoritative.
func (a *API) markExhausted(cands []placement.Candidate, pools []store.IPPool, reqs map[string]*fsm.AddrRequest, now time.Time) error {
	if len(reqs) == 0 {
		return nil
	}
	byName := make(map[string]store.IPPool, len(pools))
	for _, p := range pools {
		byName[p.Name] = p
	}
	var names []string
	for i := range cands {
		if req := reqs[cands[i].Node.ID]; req != nil && cands[i].Unfit == "" {
			names = append(append(names, req.IPv4Pools...), req.IPv6Pools...)
		}
	}
	// Counted by the FSM's allocators: no unit record is read.
	free, err := a.state.PoolsFree(names, now)
	if err != nil {
		return err
	}
	for i := range cands {
		req := reqs[cands[i].Node.ID]
		if req == nil || cands[i].Unfit != "" {
			continue
		}
		if err := fsm.AddrsFit(req, cands[i].Node, byName, free); err != nil {
			var full *fsm.NoCapacityError
			switch {
			case errors.As(err, &full):
				cands[i].Unfit = full.Why
			case errors.Is(err, fsm.ErrConflict):
				cands[i].Unfit = strings.TrimPrefix(err.Error(), fsm.ErrConflict.Error()+": ")
			default:
				return err
			}
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
