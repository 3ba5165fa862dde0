package server

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestRDNSConfig: the PowerDNS settings are checked and named; the key is
// read from its file and never appears in an error.
func TestRDNSConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("s3cret-pdns-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := RDNSConfig{APIURL: "http://127.0.0.1:8081", APIKeyFile: keyFile, Nameservers: "ns1.example.com, ns2.example.com."}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	if good.key != "s3cret-pdns-key" || good.ServerID != "localhost" || good.TTL != 3600 || good.Resync != 5*time.Minute ||
		strings.Join(good.nameservers(), ",") != "ns1.example.com,ns2.example.com." {
		t.Fatalf("filled config: %+v", good)
	}
	if err := (&RDNSConfig{}).validate(); err != nil {
		t.Fatalf("no PowerDNS is valid: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		cfg  RDNSConfig
		want string
	}{
		{RDNSConfig{APIURL: "ftp://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com"}, "pdns-api-url"},
		{RDNSConfig{APIURL: "http://u:p@x", APIKeyFile: keyFile, Nameservers: "ns1.example.com"}, "pdns-api-url"},
		{RDNSConfig{APIURL: "http://x", Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: filepath.Join(dir, "missing"), Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: empty, Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile}, "pdns-nameservers"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1"}, "pdns-nameservers"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", ServerID: "a/b"}, "pdns-server-id"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", TTL: -1}, "pdns-ptr-ttl"},
	} {
		err := c.cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: %v, want an error naming %s (without the key)", c.cfg, err, c.want)
		}
	}
}
