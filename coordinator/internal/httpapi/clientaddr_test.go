package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustProxies(t testing.TB, s ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClientIPBehindTrustedProxies: the client address of requests from
// a trusted proxy is X-Forwarded-For's rightmost untrusted hop; from any
// other peer the header is not read; without the setting nothing changes.
func TestClientIPBehindTrustedProxies(t *testing.T) {
	trusted := mustProxies(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer, XFF ignored", "198.51.100.4:5000", []string{"203.0.113.7"}, "198.51.100.4"},
		{"trusted peer, no XFF", "10.1.1.1:5000", nil, "10.1.1.1"},
		{"trusted peer, one hop", "10.1.1.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"spoofed left hop", "10.1.1.1:5000", []string{"1.2.3.4, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops skipped", "10.1.1.1:5000", []string{"1.2.3.4, 203.0.113.7, 10.9.9.9,10.2.2.2"}, "203.0.113.7"},
		{"several headers are one list", "10.1.1.1:5000", []string{"1.2.3.4, 203.0.113.7", "10.9.9.9"}, "203.0.113.7"},
		{"several headers, last untrusted", "10.1.1.1:5000", []string{"203.0.113.7", "198.51.100.9"}, "198.51.100.9"},
		{"all trusted: leftmost", "10.1.1.1:5000", []string{"10.5.5.5, 10.6.6.6"}, "10.5.5.5"},
		{"garbage: the peer", "10.1.1.1:5000", []string{"1.2.3.4, nonsense"}, "10.1.1.1"},
		{"garbage left of the client is not read", "10.1.1.1:5000", []string{"nonsense, 203.0.113.7"}, "203.0.113.7"},
		{"unknown: the peer", "10.1.1.1:5000", []string{"unknown"}, "10.1.1.1"},
		{"empty header: the peer", "10.1.1.1:5000", []string{""}, "10.1.1.1"},
		{"empty elements skipped", "10.1.1.1:5000", []string{"203.0.113.7,, ,\t"}, "203.0.113.7"},
		{"with a port", "10.1.1.1:5000", []string{"203.0.113.7:4711"}, "203.0.113.7"},
		{"IPv6 with a port", "10.1.1.1:5000", []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		{"IPv6 in brackets", "10.1.1.1:5000", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv4-mapped", "10.1.1.1:5000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"IPv6 trusted peer", "[2001:db8:ffff::1]:5000", []string{"2001:db8::7, 2001:db8:ffff::2"}, "2001:db8::7"},
		{"IPv4-mapped trusted peer", "[::ffff:10.1.1.1]:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a Forwarded header is not read", "10.1.1.1:5000", nil, "10.1.1.1"},
		// nginx passes a client's own X-Real-Ip through unless told to set
		// it; cloud load balancers never set it.
		{"X-Real-Ip is not read", "10.1.1.1:5000", nil, "10.1.1.1"},
		{"X-Real-Ip is not read beside X-Forwarded-For", "10.1.1.1:5000", []string{"203.0.113.7"}, "203.0.113.7"},
	}
	for _, tc := range cases {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		for _, v := range tc.xff {
			r.Header.Add("x-forwarded-for", v)
		}
		r.Header.Set("Forwarded", "for=192.0.2.66")
		r.Header.Set("X-Real-Ip", "192.0.2.77") // a hostile client's, passed through
		a := &API{cfg: Config{TrustedProxies: trusted}}
		if got := a.clientIP(r); got != tc.want {
			t.Errorf("%s: peer %s, X-Forwarded-For %q: %s; want %s", tc.name, tc.peer, tc.xff, got, tc.want)
		}
		// Without --trusted-proxies the peer is the client, always.
		a = &API{}
		host := strings.TrimSuffix(strings.TrimPrefix(tc.peer[:strings.LastIndexByte(tc.peer, ':')], "["), "]")
		if got := a.clientIP(r); got != host {
			t.Errorf("%s without trusted proxies: %s; want the peer %s", tc.name, got, host)
		}
	}
}

func TestForwardedClientBoundsTheChain(t *testing.T) {
	trusted := mustProxies(t, "10.0.0.0/8")
	long := strings.TrimSuffix(strings.Repeat("10.0.0.1,", maxXFFHops+1), ",")
	if a, ok := forwardedClient([]string{"203.0.113.7," + long}, trusted); ok {
		t.Errorf("%d trusted hops: %s; want none (the peer)", maxXFFHops+1, a)
	}
	short := strings.TrimSuffix(strings.Repeat("10.0.0.1,", maxXFFHops-1), ",")
	if a, ok := forwardedClient([]string{"203.0.113.7," + short}, trusted); !ok || a.String() != "203.0.113.7" {
		t.Errorf("%d trusted hops: %s %v; want 203.0.113.7", maxXFFHops-1, a, ok)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	p, err := ParseTrustedProxies([]string{"127.0.0.0/8", "10.1.2.3/16", "2001:db8::/32", "192.0.2.1", "::ffff:198.51.100.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "10.1.0.0/16", "2001:db8::/32", "192.0.2.1/32", "198.51.100.0/24"}
	for i, w := range want {
		if i >= len(p) || p[i].String() != w {
			t.Fatalf("parsed %v; want %v", p, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "nonsense", "10.0.0.0/", "fe80::1%eth0", "1.2.3.4:80"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), "trusted-proxies") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v; want an error naming trusted-proxies and the value", bad, err)
		}
	}
}

// FuzzForwardedClient: the X-Forwarded-For decoder never panics, and what
// it gives is an address without a zone that is either outside the trusted
// list or (all hops trusted) inside it, and that appears in the header.
func FuzzForwardedClient(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "1.2.3.4, 203.0.113.7", "[2001:db8::1]:80, 10.0.0.1", ",,,", "unknown", "fe80::1%eth0", "::ffff:1.2.3.4", "10.0.0.1\n10.0.0.2"} {
		f.Add(s)
	}
	trusted := mustProxies(f, "10.0.0.0/8", "2001:db8::/32")
	f.Fuzz(func(t *testing.T, s string) {
		values := strings.Split(s, "\n")
		a, ok := forwardedClient(values, trusted)
		if !ok {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("%q: %v", s, a)
		}
		if trustedAddr(a, trusted) {
			// Every hop must then be trusted.
			for _, v := range values {
				for _, e := range strings.Split(v, ",") {
					if e = strings.Trim(e, " \t"); e == "" {
						continue
					}
					if h, good := parseHop(e); !good || !trustedAddr(h, trusted) {
						t.Fatalf("%q: gave trusted %s though hop %q is not", s, a, e)
					}
				}
			}
		}
	})
}
