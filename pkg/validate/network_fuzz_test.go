package validate

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzNetworkInputs: what Bridge, IPv6CIDR and Resolvers accept is what the
// agent may put into libvirt XML and the guest's network-config: a bridge name
// of at most 15 safe characters, an IPv6 prefix and gateway that parse as
// such, resolvers that are canonical addresses. Nothing else gets through,
// and nothing panics.
func FuzzNetworkInputs(f *testing.F) {
	for _, s := range [][3]string{
		{"br-public", "2001:db8:0:5::1/64", "fe80::1"},
		{"br0'/>", "2001:db8::1", "2001:db8::1"},
		{"vmbr0.100", "::ffff:198.51.100.1/120", "198.51.100.53"},
		{"", "fe80::1%eth0/64", "dns.example"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, bridge, addr, gw string) {
		if Bridge(bridge) == nil {
			if len(bridge) == 0 || len(bridge) > 15 || strings.Trim(bridge, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" ||
				strings.HasPrefix(bridge, "-") || strings.HasPrefix(bridge, ".") {
				t.Fatalf("Bridge accepted %q", bridge)
			}
		}
		if IPv6CIDR(addr, gw) == nil && addr != "" {
			p, err := netip.ParsePrefix(addr)
			if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("IPv6CIDR accepted address %q", addr)
			}
			if gw != "" {
				g, err := netip.ParseAddr(gw)
				if err != nil || !g.Is6() || g.Zone() != "" || g.IsMulticast() {
					t.Fatalf("IPv6CIDR accepted gateway %q", gw)
				}
			}
		}
		if rs, err := Resolvers([]string{gw}); err == nil {
			a, perr := netip.ParseAddr(gw)
			if perr != nil || len(rs) != 1 || rs[0] != a.String() || a.Zone() != "" {
				t.Fatalf("Resolvers accepted %q as %v", gw, rs)
			}
		}
	})
}
