package ipam

import (
	"container/heap"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"time"
)

// DefaultQuarantine is how long a released address is kept from reuse when
// Release is given no quarantine.
const DefaultQuarantine = 24 * time.Hour

var (
	// ErrExhausted: no free address (or prefix) is left in the pool.
	ErrExhausted = errors.New("ipam: pool exhausted")
	// ErrNotInPool: the address is outside the pool (or of the other family).
	ErrNotInPool = errors.New("ipam: address not in pool")
	// ErrUnavailable: the address is the network, broadcast or gateway
	// address, or excluded; it is never allocated.
	ErrUnavailable = errors.New("ipam: address not allocatable")
	// ErrInUse: the address is allocated or reserved.
	ErrInUse = errors.New("ipam: address in use")
	// ErrQuarantined: the address was released and its quarantine runs.
	ErrQuarantined = errors.New("ipam: address in quarantine")
	// ErrNotAllocated: the address is neither allocated, reserved nor in
	// quarantine.
	ErrNotAllocated = errors.New("ipam: address not allocated")
)

// State is a pool's allocation state as stored (JSON, in bbolt): the units in
// use and those in quarantine, each sorted by address. A unit is a /32 in an
// IPv4 pool and a /PrefixLen in an IPv6 pool.
type State struct {
	Used        []netip.Prefix `json:"used,omitempty"`
	Quarantined []Quarantined  `json:"quarantined,omitempty"`
}

// Quarantined is a released unit that is not reused before Until.
type Quarantined struct {
	Prefix netip.Prefix `json:"prefix"`
	Until  time.Time    `json:"until"`
}

// Usage counts a pool's units. Total excludes the network, broadcast and
// gateway addresses and the excludes; Free = Total - Used - Quarantined.
type Usage struct {
	Total       uint64 `json:"total"`
	Used        uint64 `json:"used"`
	Quarantined uint64 `json:"quarantined"`
	Free        uint64 `json:"free"`
}

// Allocator is one pool's allocation state in memory. It is not safe for
// concurrent use (the FSM applies one command at a time).
type Allocator struct {
	pool    Pool
	l       *layout
	static  uint64              // units never allocated
	blocked spanSet             // static, used and quarantined units
	used    map[uint64]struct{} // allocated or reserved
	quar    map[uint64]time.Time
	expiry  expiryHeap
	// ended holds the units whose quarantine ended (since New) and that
	// were not taken again since: the ones whose stored quarantine record
	// may still be there (Ended).
	ended map[uint64]struct{}
	// quarGen changes whenever quar does (Snapshot reuses the ends).
	quarGen uint64
}

// New validates the pool and loads its state. A state entry outside the
// pool, of the wrong length, on an unavailable address or listed twice is
// refused.
func New(p Pool, st State) (*Allocator, error) {
	l, ferr := p.layout()
	if ferr != nil {
		return nil, ferr
	}
	a := &Allocator{
		pool:  p,
		l:     l,
		used:  make(map[uint64]struct{}, len(st.Used)),
		quar:  make(map[uint64]time.Time, len(st.Quarantined)),
		ended: map[uint64]struct{}{},
	}
	var runs []span
	if !l.v6 {
		runs = append(runs, span{0, 0}, span{l.size() - 1, l.size() - 1})
	}
	if l.prefix.Contains(l.gateway) {
		o := a.offset(l.gateway)
		runs = append(runs, span{o, o})
	}
	for _, ex := range l.excludes {
		runs = append(runs, span{a.offset(ex.Addr()), a.offset(lastAddr(ex))})
	}
	a.blocked = fromRuns(runs)
	a.static = a.blocked.count()

	load := func(what string, p netip.Prefix) (uint64, error) {
		if !p.IsValid() || p.Bits() != a.unitBits() || p.Masked() != p || !l.prefix.Contains(p.Addr()) {
			return 0, fmt.Errorf("ipam: pool %q state: %s %s is not a /%d of %s", a.pool.Name, what, p, a.unitBits(), l.prefix)
		}
		o := a.offset(p.Addr())
		if !a.blocked.add(o) {
			return 0, fmt.Errorf("ipam: pool %q state: %s %s is unavailable or listed twice", a.pool.Name, what, p)
		}
		return o, nil
	}
	for _, u := range st.Used {
		o, err := load("used", u)
		if err != nil {
			return nil, err
		}
		a.used[o] = struct{}{}
	}
	for _, q := range st.Quarantined {
		o, err := load("quarantined", q.Prefix)
		if err != nil {
			return nil, err
		}
		a.quar[o] = q.Until
		a.expiry = append(a.expiry, expiry{q.Until, o})
	}
	heap.Init(&a.expiry)
	return a, nil
}

// Pool returns the pool definition.
func (a *Allocator) Pool() Pool { return a.pool }

// unitBits is the prefix length of one allocated unit.
func (a *Allocator) unitBits() int { return a.l.prefix.Addr().BitLen() - a.l.shift }

// offset is the unit number of an address inside the pool.
func (a *Allocator) offset(ip netip.Addr) uint64 {
	return fromAddr(ip).shr(uint(a.l.shift)).lo & (a.l.size() - 1)
}

// unit is the prefix of the unit at offset o.
func (a *Allocator) unit(o uint64) netip.Prefix {
	base := fromAddr(a.l.prefix.Addr())
	u := base.or(u128{lo: o}.shl(uint(a.l.shift)))
	return netip.PrefixFrom(u.addr(!a.l.v6), a.unitBits())
}

// lookup is the offset of ip, which must be inside the pool.
func (a *Allocator) lookup(ip netip.Addr) (uint64, error) {
	if !a.l.prefix.Contains(ip) {
		return 0, fmt.Errorf("%w: %s is not in pool %q (%s)", ErrNotInPool, ip, a.pool.Name, a.l.prefix)
	}
	return a.offset(ip), nil
}

// expire ends the quarantines that are over at now.
func (a *Allocator) expire(now time.Time) {
	for len(a.expiry) > 0 && !a.expiry[0].until.After(now) {
		e := heap.Pop(&a.expiry).(expiry)
		if until, ok := a.quar[e.off]; ok && until.Equal(e.until) {
			delete(a.quar, e.off)
			a.quarGen++
			a.blocked.remove(e.off)
			a.ended[e.off] = struct{}{}
		}
	}
}

// Allocate marks the lowest free unit as used and returns it: a /32 in an
// IPv4 pool, a /PrefixLen in an IPv6 pool. It skips the network, broadcast
// and gateway addresses, the excludes, used units and units whose quarantine
// runs past now. It returns ErrExhausted when none is left.
func (a *Allocator) Allocate(now time.Time) (netip.Prefix, error) {
	a.expire(now)
	o, ok := a.blocked.lowestFree(a.l.size())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: %q (%s)", ErrExhausted, a.pool.Name, a.l.prefix)
	}
	a.blocked.add(o)
	a.used[o] = struct{}{}
	return a.unit(o), nil
}

// Ended reports whether the unit holding ip had a quarantine that ended
// since New and has not been asked about since: a store that keeps a record
// per quarantined unit deletes it when the unit is taken again, and asks
// only for the units Ended names (a unit it does not name has no such
// record, unless the store removed it already).
func (a *Allocator) Ended(ip netip.Addr) bool {
	o, err := a.lookup(ip)
	if err != nil {
		return false
	}
	_, ok := a.ended[o]
	delete(a.ended, o)
	return ok
}

// Release returns the unit holding ip, which must be in use, to the pool
// after a quarantine: it is not allocated again before now+quarantine.
// A zero quarantine means DefaultQuarantine; a negative one frees the unit at
// once.
func (a *Allocator) Release(ip netip.Addr, now time.Time, quarantine time.Duration) error {
	o, err := a.lookup(ip)
	if err != nil {
		return err
	}
	if _, ok := a.used[o]; !ok {
		return fmt.Errorf("%w: %s", ErrNotAllocated, a.unit(o))
	}
	delete(a.used, o)
	if quarantine < 0 {
		a.blocked.remove(o)
		return nil
	}
	if quarantine == 0 {
		quarantine = DefaultQuarantine
	}
	until := now.Add(quarantine)
	a.quar[o] = until
	a.quarGen++
	heap.Push(&a.expiry, expiry{until, o})
	return nil
}

// Reserve marks the unit holding ip as used by hand (an operator's
// reservation), so that Allocate never returns it.
func (a *Allocator) Reserve(ip netip.Addr, now time.Time) error {
	a.expire(now)
	o, err := a.lookup(ip)
	if err != nil {
		return err
	}
	if _, ok := a.used[o]; ok {
		return fmt.Errorf("%w: %s", ErrInUse, a.unit(o))
	}
	if until, ok := a.quar[o]; ok {
		return fmt.Errorf("%w: %s until %s", ErrQuarantined, a.unit(o), until.UTC().Format(time.RFC3339))
	}
	if !a.blocked.add(o) {
		return fmt.Errorf("%w: %s is the network, broadcast or gateway address or excluded", ErrUnavailable, ip)
	}
	a.used[o] = struct{}{}
	return nil
}

// Unreserve frees the unit holding ip at once, with no quarantine, whether it
// was reserved, allocated or in quarantine (an operator's override).
func (a *Allocator) Unreserve(ip netip.Addr) error {
	o, err := a.lookup(ip)
	if err != nil {
		return err
	}
	if _, ok := a.used[o]; ok {
		delete(a.used, o)
	} else if _, ok := a.quar[o]; ok {
		delete(a.quar, o) // its expiry entry is skipped when popped
		a.quarGen++
	} else {
		return fmt.Errorf("%w: %s", ErrNotAllocated, a.unit(o))
	}
	a.blocked.remove(o)
	return nil
}

// Usage counts the pool's units at now: a quarantine that ends at or before
// now counts as free.
func (a *Allocator) Usage(now time.Time) Usage {
	u := Usage{Total: a.l.size() - a.static, Used: uint64(len(a.used))}
	for _, until := range a.quar {
		if until.After(now) {
			u.Quarantined++
		}
	}
	u.Free = u.Total - u.Used - u.Quarantined
	return u
}

// Snapshot is a pool's usage as a reader without the allocator counts it:
// the counts that do not depend on the time and the ends of the
// quarantines, sorted. It is not changed once made.
type Snapshot struct {
	Total, Used    uint64
	QuarantineEnds []time.Time
	owner          *Allocator
	quarGen        uint64
}

// Free is Usage(now).Free as it was when the snapshot was made.
func (s *Snapshot) Free(now time.Time) uint64 {
	// Ends after now are quarantined; the others are over.
	ended := sort.Search(len(s.QuarantineEnds), func(i int) bool { return s.QuarantineEnds[i].After(now) })
	return s.Total - s.Used - uint64(len(s.QuarantineEnds)-ended)
}

// Snapshot returns the pool's usage for readers; prev, a snapshot of this
// allocator made earlier (or nil), lends its quarantine ends when they have
// not changed since, so a snapshot after allocations alone costs O(1).
func (a *Allocator) Snapshot(prev *Snapshot) *Snapshot {
	s := &Snapshot{Total: a.l.size() - a.static, Used: uint64(len(a.used)), owner: a, quarGen: a.quarGen}
	if prev != nil && prev.owner == a && prev.quarGen == a.quarGen {
		s.QuarantineEnds = prev.QuarantineEnds
		return s
	}
	s.QuarantineEnds = make([]time.Time, 0, len(a.quar))
	for _, until := range a.quar {
		s.QuarantineEnds = append(s.QuarantineEnds, until)
	}
	slices.SortFunc(s.QuarantineEnds, time.Time.Compare)
	return s
}

// State returns the allocation state in canonical form (sorted by address),
// for storage.
func (a *Allocator) State() State {
	var st State
	for _, o := range slices.Sorted(maps.Keys(a.used)) {
		st.Used = append(st.Used, a.unit(o))
	}
	for _, o := range slices.Sorted(maps.Keys(a.quar)) {
		st.Quarantined = append(st.Quarantined, Quarantined{Prefix: a.unit(o), Until: a.quar[o]})
	}
	return st
}

// expiry is a quarantine's end, ordered by time then offset.
type expiry struct {
	until time.Time
	off   uint64
}

type expiryHeap []expiry

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if !h[i].until.Equal(h[j].until) {
		return h[i].until.Before(h[j].until)
	}
	return h[i].off < h[j].off
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)   { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
