// Package ipam is the address bookkeeping behind IP pools: pool definitions
// and their validation, the overlap check between pools, and the allocation
// state of one pool (addresses or IPv6 prefixes in use, and released ones in
// quarantine until a given time).
//
// It is pure logic for the FSM: a pool's address is allocated inside the Raft
// command that places a server, so every coordinator must compute the same
// answer from the same log. Nothing here reads the clock, draws random numbers
// or depends on map iteration order; the current time comes in as a parameter
// (the command's time), allocation always returns the lowest free address,
// and State serializes in a canonical, sorted form.
package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"

	"github.com/hostplane/hostplane/pkg/validate"
)

// DefaultPrefixLen is the length of the IPv6 prefix handed to each server
// when a pool does not name one.
const DefaultPrefixLen = 64

// Pool is an operator's IP pool definition, as stored and as sent to the API.
// Addresses are kept as text so that Validate can name the field at fault.
type Pool struct {
	// Name is lowercase letters, digits and dashes, up to 63.
	Name string `json:"name"`
	// CIDR is the pool's network in canonical form: 203.0.113.0/24 or
	// 2001:db8::/48.
	CIDR string `json:"cidr"`
	// Gateway is the servers' default gateway. IPv4: inside the pool and not
	// its network or broadcast address. IPv6: inside the pool, or link-local
	// (fe80::1, as Hetzner does).
	Gateway string `json:"gateway"`
	// Exclude lists addresses or CIDRs inside the pool that are never
	// allocated.
	Exclude []string `json:"exclude,omitempty"`
	// Nodes optionally restricts the pool to these hypervisor nodes.
	Nodes []string `json:"nodes,omitempty"`
	// PrefixLen is, for an IPv6 pool, the length of the prefix each server
	// gets (DefaultPrefixLen when 0). It must be 0 for IPv4.
	PrefixLen int `json:"prefixLen,omitempty"`
	// Bridge is the Linux bridge on the nodes that the pool's addresses are
	// reachable on: only nodes that report it get addresses of the pool.
	// Empty: the node's default network (any node the pool is limited to).
	Bridge string `json:"bridge,omitempty"`
	// Resolvers are the DNS resolvers given to the pool's servers.
	Resolvers []string `json:"resolvers,omitempty"`
}

// FieldError is a refused pool definition, naming the field: "name", "cidr",
// "gateway", "exclude[2]", "nodes[0]", "prefixLen".
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "ipam: " + e.Field + ": " + e.Message }

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	nodeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// ValidName reports whether s is a valid pool name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// maxResolvers bounds a pool's resolver list (glibc reads three).
const maxResolvers = 8

// maxSlotBits bounds the number of allocatable units in a pool (2^maxSlotBits)
// so that offsets and counts fit in a uint64.
const maxSlotBits = 63

// layout is a validated pool in parsed form.
type layout struct {
	prefix   netip.Prefix
	gateway  netip.Addr
	v6       bool
	shift    int // address bits below one unit: 0 for IPv4, 128-PrefixLen for IPv6
	slotBits int // bits numbering the units inside the pool
	excludes []netip.Prefix
}

// size is the number of units (addresses or prefixes) the pool spans.
func (l *layout) size() uint64 { return uint64(1) << l.slotBits }

// Validate reports the first problem with the definition as a *FieldError,
// or nil.
func (p Pool) Validate() error {
	_, err := p.layout()
	if err != nil {
		return err
	}
	return nil
}

func (p Pool) layout() (*layout, *FieldError) {
	if !nameRE.MatchString(p.Name) {
		return nil, fieldErr("name", "%q is not lowercase letters, digits and dashes (up to 63, not starting with a dash)", p.Name)
	}
	pfx, err := netip.ParsePrefix(p.CIDR)
	if err != nil {
		return nil, fieldErr("cidr", "%q is not a CIDR (203.0.113.0/24 or 2001:db8::/48)", p.CIDR)
	}
	if pfx.Addr().Is4In6() {
		return nil, fieldErr("cidr", "%q is an IPv4-mapped IPv6 prefix; give the IPv4 form", p.CIDR)
	}
	if pfx.Masked() != pfx {
		return nil, fieldErr("cidr", "%q has host bits set; did you mean %s?", p.CIDR, pfx.Masked())
	}
	l := &layout{prefix: pfx, v6: pfx.Addr().Is6()}
	if l.v6 {
		pl := p.PrefixLen
		if pl == 0 {
			pl = DefaultPrefixLen
		}
		if pl <= pfx.Bits() || pl > 128 {
			return nil, fieldErr("prefixLen", "%d must be longer than the pool's /%d and at most 128", pl, pfx.Bits())
		}
		if pl-pfx.Bits() > maxSlotBits {
			return nil, fieldErr("prefixLen", "a /%d holds more than 2^%d /%d prefixes", pfx.Bits(), maxSlotBits, pl)
		}
		l.shift = 128 - pl
		l.slotBits = pl - pfx.Bits()
	} else {
		if p.PrefixLen != 0 {
			return nil, fieldErr("prefixLen", "is for IPv6 pools only; an IPv4 pool hands out single addresses")
		}
		if pfx.Bits() > 30 {
			return nil, fieldErr("cidr", "%s has no room for a gateway and a server (at most /30)", pfx)
		}
		l.slotBits = 32 - pfx.Bits()
	}

	gw, err := netip.ParseAddr(p.Gateway)
	switch {
	case err != nil || gw.Zone() != "":
		return nil, fieldErr("gateway", "%q is not an IP address", p.Gateway)
	case gw.Is4() != pfx.Addr().Is4():
		return nil, fieldErr("gateway", "%s is not of the pool's address family", gw)
	case l.v6 && gw.IsLinkLocalUnicast():
		// fe80::1 style: outside the pool, blocks nothing.
	case !pfx.Contains(gw):
		return nil, fieldErr("gateway", "%s is outside the pool %s", gw, pfx)
	case !l.v6 && gw == pfx.Addr():
		return nil, fieldErr("gateway", "%s is the pool's network address", gw)
	case !l.v6 && gw == lastAddr(pfx):
		return nil, fieldErr("gateway", "%s is the pool's broadcast address", gw)
	}
	l.gateway = gw

	for i, s := range p.Exclude {
		field := fmt.Sprintf("exclude[%d]", i)
		var ex netip.Prefix
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			ex = netip.PrefixFrom(a, a.BitLen())
		} else if e, err := netip.ParsePrefix(s); err == nil {
			if e.Masked() != e {
				return nil, fieldErr(field, "%q has host bits set; did you mean %s?", s, e.Masked())
			}
			ex = e
		} else {
			return nil, fieldErr(field, "%q is not an address or a CIDR", s)
		}
		if ex.Addr().Is4() != pfx.Addr().Is4() || ex.Bits() < pfx.Bits() || !pfx.Contains(ex.Addr()) {
			return nil, fieldErr(field, "%s is not inside the pool %s", ex, pfx)
		}
		l.excludes = append(l.excludes, ex)
	}

	seen := make(map[string]bool, len(p.Nodes))
	for i, n := range p.Nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		if !nodeRE.MatchString(n) {
			return nil, fieldErr(field, "%q is not a node id (a-z0-9._-, up to 63)", n)
		}
		if seen[n] {
			return nil, fieldErr(field, "%q is listed twice", n)
		}
		seen[n] = true
	}
	if p.Bridge != "" {
		if err := validate.Bridge(p.Bridge); err != nil {
			return nil, fieldErr("bridge", "%s (a Linux interface name)", validate.Reason(err))
		}
	}
	if len(p.Resolvers) > maxResolvers {
		return nil, fieldErr("resolvers", "at most %d resolvers", maxResolvers)
	}
	for i, r := range p.Resolvers {
		a, err := netip.ParseAddr(r)
		if err != nil || a.Zone() != "" || a.String() != r {
			return nil, fieldErr(fmt.Sprintf("resolvers[%d]", i), "%q is not an IP address in canonical form", r)
		}
	}
	return l, nil
}

// DecodePool decodes a JSON pool definition (unknown fields refused) and
// validates it.
func DecodePool(data []byte) (Pool, error) {
	var p Pool
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Pool{}, fmt.Errorf("ipam: pool definition: %w", err)
	}
	if dec.More() {
		return Pool{}, fmt.Errorf("ipam: pool definition: trailing data")
	}
	if err := p.Validate(); err != nil {
		return Pool{}, err
	}
	return p, nil
}

// Overlaps reports whether two pools share any address. A pool whose CIDR
// does not parse overlaps nothing (Validate refuses it).
func Overlaps(a, b Pool) bool {
	pa, err1 := netip.ParsePrefix(a.CIDR)
	pb, err2 := netip.ParsePrefix(b.CIDR)
	if err1 != nil || err2 != nil {
		return false
	}
	return pa.Overlaps(pb)
}

// CheckAdd validates p and checks it against the pools already defined:
// its name must be new and its CIDR must overlap none of theirs. The error is
// a *FieldError; an overlap names the pool it overlaps.
func CheckAdd(existing []Pool, p Pool) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for _, e := range existing {
		if e.Name == p.Name {
			return fieldErr("name", "a pool named %q exists", p.Name)
		}
		if Overlaps(e, p) {
			return fieldErr("cidr", "%s overlaps pool %q (%s)", p.CIDR, e.Name, e.CIDR)
		}
	}
	return nil
}

// CheckSet validates a whole set of pools: each valid, names distinct, no two
// overlapping. The error names the later pool's field and the earlier pool.
func CheckSet(pools []Pool) error {
	for i, p := range pools {
		if err := CheckAdd(pools[:i], p); err != nil {
			return fmt.Errorf("pool %q: %w", p.Name, err)
		}
	}
	return nil
}

// lastAddr is the highest address of p (the broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	u := fromAddr(p.Addr())
	host := p.Addr().BitLen() - p.Bits()
	u = u.or(u128{}.not().shr(uint(128 - host)))
	return u.addr(p.Addr().Is4())
}
