package rdns

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/tabletest"
)

func TestParseZone(t *testing.T) {
	good := map[string]string{
		"100.51.198.in-addr.arpa":             "198.51.100.0/24",
		"100.51.198.IN-ADDR.ARPA.":            "198.51.100.0/24",
		"51.198.in-addr.arpa":                 "198.51.0.0/16",
		"10.in-addr.arpa":                     "10.0.0.0/8",
		"0.in-addr.arpa":                      "0.0.0.0/8",
		"8.b.d.0.1.0.0.2.ip6.arpa":            "2001:db8::/32",
		"1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa":    "2001:db8:1::/48",
		"2.ip6.arpa":                          "2000::/4",
		"f.ip6.arpa.":                         "f000::/4",
		strings.Repeat("0.", 31) + "ip6.arpa": "::/124",
	}
	for in, want := range good {
		z, err := ParseZone(in)
		if err != nil {
			t.Errorf("ParseZone(%q): %v", in, err)
			continue
		}
		if z.Prefix.String() != want {
			t.Errorf("ParseZone(%q) prefix = %s, want %s", in, z.Prefix, want)
		}
		if z.Name != strings.ToLower(strings.TrimSuffix(in, ".")) || z.FQDN() != z.Name+"." {
			t.Errorf("ParseZone(%q) name = %q", in, z.Name)
		}
	}
	bad := []string{
		"", "in-addr.arpa", "ip6.arpa.", "example.com", "1.2.3.4.in-addr.arpa", "256.in-addr.arpa", "01.in-addr.arpa",
		"-1.in-addr.arpa", "0/25.100.51.198.in-addr.arpa", "a.in-addr.arpa", "..in-addr.arpa", "1..2.in-addr.arpa",
		"10.ip6.arpa", "g.ip6.arpa", strings.Repeat("0.", 32) + "ip6.arpa", "x.in-addr.arpa.com", " 1.in-addr.arpa",
		strings.Repeat("1", 300) + ".in-addr.arpa",
	}
	for _, in := range bad {
		if z, err := ParseZone(in); err == nil || !errors.Is(err, ErrZone) {
			t.Errorf("ParseZone(%q) = %+v, %v; want an ErrZone", in, z, err)
		}
	}
}

func TestPTRName(t *testing.T) {
	tabletest.Equal(t, "PTRName", func(ip string) string { return PTRName(netip.MustParseAddr(ip)) }, map[string]string{
		"198.51.100.10":          "10.100.51.198.in-addr.arpa.",
		"::ffff:198.51.100.10":   "10.100.51.198.in-addr.arpa.",
		"2001:db8:1::10":         "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		"2001:db8::abcd:ef01:10": "0.1.0.0.1.0.f.e.d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	})
}

// A zone parsed back from an address's PTR name covers that address: the
// two directions agree.
func TestPTRNameInZone(t *testing.T) {
	for _, s := range []string{"198.51.100.7", "2001:db8:1:2:3:4:5:6"} {
		ip := netip.MustParseAddr(s)
		name := strings.TrimSuffix(PTRName(ip), ".")
		labels := strings.Split(name, ".")
		suffix := 2
		for n := 1; n < len(labels)-suffix; n++ {
			z, err := ParseZone(strings.Join(labels[len(labels)-suffix-n:], "."))
			if err != nil {
				t.Fatalf("zone of %d labels of %s: %v", n, name, err)
			}
			if !z.Prefix.Contains(ip) || !strings.HasSuffix(name, "."+z.Name) {
				t.Errorf("zone %s (%s) does not hold %s", z.Name, z.Prefix, ip)
			}
			if ip.Is4() && n == 3 {
				break
			}
		}
	}
}

func TestMatchLongest(t *testing.T) {
	var zones []Zone
	for _, n := range []string{"51.198.in-addr.arpa", "100.51.198.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa", "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"} {
		z, err := ParseZone(n)
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, z)
	}
	for ip, want := range map[string]string{
		"198.51.100.10": "100.51.198.in-addr.arpa",
		"198.51.7.10":   "51.198.in-addr.arpa",
		"2001:db8:1::5": "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
		"2001:db8:2::5": "8.b.d.0.1.0.0.2.ip6.arpa",
		"203.0.113.1":   "",
		"2001:db9::1":   "",
	} {
		z, ok := Match(zones, netip.MustParseAddr(ip))
		if z.Name != want || ok != (want != "") {
			t.Errorf("Match(%s) = %q %v, want %q", ip, z.Name, ok, want)
		}
	}
}

func FuzzParseZone(f *testing.F) {
	for _, s := range []string{"100.51.198.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa", "0/25.1.in-addr.arpa", "in-addr.arpa", "1.2.3.4.in-addr.arpa", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseZone(s)
		if err != nil {
			if !errors.Is(err, ErrZone) {
				t.Fatalf("error %v is not an ErrZone", err)
			}
			return
		}
		// A valid zone is canonical, round-trips, and its first address's
		// PTR name lies inside it.
		again, err := ParseZone(z.FQDN())
		if err != nil || again != z {
			t.Fatalf("ParseZone(%q) = %+v, reparse %+v %v", s, z, again, err)
		}
		if !z.Prefix.IsValid() || z.Prefix.Masked() != z.Prefix {
			t.Fatalf("prefix %s of %q is not canonical", z.Prefix, s)
		}
		if ptr := PTRName(z.Prefix.Addr()); !strings.HasSuffix(ptr, "."+z.FQDN()) {
			t.Fatalf("PTR name %s is not in zone %s", ptr, z.Name)
		}
		if m, ok := Match([]Zone{z}, z.Prefix.Addr()); !ok || m != z {
			t.Fatalf("zone %s does not match its own first address", z.Name)
		}
	})
}

func FuzzDecodeZone(f *testing.F) {
	f.Add([]byte(`{"name":"100.51.198.in-addr.arpa.","kind":"Native","rrsets":[{"name":"10.100.51.198.in-addr.arpa.","type":"PTR","ttl":3600,"records":[{"content":"a.example.","disabled":false}]}]}`))
	f.Add([]byte(`{"name":"x.","rrsets":[{"name":"","type":"PTR"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"error": "Name is out of zone"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// PowerDNS's error text is shortened, valid UTF-8, whatever comes.
		if m := apiMessage(b); len(m) > 200+len("…") || !utf8.ValidString(m) {
			t.Fatalf("apiMessage gave %d bytes, valid UTF-8 %v", len(m), utf8.ValidString(m))
		}
		z, err := DecodeZone(b)
		if err != nil {
			if z.Name != "" || z.RRSets != nil {
				t.Fatalf("error %v with a non-empty zone %+v", err, z)
			}
			return
		}
		if z.Name == "" {
			t.Fatal("decoded a zone without a name")
		}
		for _, rr := range z.RRSets {
			if rr.Name == "" || rr.Type == "" {
				t.Fatalf("decoded an rrset without name or type: %+v", rr)
			}
		}
	})
}

func TestAPIMessage(t *testing.T) {
	if got := apiMessage([]byte(`{"error": "Name is out of zone"}`)); got != "Name is out of zone" {
		t.Errorf("apiMessage = %q", got)
	}
	long := strings.Repeat("x", 500)
	if got := apiMessage([]byte(long)); len(got) > 210 {
		t.Errorf("apiMessage did not shorten: %d bytes", len(got))
	}
}
