// Package rdns serves the PTR names recorded in the replicated state from
// PowerDNS Authoritative: reverse zones (IPv4 in-addr.arpa and IPv6 nibble
// ip6.arpa zones), the names of addresses inside them, a client of PowerDNS's
// HTTP API, and the leader's reconciler that makes PowerDNS follow the state.
package rdns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

const (
	v4Suffix = "in-addr.arpa"
	v6Suffix = "ip6.arpa"
)

// Zone is a reverse zone: its canonical name (lower case, no trailing dot)
// and the prefix of addresses whose PTR names lie in it.
type Zone struct {
	Name   string
	Prefix netip.Prefix
}

// FQDN is the zone's absolute name, as PowerDNS wants it (trailing dot).
func (z Zone) FQDN() string { return z.Name + "." }

// ErrZone is wrapped by every ParseZone error.
var ErrZone = errors.New("invalid reverse zone")

func zoneErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrZone, fmt.Sprintf(format, a...))
}

// ParseZone validates a reverse zone name and returns it with the prefix it
// covers. It accepts one trailing dot and any case; the IPv4 zones are 1-3
// octets under in-addr.arpa (198.51.100.0/24 is 100.51.198.in-addr.arpa), the
// IPv6 zones 1-31 nibbles under ip6.arpa (2001:db8::/32 is
// 8.b.d.0.1.0.0.2.ip6.arpa). Classless (RFC 2317) delegations and the bare
// in-addr.arpa / ip6.arpa are refused.
func ParseZone(s string) (Zone, error) {
	if s == "" {
		return Zone{}, zoneErr("the zone name is empty")
	}
	if len(s) > 254 {
		return Zone{}, zoneErr("the zone name is longer than 253 characters")
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	switch {
	case name == v4Suffix || name == v6Suffix:
		return Zone{}, zoneErr("%s itself cannot be mapped; name a zone under it", name)
	case strings.HasSuffix(name, "."+v4Suffix):
		return parseV4(name, strings.TrimSuffix(name, "."+v4Suffix))
	case strings.HasSuffix(name, "."+v6Suffix):
		return parseV6(name, strings.TrimSuffix(name, "."+v6Suffix))
	}
	return Zone{}, zoneErr("%q is not under in-addr.arpa or ip6.arpa", s)
}

func parseV4(name, labels string) (Zone, error) {
	parts := strings.Split(labels, ".")
	if len(parts) > 3 {
		return Zone{}, zoneErr("an IPv4 reverse zone has 1 to 3 octets (a /8, /16 or /24), not %d", len(parts))
	}
	var a [4]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || p != strconv.Itoa(n) {
			return Zone{}, zoneErr("label %q is not an octet 0-255 without leading zeros (classless RFC 2317 zones are not supported)", p)
		}
		a[len(parts)-1-i] = byte(n)
	}
	return Zone{Name: name, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 8*len(parts))}, nil
}

func parseV6(name, labels string) (Zone, error) {
	parts := strings.Split(labels, ".")
	if len(parts) > 31 {
		return Zone{}, zoneErr("an IPv6 reverse zone has 1 to 31 nibbles, not %d", len(parts))
	}
	var a [16]byte
	for i, p := range parts {
		if len(p) != 1 || !strings.Contains("0123456789abcdef", p) {
			return Zone{}, zoneErr("label %q is not one hex digit (a nibble)", p)
		}
		v, _ := strconv.ParseUint(p, 16, 8)
		n := len(parts) - 1 - i // nibble index from the left
		if n%2 == 0 {
			a[n/2] |= byte(v) << 4
		} else {
			a[n/2] |= byte(v)
		}
	}
	return Zone{Name: name, Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 4*len(parts))}, nil
}

// PTRName is the reverse name of an address, absolute (trailing dot):
// 10.100.51.198.in-addr.arpa. for 198.51.100.10, 32 nibbles under ip6.arpa
// for an IPv6 address.
func PTRName(ip netip.Addr) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(a[i])))
			b.WriteByte('.')
		}
		b.WriteString(v4Suffix + ".")
		return b.String()
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[a[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[a[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString(v6Suffix + ".")
	return b.String()
}

// Match returns the longest of zones whose prefix holds ip.
func Match(zones []Zone, ip netip.Addr) (Zone, bool) {
	ip = ip.Unmap()
	best, ok := Zone{}, false
	for _, z := range zones {
		if z.Prefix.Contains(ip) && (!ok || z.Prefix.Bits() > best.Prefix.Bits()) {
			best, ok = z, true
		}
	}
	return best, ok
}
