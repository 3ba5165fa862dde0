package seed

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestNetworkConfigV2 checks the network-config (version 2, as netplan and
// cloud-init read it) for DHCP, static IPv4, and static IPv4 + IPv6 with
// gateways and resolvers.
func TestNetworkConfigV2(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	match := map[string]any{"macaddress": mac}
	cases := []struct {
		name string
		c    Config
		want map[string]any
	}{
		{"dhcp", Config{MAC: mac}, map[string]any{"match": match, "set-name": "eth0", "dhcp4": true}},
		{"ipv4", Config{MAC: mac, IPv4CIDR: "198.51.100.10/24", Gateway4: "198.51.100.1"}, map[string]any{
			"match": match, "set-name": "eth0", "dhcp4": false, "addresses": []any{"198.51.100.10/24"},
			"routes": []any{map[string]any{"to": "0.0.0.0/0", "via": "198.51.100.1"}}}},
		{"dual stack", Config{MAC: mac, IPv4CIDR: "198.51.100.10/24", Gateway4: "198.51.100.1", IPv6CIDR: "2001:db8:0:5::1/64",
			Gateway6: "fe80::1", Resolvers: []string{"198.51.100.53", "2001:db8::53"}}, map[string]any{
			"match": match, "set-name": "eth0", "dhcp4": false, "dhcp6": false,
			"addresses": []any{"198.51.100.10/24", "2001:db8:0:5::1/64"},
			"routes": []any{
				map[string]any{"to": "0.0.0.0/0", "via": "198.51.100.1"},
				map[string]any{"to": "::/0", "via": "fe80::1", "on-link": true},
			},
			"nameservers": map[string]any{"addresses": []any{"198.51.100.53", "2001:db8::53"}}}},
		{"ipv6 only", Config{MAC: mac, IPv6CIDR: "2001:db8:0:5::1/64", Gateway6: "2001:db8::1"}, map[string]any{
			"match": match, "set-name": "eth0", "dhcp4": false, "dhcp6": false, "addresses": []any{"2001:db8:0:5::1/64"},
			"routes": []any{map[string]any{"to": "::/0", "via": "2001:db8::1", "on-link": true}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files, err := Files(c.c)
			if err != nil {
				t.Fatal(err)
			}
			var nc map[string]any
			for _, f := range files {
				if f.Name == "network-config" {
					if err := json.Unmarshal(f.Data, &nc); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := map[string]any{"version": float64(2), "ethernets": map[string]any{"eth0": c.want}}
			if !reflect.DeepEqual(nc, want) {
				got, _ := json.Marshal(nc)
				exp, _ := json.Marshal(want)
				t.Fatalf("network-config\n got %s\nwant %s", got, exp)
			}
		})
	}
}
