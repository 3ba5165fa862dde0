package hypervisor

import (
	"net/netip"
	"slices"
	"testing"

	"libvirt.org/go/libvirtxml"
)

// TestTrafficFilterInDomainXML: a bridged guest's interface carries the
// filterref with one IP parameter per IPv4 address and, with IPv6, the
// dual-stack filter with IPV6 for its address and its EUI-64 link-local one.
func TestTrafficFilterInDomainXML(t *testing.T) {
	const mac = "52:54:00:ab:cd:ef"
	cases := []struct {
		name       string
		v4, v6     []string
		wantFilter string
		wantParams []FilterParam
	}{
		{"v4 only", []string{"198.51.100.10"}, nil, CleanTrafficFilter, []FilterParam{{"IP", "198.51.100.10"}}},
		{"dual stack", []string{"198.51.100.10"}, []string{"2001:db8:0:5::1"}, DualStackFilter,
			[]FilterParam{{"IP", "198.51.100.10"}, {"IPV6", "2001:db8:0:5::1"}, {"IPV6", "fe80::5054:ff:feab:cdef"}}},
		{"v6 only", nil, []string{"2001:db8:0:5::1"}, IPv6OnlyFilter,
			[]FilterParam{{"IPV6", "2001:db8:0:5::1"}, {"IPV6", "fe80::5054:ff:feab:cdef"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v4, v6 []netip.Addr
			for _, a := range c.v4 {
				v4 = append(v4, netip.MustParseAddr(a))
			}
			for _, a := range c.v6 {
				v6 = append(v6, netip.MustParseAddr(a))
			}
			spec := DomainSpec{Name: "vm1", Type: "qemu", Machine: "pc", Emulator: "/usr/bin/qemu-system-x86_64", VCPUs: 1,
				MemoryMiB: 128, DiskPath: "/p/d.qcow2", MAC: mac, Network: "bridge:br-public", ConsoleLog: "/l/c.log",
				Filter: TrafficFilter(mac, v4, v6)}
			d, x := domainRoundTrip(t, spec)
			iface := d.Devices.Interfaces[0]
			if iface.Source.Bridge == nil || iface.Source.Bridge.Bridge != "br-public" || iface.MAC.Address != mac {
				t.Fatalf("interface %+v", iface)
			}
			if iface.FilterRef == nil || iface.FilterRef.Filter != c.wantFilter {
				t.Fatalf("filterref %+v, want %s\n%s", iface.FilterRef, c.wantFilter, x)
			}
			var got []FilterParam
			for _, p := range iface.FilterRef.Parameters {
				got = append(got, FilterParam{p.Name, p.Value})
			}
			if !slices.Equal(got, c.wantParams) {
				t.Fatalf("params %v, want %v", got, c.wantParams)
			}
		})
	}
	// No filter: no filterref (today's user/network interfaces).
	d, x := domainRoundTrip(t, DomainSpec{Name: "vm2", Type: "qemu", MAC: mac, Network: "user", DiskPath: "/d", ConsoleLog: "/c"})
	if d.Devices.Interfaces[0].FilterRef != nil {
		t.Fatalf("unfiltered interface got a filterref:\n%s", x)
	}
}

func TestLinkLocalEUI64(t *testing.T) {
	for mac, want := range map[string]string{
		"52:54:00:12:34:56": "fe80::5054:ff:fe12:3456",
		"02:00:00:00:00:01": "fe80::ff:fe00:1",
	} {
		got, ok := LinkLocalEUI64(mac)
		if !ok || got.String() != want {
			t.Errorf("LinkLocalEUI64(%s) = %v %v, want %s", mac, got, ok, want)
		}
	}
	if _, ok := LinkLocalEUI64("nope"); ok {
		t.Error("bad MAC accepted")
	}
}

// TestAgentFiltersXML: the agent's filters refer to libvirt's standard ones
// and accept outgoing IPv6 only at a priority after no-ipv6-spoofing's chain
// (-610) and before the final drop (1000); the dual-stack one builds on
// clean-traffic, the IPv6-only one ends with no-other-l2-traffic (no IPv4, no
// ARP).
func TestAgentFiltersXML(t *testing.T) {
	xs, err := agentFilters()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		DualStackFilter: {CleanTrafficFilter, "no-ipv6-spoofing", "allow-incoming-ipv6"},
		IPv6OnlyFilter:  {"no-mac-spoofing", "no-ipv6-spoofing", "allow-incoming-ipv6", "no-other-l2-traffic", "qemu-announce-self"},
	}
	uuids := map[string]string{DualStackFilter: dualStackUUID, IPv6OnlyFilter: ipv6OnlyUUID}
	if len(xs) != len(want) {
		t.Fatalf("%d filters", len(xs))
	}
	for _, x := range xs {
		var f libvirtxml.NWFilter
		if err := f.Unmarshal(x); err != nil {
			t.Fatalf("%v\n%s", err, x)
		}
		if f.UUID != uuids[f.Name] || f.Chain != "root" {
			t.Fatalf("%+v", f)
		}
		var refs []string
		accept := 0
		for _, e := range f.Entries {
			if e.Ref != nil {
				refs = append(refs, e.Ref.Filter)
				if !slices.Contains(filtersNeeded, e.Ref.Filter) {
					t.Errorf("%s refers to %s, which EnsureTrafficFilters does not check", f.Name, e.Ref.Filter)
				}
			}
			if r := e.Rule; r != nil {
				if r.Action != "accept" || r.Direction != "out" || r.MAC == nil || r.MAC.ProtocolID.Str != "ipv6" || r.Priority <= -610 || r.Priority >= 1000 {
					t.Fatalf("rule %+v", r)
				}
				accept++
			}
		}
		if !slices.Equal(refs, want[f.Name]) || accept != 1 {
			t.Fatalf("%s: refs %v accept rules %d\n%s", f.Name, refs, accept, x)
		}
	}
}
