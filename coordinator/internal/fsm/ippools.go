package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// Addresses are allocated inside CmdServerCreate (ServerCreate.Addresses) and
// released into their pool's quarantine by the terminate result, so two servers
// never hold one address whatever the concurrency or leader changes: the log
// orders every allocation and each replica's allocator computes the same answer
// from it.

// IPPoolCreate defines a pool. Apply validates it (ipam) and checks it
// against the pools already defined: a refusal is ErrInvalid wrapping the
// *ipam.FieldError that names the field.
type IPPoolCreate struct {
	Pool store.IPPool `json:"pool"`
}

// IPPoolRemove removes a pool with no unit allocated or reserved (units in
// quarantine go with it).
type IPPoolRemove struct {
	Name string `json:"name"`
}

// IPReserve reserves one unit of a pool by hand (the unit holding IP).
type IPReserve struct {
	Pool string `json:"pool"`
	IP   string `json:"ip"`
	Note string `json:"note,omitempty"`
}

// IPRelease frees a reserved or quarantined unit at once. A unit allocated to
// a server is refused: terminating the server releases it.
type IPRelease struct {
	Pool string `json:"pool"`
	IP   string `json:"ip"`
}

// AddrRequest asks CmdServerCreate to allocate the server's addresses: IPv4
// addresses and IPv6 prefixes, each from the first pool of its list with a
// free unit. The proposer lists only pools that serve the server's node.
type AddrRequest struct {
	IPv4Pools []string `json:"ipv4_pools,omitempty"`
	IPv4      int      `json:"ipv4,omitempty"`
	IPv6Pools []string `json:"ipv6_pools,omitempty"`
	IPv6      int      `json:"ipv6,omitempty"`
}

type addrRequestJSON AddrRequest

// UnmarshalJSON is json.Unmarshal into the struct. It reads the proposer's
// encoding (keys in field order, plain strings, no whitespace) without
// reflection, and anything else through encoding/json
// (TestAddrRequestDecodesAsEncodingJSON, FuzzAddrRequestDecodesAsEncodingJSON).
func (r *AddrRequest) UnmarshalJSON(b []byte) error {
	// Into a request already holding values encoding/json keeps the fields
	// b leaves out: only an empty one is read by readAddrRequest.
	if r.IPv4Pools != nil || r.IPv4 != 0 || r.IPv6Pools != nil || r.IPv6 != 0 {
		return json.Unmarshal(b, (*addrRequestJSON)(r))
	}
	if fast, ok := readAddrRequest(b); ok {
		*r = fast
		return nil
	}
	return json.Unmarshal(b, (*addrRequestJSON)(r))
}

// readAddrRequest reads b in the plain subset with keys in field order (ok
// false: anything else).
func readAddrRequest(b []byte) (AddrRequest, bool) {
	var out AddrRequest
	rd := plainjson.NewReader(b)
	ok := rd.Fields(addrRequestKeys, &out.IPv4Pools, &out.IPv4, &out.IPv6Pools, &out.IPv6)
	return out, ok && rd.End()
}

// addrRequestKeys are AddrRequest's JSON keys in field order.
var addrRequestKeys = []string{"ipv4_pools", "ipv4", "ipv6_pools", "ipv6"}

// maxAddrsPerFamily bounds AddrRequest's counts.
const maxAddrsPerFamily = 16

// protocolBridged is the first agent protocol (1.3) whose server.provision
// takes bridge, ipv6, gateway6 and resolvers.
const protocolBridged = 103

// poolCache holds one allocator per pool (with the pool's definition), built
// from the pool's bucket on first use after the database was opened or
// restored. Only the apply path uses it (Raft applies one batch at a time).
type poolCache struct {
	m map[string]cachedPool
}

type cachedPool struct {
	pool store.IPPool
	a    *ipam.Allocator
}

func newPoolCache() *poolCache { return &poolCache{m: map[string]cachedPool{}} }

// allocator returns the pool's definition and its allocator.
func (c *applyCtx) allocator(name string) (store.IPPool, *ipam.Allocator, error) {
	return c.pools.get(c.r, name)
}

// get returns the pool's definition and its allocator, built from r on first
// use.
func (pc *poolCache) get(r store.ReadTx, name string) (store.IPPool, *ipam.Allocator, error) {
	if cp, ok := pc.m[name]; ok {
		return cp.pool, cp.a, nil
	}
	p, err := r.IPPool(name)
	if err != nil {
		return p, nil, err
	}
	st, err := r.IPPoolState(name)
	if err != nil {
		return p, nil, err
	}
	a, err := ipam.New(p.Pool, st)
	if err != nil {
		return p, nil, err
	}
	pc.m[name] = cachedPool{p, a}
	return p, a, nil
}

// PoolsFree counts the free units of the named pools at now (a quarantine
// that ends at or before now counts as free) as the allocators the apply
// path keeps held them after the last applied batch, so the proposer's check
// reads no unit records and does not wait for a batch being applied. A pool
// that does not exist counts 0; one whose allocator was not built yet is
// built from the database.
func (f *FSM) PoolsFree(names []string, now time.Time) (map[string]uint64, error) {
	f.usageMu.RLock()
	usage := f.usage
	f.usageMu.RUnlock()
	out := make(map[string]uint64, len(names))
	var missing []string
	for _, name := range names {
		if s, ok := usage[name]; ok {
			out[name] = s.Free(now)
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.poolMu.Lock()
	defer f.poolMu.Unlock()
	err := f.db.View(func(tx *bolt.Tx) error {
		r := store.Read(tx)
		for _, name := range missing {
			_, a, err := f.pools.get(r, name)
			if errors.Is(err, ErrNotFound) {
				out[name] = 0
				continue
			}
			if err != nil {
				return err
			}
			out[name] = a.Usage(now).Free
		}
		return nil
	})
	f.publishPools()
	return out, err
}

// publishPools makes the allocators' usage readable by PoolsFree: called
// with poolMu held, after a batch applied or an allocator was built.
func (f *FSM) publishPools() {
	f.usageMu.RLock()
	prev := f.usage
	f.usageMu.RUnlock()
	next := make(map[string]*ipam.Snapshot, len(f.pools.m))
	for name, cp := range f.pools.m {
		next[name] = cp.a.Snapshot(prev[name])
	}
	f.usageMu.Lock()
	f.usage = next
	f.usageMu.Unlock()
}

// touch marks the cache as changed by this command: if the command fails, the
// cache is dropped and rebuilt from the (unchanged) buckets.
func (c *applyCtx) touch() { c.poolsTouched = true }

// fieldError wraps an ipam field error as a refused command.
func fieldError(err error) error {
	var fe *ipam.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: %w", ErrInvalid, fe)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

func applyIPPoolCreate(c *applyCtx, p IPPoolCreate) (any, error) {
	pool := p.Pool
	if err := pool.Validate(); err != nil {
		return nil, fieldError(err)
	}
	if pool.QuarantineSeconds < 0 {
		return nil, fieldError(&ipam.FieldError{Field: "quarantineSeconds", Message: "must not be negative"})
	}
	existing, err := c.r.IPPools()
	if err != nil {
		return nil, err
	}
	defs := make([]ipam.Pool, 0, len(existing))
	for _, e := range existing {
		if e.Name == pool.Name {
			return nil, fmt.Errorf("%w: ip pool %q exists", ErrConflict, pool.Name)
		}
		defs = append(defs, e.Pool)
	}
	if err := ipam.CheckAdd(defs, pool.Pool); err != nil {
		return nil, fieldError(err)
	}
	pool.CreatedAt = c.at
	delete(c.pools.m, pool.Name)
	return pool, store.PutJSON(c.tx, store.BucketIPPools, []byte(pool.Name), pool)
}

func applyIPPoolRemove(c *applyCtx, p IPPoolRemove) (any, error) {
	pool, err := c.r.IPPool(p.Name)
	if err != nil {
		return nil, err
	}
	if err := poolLinkedZone(c, p.Name); err != nil {
		return nil, err
	}
	if srv, unit, ok, err := firstAlloc(c.r, p.Name, nil); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: ip pool %q has %s allocated to server %s; terminate its servers first", ErrConflict, p.Name, unit, srv)
	}
	units, err := c.r.IPUnitRecords(p.Name)
	if err != nil {
		return nil, err
	}
	for _, u := range units {
		if u.Until == nil { // quarantined units go with the pool
			return nil, fmt.Errorf("%w: ip pool %q has %s reserved; release it first", ErrConflict, p.Name, u.Prefix)
		}
	}
	b := c.tx.Bucket(store.BucketIPUnits)
	for _, u := range units {
		if err := b.Delete(store.IPUnitKey(p.Name, u.Prefix)); err != nil {
			return nil, err
		}
	}
	delete(c.pools.m, p.Name)
	return pool, c.tx.Bucket(store.BucketIPPools).Delete([]byte(p.Name))
}

// firstAlloc finds the first server (in id order) holding a unit of the
// pool, or, with unit set, the server holding that unit.
func firstAlloc(r store.ReadTx, pool string, unit *netip.Prefix) (srv string, u netip.Prefix, ok bool, err error) {
	errFound := errors.New("found")
	err = r.IPAllocs(pool, func(serverID string, a store.IPAlloc) error {
		for _, x := range a.Units {
			if unit == nil || x == *unit {
				srv, u, ok = serverID, x, true
				return errFound
			}
		}
		return nil
	})
	if ok {
		err = nil
	}
	return srv, u, ok, err
}

// poolIP parses the address of a reserve or release and loads its pool.
func poolIP(c *applyCtx, pool, raw string) (store.IPPool, *ipam.Allocator, netip.Addr, error) {
	ip, err := netip.ParseAddr(raw)
	if err != nil || ip.Zone() != "" {
		return store.IPPool{}, nil, ip, fieldError(&ipam.FieldError{Field: "ip", Message: fmt.Sprintf("%q is not an IP address", raw)})
	}
	p, a, err := c.allocator(pool)
	return p, a, ip, err
}

// unitOf is the unit of the pool that holds ip.
func unitOf(p store.IPPool, ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = p.PrefixLen
		if bits == 0 {
			bits = ipam.DefaultPrefixLen
		}
	}
	u, _ := ip.Prefix(bits)
	return u
}

// ipErr maps an allocator error on the ip field.
func ipErr(err error) error {
	switch {
	case errors.Is(err, ipam.ErrNotInPool), errors.Is(err, ipam.ErrUnavailable):
		return fieldError(&ipam.FieldError{Field: "ip", Message: strings.TrimPrefix(err.Error(), "ipam: ")})
	case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrQuarantined), errors.Is(err, ipam.ErrNotAllocated):
		return fmt.Errorf("%w: %s", ErrConflict, strings.TrimPrefix(err.Error(), "ipam: "))
	}
	return err
}

func applyIPReserve(c *applyCtx, p IPReserve) (any, error) {
	pool, a, ip, err := poolIP(c, p.Pool, p.IP)
	if err != nil {
		return nil, err
	}
	if err := a.Reserve(ip, c.at); err != nil {
		return nil, ipErr(err)
	}
	c.touch()
	u := store.IPUnit{Prefix: unitOf(pool, ip), Reserved: true, Note: p.Note}
	return u, store.PutJSON(c.tx, store.BucketIPUnits, store.IPUnitKey(pool.Name, u.Prefix), u)
}

func applyIPRelease(c *applyCtx, p IPRelease) (any, error) {
	pool, a, ip, err := poolIP(c, p.Pool, p.IP)
	if err != nil {
		return nil, err
	}
	if !netip.MustParsePrefix(pool.CIDR).Contains(ip) {
		return nil, ipErr(fmt.Errorf("%w: %s is not in pool %q (%s)", ipam.ErrNotInPool, ip, pool.Name, pool.CIDR))
	}
	unit := unitOf(pool, ip)
	key := store.IPUnitKey(pool.Name, unit)
	var u store.IPUnit
	if err := store.GetJSON(c.tx, store.BucketIPUnits, key, &u); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		// Not reserved nor quarantined: allocated to a server, or free.
		if srv, _, ok, err := firstAlloc(c.r, pool.Name, &unit); err != nil || ok {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s is allocated to server %s; terminating the server releases it", ErrConflict, unit, srv)
		}
		return nil, fmt.Errorf("%w: %s is neither reserved nor in quarantine in pool %q", ErrConflict, ip, pool.Name)
	}
	if u.Until != nil && !u.Until.After(c.at) {
		// An ended quarantine: the allocator already counts it free.
		return u, c.tx.Bucket(store.BucketIPUnits).Delete(key)
	}
	if err := a.Unreserve(ip); err != nil {
		return nil, ipErr(err)
	}
	c.touch()
	return u, c.tx.Bucket(store.BucketIPUnits).Delete(key)
}

// poolServes reports whether pool p may give addresses to servers on node n:
// n is among its nodes (if it names any) and, if it names a bridge, n reports
// that bridge.
func poolServes(p store.IPPool, n api.AgentNode) bool {
	if len(p.Nodes) > 0 && !slices.Contains(p.Nodes, n.ID) {
		return false
	}
	return p.Bridge == "" || slices.Contains(n.Bridges, p.Bridge)
}

// PoolServes is poolServes for the proposer (placement).
func PoolServes(p store.IPPool, n api.AgentNode) bool { return poolServes(p, n) }

// walkAddrs picks the pool of each address req asks for a server on node n,
// the way CmdServerCreate allocates them: per family (IPv4 first), for each
// address the first listed pool that serves n (and, once a pool was used,
// shares its bridge: a guest has one NIC) for which take finds a free unit.
// pool loads a pool by name; take reports false when the pool is exhausted.
// The error (a *NoCapacityError, an ErrConflict) names, per pool, why it
// gave none.
func walkAddrs(req *AddrRequest, n api.AgentNode, pool func(string) (store.IPPool, error), take func(store.IPPool) (bool, error)) (bridge string, resolvers []string, err error) {
	if req == nil {
		return "", nil, nil
	}
	if req.IPv4 < 0 || req.IPv4 > maxAddrsPerFamily || req.IPv6 < 0 || req.IPv6 > maxAddrsPerFamily {
		return "", nil, fmt.Errorf("%w: at most %d addresses per family", ErrInvalid, maxAddrsPerFamily)
	}
	bridgeSet := false
	one := func(pools []string, v6 bool) error {
		var why []string
		for _, name := range pools {
			p, err := pool(name)
			if err != nil {
				return err
			}
			if p.IPv6() != v6 {
				return fmt.Errorf("%w: ip pool %q is not an IPv%d pool", ErrInvalid, name, map[bool]int{false: 4, true: 6}[v6])
			}
			if !poolServes(p, n) || (bridgeSet && p.Bridge != bridge) {
				why = append(why, fmt.Sprintf("%s: does not serve node %s", name, n.ID))
				continue
			}
			ok, err := take(p)
			if err != nil {
				return err
			}
			if !ok {
				why = append(why, name+": exhausted")
				continue
			}
			if !bridgeSet {
				bridge, resolvers, bridgeSet = p.Bridge, p.Resolvers, true
			}
			return nil
		}
		// A NoCapacityError (an ErrConflict): a customer's order that lost
		// the pool's last address to another is told what placement tells
		// it, naming no node or pool (httpapi scrubPlacement).
		return &NoCapacityError{NodeID: n.ID, Why: fmt.Sprintf("no free IPv%d address for node %s (%s)", map[bool]int{false: 4, true: 6}[v6], n.ID, strings.Join(why, "; "))}
	}
	for i := 0; i < req.IPv4 && len(req.IPv4Pools) > 0; i++ {
		if err := one(req.IPv4Pools, false); err != nil {
			return "", nil, err
		}
	}
	for i := 0; i < req.IPv6 && len(req.IPv6Pools) > 0; i++ {
		if err := one(req.IPv6Pools, true); err != nil {
			return "", nil, err
		}
	}
	return bridge, resolvers, nil
}

// AddrsFit reports whether CmdServerCreate could allocate the addresses req
// asks for a server on node n if pools had free[name] free units each (the
// proposer's check, so placement prefers nodes whose pools can serve the
// plan; the command's own allocation stays authoritative). The error is the
// one the command would return.
func AddrsFit(req *AddrRequest, n api.AgentNode, pools map[string]store.IPPool, free map[string]uint64) error {
	left := maps.Clone(free)
	_, _, err := walkAddrs(req, n, func(name string) (store.IPPool, error) {
		p, ok := pools[name]
		if !ok {
			return p, fmt.Errorf("ip pool %s: %w", name, ErrNotFound)
		}
		return p, nil
	}, func(p store.IPPool) (bool, error) {
		if left[p.Name] == 0 {
			return false, nil
		}
		left[p.Name]--
		return true, nil
	})
	return err
}

// allocateAddrs allocates the addresses req asks for the server on node n
// (walkAddrs picks the pools). On error nothing stays allocated.
func allocateAddrs(c *applyCtx, req *AddrRequest, n api.AgentNode, s *store.Server) (bridge string, resolvers []string, err error) {
	type taken struct {
		a  *ipam.Allocator
		ip netip.Addr
	}
	var done []taken
	defer func() {
		if err != nil {
			for _, t := range done {
				_ = t.a.Unreserve(t.ip)
			}
		}
	}()
	return walkAddrs(req, n, func(name string) (store.IPPool, error) {
		p, _, err := c.allocator(name)
		return p, err
	}, func(pool store.IPPool) (bool, error) {
		_, a, err := c.allocator(pool.Name)
		if err != nil {
			return false, err
		}
		unit, err := a.Allocate(c.at)
		if errors.Is(err, ipam.ErrExhausted) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		c.touch()
		done = append(done, taken{a, unit.Addr()})
		addr := store.ServerAddr{Pool: pool.Name, Unit: unit, Gateway: pool.Gateway}
		if pool.IPv6() {
			addr.Addr = netip.PrefixFrom(unit.Addr().Next(), unit.Bits())
		} else {
			addr.Addr = netip.PrefixFrom(unit.Addr(), netip.MustParsePrefix(pool.CIDR).Bits())
		}
		s.Addrs = append(s.Addrs, addr)
		return true, nil
	})
}

// claimStatic records a static IPv4 address given by hand (s.IPv4, CIDR form)
// that lies inside a pool as allocated to the server, so no pool allocation
// hands it out while the server holds it; one in use or in quarantine is a
// conflict, the pool's network, broadcast or gateway address or an excluded
// one is refused. An address outside every pool is the operator's business.
func claimStatic(c *applyCtx, s *store.Server) error {
	pfx, err := netip.ParsePrefix(s.IPv4)
	if s.IPv4 == "" || err != nil {
		return nil
	}
	ip := pfx.Addr()
	pools, err := c.r.IPPools()
	if err != nil {
		return err
	}
	for _, p := range pools {
		if !netip.MustParsePrefix(p.CIDR).Contains(ip) {
			continue
		}
		_, a, err := c.allocator(p.Name)
		if err != nil {
			return err
		}
		if err := a.Reserve(ip, c.at); err != nil {
			if errors.Is(err, ipam.ErrUnavailable) {
				return fmt.Errorf("%w: ipv4 %s: %s", ErrInvalid, ip, strings.TrimPrefix(err.Error(), "ipam: "))
			}
			return fmt.Errorf("%w: ipv4 %s of pool %q: %s", ErrConflict, ip, p.Name, strings.TrimPrefix(err.Error(), "ipam: "))
		}
		c.touch()
		s.Addrs = append(s.Addrs, store.ServerAddr{Pool: p.Name, Unit: netip.PrefixFrom(ip, 32), Addr: pfx})
		return nil
	}
	return nil
}

// putAllocated records the server's pool units as allocated to it: one
// record per pool (store.IPAlloc). A unit taken again after its quarantine
// ended loses its quarantine record (the allocator names those units, so
// no other unit's record is looked up).
func putAllocated(c *applyCtx, s store.Server) error {
	var pools []string
	byPool := map[string]*store.IPAlloc{}
	units := c.tx.Bucket(store.BucketIPUnits)
	for _, ad := range s.Addrs {
		a := byPool[ad.Pool]
		if a == nil {
			a = &store.IPAlloc{AccountID: s.AccountID}
			byPool[ad.Pool] = a
			pools = append(pools, ad.Pool)
		}
		a.Units = append(a.Units, ad.Unit)
		_, alloc, err := c.allocator(ad.Pool)
		if err != nil {
			return err
		}
		if !alloc.Ended(ad.Unit.Addr()) {
			continue // no quarantine record to look for
		}
		if err := units.Delete(store.IPUnitKey(ad.Pool, ad.Unit)); err != nil {
			return err
		}
	}
	for _, pool := range pools {
		if err := store.PutIPAlloc(c.tx, pool, s.ID, *byPool[pool]); err != nil {
			return err
		}
	}
	return nil
}

// primaryAddrs sets the server's primary IPv4 and IPv6 from its pool
// addresses and fills them into its provision params (the 1.3 keys only for an
// agent that speaks 1.3; an older one gets the bridge as its 1.2 network).
func primaryAddrs(s *store.Server, a *store.Action, n api.AgentNode, bridge string, resolvers []string) error {
	var v4, v6 *store.ServerAddr
	for i := range s.Addrs {
		ad := &s.Addrs[i]
		if ad.Addr.Addr().Is4() && v4 == nil {
			v4 = ad
		} else if ad.Addr.Addr().Is6() && v6 == nil {
			v6 = ad
		}
	}
	if v4 == nil && v6 == nil {
		return nil
	}
	// The proposer encoded these params from an action.Provision (checked
	// then); they are read back into one, completed and encoded again.
	pr, ok := readProvision(a.Params)
	if !ok {
		pr = action.Provision{}
		if err := json.Unmarshal(a.Params, &pr); err != nil {
			return fmt.Errorf("%w: provision params: %v", ErrInvalid, err)
		}
	}
	if v4 != nil {
		s.IPv4, pr.IPv4 = v4.Addr.String(), v4.Addr.String()
		if v4.Gateway != "" { // a static address claimed in a pool keeps the request's gateway
			pr.Gateway4 = v4.Gateway
		}
	}
	if n.ProtocolVersion >= protocolBridged {
		pr.Bridge, pr.Resolvers = bridge, resolvers
		if v6 != nil {
			s.IPv6, pr.IPv6 = v6.Addr.String(), v6.Addr.String()
			pr.Gateway6 = v6.Gateway
		}
	} else if bridge != "" {
		pr.Network = "bridge:" + bridge
	}
	if v6 != nil {
		s.IPv6 = v6.Addr.String()
	}
	raw, err := action.Encode(&pr) // json.Marshal's bytes, without its reflection for plain strings
	if err != nil {
		return err
	}
	a.Params = raw
	return nil
}

// releaseAddrs returns a terminated server's pool units to their pools, each
// into its pool's quarantine from the command's time: the server's
// allocation records go, a quarantine record per unit comes. A unit whose
// pool or allocation record is gone is skipped.
func releaseAddrs(c *applyCtx, s store.Server) error {
	allocs := c.tx.Bucket(store.BucketIPAllocs)
	for _, ad := range s.Addrs {
		pool, a, err := c.allocator(ad.Pool)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		key := store.IPAllocKey(ad.Pool, s.ID)
		var rec store.IPAlloc
		if store.GetJSON(c.tx, store.BucketIPAllocs, key, &rec) != nil {
			continue
		}
		i := slices.Index(rec.Units, ad.Unit)
		if i < 0 {
			continue
		}
		q := pool.Quarantine()
		if err := a.Release(ad.Unit.Addr(), c.at, q); err != nil {
			if errors.Is(err, ipam.ErrNotAllocated) {
				continue
			}
			return err
		}
		c.touch()
		if rec.Units = slices.Delete(rec.Units, i, i+1); len(rec.Units) == 0 {
			err = allocs.Delete(key)
		} else {
			err = store.PutIPAlloc(c.tx, ad.Pool, s.ID, rec)
		}
		if err != nil {
			return err
		}
		until := c.at.Add(q)
		u := store.IPUnit{Prefix: ad.Unit, ServerID: s.ID, AccountID: rec.AccountID, Until: &until}
		if err := store.PutJSON(c.tx, store.BucketIPUnits, store.IPUnitKey(ad.Pool, ad.Unit), u); err != nil {
			return err
		}
	}
	return nil
}
