package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// The traffic filters a bridged guest's interface gets.
//
// CleanTrafficFilter is libvirt's own clean-traffic (Debian package
// libvirt-daemon-config-nwfilter): frames from the guest must carry its MAC
// (no-mac-spoofing), IPv4 packets and ARP one of the addresses in the IP
// parameter (no-ip-spoofing, no-arp-spoofing), and every other L2 protocol is
// dropped in both directions (no-other-l2-traffic) — IPv6 included.
//
// DualStackFilter is the agent's own filter for guests that also have IPv6:
// clean-traffic as above, plus libvirt's no-ipv6-spoofing with the IPV6
// parameter, evaluated before clean-traffic's final drop. What it enforces
// for IPv6: a frame from the guest carries its MAC, and an IPv6 packet's
// source is one of the IPV6 values (the assigned address and the guest's
// EUI-64 link-local address derived from its MAC; no-ipv6-spoofing also lets
// UDP from any fe80::/10 source out, for DHCPv6). The destination is not
// restricted, and neighbour discovery is not checked beyond that source rule
// (nwfilter has no ND-proxy check like no-arp-spoofing): a guest can answer
// neighbour solicitations for addresses it does not own, but it cannot send
// a packet from them. All IPv6 towards the guest is accepted
// (allow-incoming-ipv6), as clean-traffic accepts all IPv4 towards it.
//
// IPv6OnlyFilter is for a guest without IPv4: the IPv6 rules above with
// libvirt's no-mac-spoofing and no-other-l2-traffic, so it can send no IPv4
// and no ARP at all (clean-traffic without an IP value would instead learn
// the guest's address from its first packet).
const (
	CleanTrafficFilter = "clean-traffic"
	DualStackFilter    = "hostplane-clean-traffic"
	IPv6OnlyFilter     = "hostplane-clean-traffic-ipv6"
	// The UUIDs are fixed so that redefining a filter (each agent start)
	// updates it instead of clashing with the copy already defined.
	dualStackUUID = "6f3c1c7e-5b1a-4d2e-9b7a-2f0c8e1d4a10"
	ipv6OnlyUUID  = "6f3c1c7e-5b1a-4d2e-9b7a-2f0c8e1d4a11"
)

// filtersNeeded are the libvirt filters the agent's filters refer to.
var filtersNeeded = []string{CleanTrafficFilter, "no-mac-spoofing", "no-ipv6-spoofing", "allow-incoming-ipv6",
	"no-other-l2-traffic", "qemu-announce-self"}

// InterfaceFilter is a filterref on a guest's interface.
type InterfaceFilter struct {
	Name   string
	Params []FilterParam // a name may repeat: a list (IP for each address)
}

// FilterParam is one parameter of a filterref.
type FilterParam struct{ Name, Value string }

// TrafficFilter is the filter a bridged guest with MAC mac and the given
// addresses gets (the addresses are checked by the caller; at least one).
// libvirt fills in the MAC parameter from the interface itself.
func TrafficFilter(mac string, v4, v6 []netip.Addr) *InterfaceFilter {
	f := &InterfaceFilter{Name: CleanTrafficFilter}
	for _, a := range v4 {
		f.Params = append(f.Params, FilterParam{"IP", a.String()})
	}
	if len(v6) == 0 {
		return f
	}
	f.Name = DualStackFilter
	if len(v4) == 0 {
		f.Name = IPv6OnlyFilter
	}
	for _, a := range v6 {
		f.Params = append(f.Params, FilterParam{"IPV6", a.String()})
	}
	if ll, ok := LinkLocalEUI64(mac); ok {
		f.Params = append(f.Params, FilterParam{"IPV6", ll.String()})
	}
	return f
}

// LinkLocalEUI64 is the fe80::/64 address a Linux guest derives from mac
// (modified EUI-64, the kernel's default addr_gen_mode).
func LinkLocalEUI64(mac string) (netip.Addr, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, false
	}
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15] = hw[0]^0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), true
}

// agentFilters are the definitions of DualStackFilter and IPv6OnlyFilter.
// The rule order is by priority: no-ipv6-spoofing's chain (-610) runs before
// the accept (-550), and both before clean-traffic's ARP rules (-500) and the
// final drop of no-other-l2-traffic (1000).
func agentFilters() ([]string, error) {
	ref := func(name string) libvirtxml.NWFilterEntry {
		return libvirtxml.NWFilterEntry{Ref: &libvirtxml.NWFilterRef{Filter: name}}
	}
	v6 := []libvirtxml.NWFilterEntry{
		ref("no-ipv6-spoofing"),
		{Rule: &libvirtxml.NWFilterRule{Action: "accept", Direction: "out", Priority: -550,
			MAC: &libvirtxml.NWFilterRuleMAC{ProtocolID: libvirtxml.NWFilterField{Str: "ipv6"}}}},
		ref("allow-incoming-ipv6"),
	}
	fs := []libvirtxml.NWFilter{
		{Name: DualStackFilter, UUID: dualStackUUID, Chain: "root",
			Entries: append([]libvirtxml.NWFilterEntry{ref(CleanTrafficFilter)}, v6...)},
		{Name: IPv6OnlyFilter, UUID: ipv6OnlyUUID, Chain: "root",
			Entries: append(append([]libvirtxml.NWFilterEntry{ref("no-mac-spoofing")}, v6...),
				ref("no-other-l2-traffic"), ref("qemu-announce-self"))},
	}
	var out []string
	for _, f := range fs {
		x, err := f.Marshal()
		if err != nil {
			return nil, fmt.Errorf("nwfilter %s: %w", f.Name, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// nwfilterHint says how to get libvirt's standard filters on Debian.
const nwfilterHint = "install Debian's libvirt-daemon-config-nwfilter (scripts/install-nwfilter.sh does it and loads the filters into a running libvirtd)"

// EnsureTrafficFilters checks that libvirt has the filters bridged guests
// use and defines DualStackFilter and IPv6OnlyFilter (idempotent). It fails, saying what to
// install, when libvirt's standard filters or the firewall tools nwfilter runs
// (ebtables, iptables, ip6tables) are missing.
func (l *Libvirt) EnsureTrafficFilters(ctx context.Context) error {
	if err := firewallTools(); err != nil {
		return err
	}
	lv, err := l.conn(ctx)
	if err != nil {
		return err
	}
	for _, name := range filtersNeeded {
		if _, err := lv.NwfilterLookupByName(name); err != nil {
			var le libvirt.Error
			if errors.As(err, &le) && le.Code == uint32(libvirt.ErrNoNwfilter) {
				return fmt.Errorf("libvirt has no nwfilter %q: %s", name, nwfilterHint)
			}
			return l.translate("look up nwfilter", name, err)
		}
	}
	xs, err := agentFilters()
	if err != nil {
		return err
	}
	for _, x := range xs {
		if _, err := lv.NwfilterDefineXML(x); err != nil {
			return l.translate("define nwfilter", "hostplane-clean-traffic*", err)
		}
	}
	return nil
}

// firewallTools checks for the programs libvirt's nwfilter driver runs when a
// filtered guest starts.
func firewallTools() error {
	for _, t := range []string{"ebtables", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(t); err == nil {
			continue
		}
		found := false
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, err := os.Stat(filepath.Join(dir, t)); err == nil && !fi.IsDir() {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s not found: libvirt's nwfilter needs it for bridged guests (Debian: apt-get install ebtables iptables; scripts/install-nwfilter.sh)", t)
		}
	}
	return nil
}

// CheckBridge reports whether name is an existing Linux bridge on this host.
func CheckBridge(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name, "bridge")); err != nil {
		if _, err2 := os.Stat(filepath.Join("/sys/class/net", name)); err2 == nil {
			return fmt.Errorf("bridge %s: the interface exists but is not a bridge", name)
		}
		return fmt.Errorf("bridge %s does not exist on this host (create it, e.g. ip link add %s type bridge, and attach the uplink)", name, name)
	}
	return nil
}
