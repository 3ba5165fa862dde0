package reconcile

import (
	"net/netip"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDesiredPTRs: each PTR goes to the longest mapped zone holding its
// address; terminated servers, addresses without a PTR or outside every zone,
// and zones being removed contribute nothing.
func TestDesiredPTRs(t *testing.T) {
	zone := func(name string, removing bool) store.ReverseZone {
		return store.ReverseZone{ReverseZone: api.ReverseZone{Zone: name}, Removing: removing}
	}
	zones := []store.ReverseZone{
		zone("51.198.in-addr.arpa", false), zone("100.51.198.in-addr.arpa", false),
		zone("7.51.198.in-addr.arpa", true), zone("8.b.d.0.1.0.0.2.ip6.arpa", false),
	}
	srv := func(id, status, ipv4 string, v6 string, ptrs map[string]string) store.Server {
		s := store.Server{Server: api.Server{ID: id, Status: status, IPv4: ipv4}, PTRs: ptrs}
		if v6 != "" {
			s.Addrs = []store.ServerAddr{{Pool: "pub6", Addr: netip.MustParsePrefix(v6)}}
		}
		return s
	}
	servers := []store.Server{
		srv("a", api.ServerRunning, "198.51.100.10/24", "2001:db8:0:1::1/64", map[string]string{"198.51.100.10": "a.example.test", "2001:db8:0:1::1": "a6.example.test"}),
		srv("b", api.ServerStopped, "198.51.7.10/24", "", map[string]string{"198.51.7.10": "b.example.test"}),
		srv("c", api.ServerTerminated, "198.51.100.11/24", "", map[string]string{"198.51.100.11": "c.example.test"}),
		srv("d", api.ServerRunning, "203.0.113.5/24", "", map[string]string{"203.0.113.5": "d.example.test"}),
		srv("e", api.ServerRunning, "198.51.100.12/24", "", nil),
	}
	d := Desired(zones, servers)
	got := map[string]map[string]string{}
	for name, z := range d {
		got[name] = map[string]string{}
		for ip, h := range z.PTRs {
			got[name][ip.String()] = h
		}
	}
	want := map[string]map[string]string{
		"100.51.198.in-addr.arpa":  {"198.51.100.10": "a.example.test"},
		"51.198.in-addr.arpa":      {"198.51.7.10": "b.example.test"}, // its /24 zone is being removed
		"8.b.d.0.1.0.0.2.ip6.arpa": {"2001:db8:0:1::1": "a6.example.test"},
	}
	if len(got) != len(want) {
		t.Fatalf("zones %v, want %v", got, want)
	}
	for name, w := range want {
		if len(got[name]) != len(w) {
			t.Errorf("zone %s: %v, want %v", name, got[name], w)
		}
		for ip, h := range w {
			if got[name][ip] != h {
				t.Errorf("zone %s: %s → %q, want %q", name, ip, got[name][ip], h)
			}
		}
	}
}
