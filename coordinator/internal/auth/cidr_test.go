package auth

import (
	"net/netip"
	"strings"
	"testing"
)

// TestCheckCIDR: an allow-list entry a key is minted with is an address or a
// prefix as it reads. Before, every refused entry below was taken (ParseCIDRs
// trims and masks): "10.0.0.1/8" was stored as given and allowed 10.0.0.0/8,
// and "::ffff:10.0.0.1" made a key no IPv4 client could use, since clients'
// addresses are compared unmapped (IPAllowed).
func TestCheckCIDR(t *testing.T) {
	for _, ok := range []string{"10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "203.0.113.128/25", "2001:db8::/32", "2001:db8::1", "::/0", "10.0.0.1/32"} {
		if err := CheckCIDR(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
		if _, err := ParseCIDRs([]string{ok}); err != nil {
			t.Errorf("%q passes CheckCIDR but not ParseCIDRs: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"10.0.0.1/8":          "did you mean 10.0.0.0/8 (or 10.0.0.1/32",
		"2001:db8::1/32":      "did you mean 2001:db8::/32",
		"::ffff:10.0.0.1":     "write an IPv4 address as IPv4 (10.0.0.1)",
		"::ffff:10.0.0.0/104": "write an IPv4 address as IPv4 (10.0.0.0/8)",
		"::ffff:10.0.0.1/128": "write an IPv4 address as IPv4 (10.0.0.1/32)",
		"::ffff:0.0.0.0/96":   "write an IPv4 address as IPv4 (0.0.0.0/0)",
		"::ffff:0.0.0.0/80":   "write IPv4 addresses as IPv4",
		"fe80::1%eth0":        "zone",
		" 10.0.0.1":           "without spaces",
		"10.0.0.1 ":           "without spaces",
		"":                    "without spaces",
		"10.0.0.0/33":         "not a CIDR",
		"300.1.1.1/8":         "not an IP address",
		"example.com":         "not an IP address",
	} {
		err := CheckCIDR(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", bad, err, want)
			continue
		}
		// What a refusal says to write instead is taken.
		if _, rest, ok := strings.Cut(err.Error(), "write an IPv4 address as IPv4 ("); ok {
			if instead, _, _ := strings.Cut(rest, ")"); CheckCIDR(instead) != nil {
				t.Errorf("%q: %v, which says to write %q: %v", bad, err, instead, CheckCIDR(instead))
			}
		}
	}
}

// FuzzCheckCIDR: what CheckCIDR takes, ParseCIDRs reads as the same prefix
// (it never masks a taken entry).
func FuzzCheckCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.0.0.1/8", "::ffff:1.2.3.4", "fe80::1%x", "2001:db8::/32", " 1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckCIDR(s) != nil {
			return
		}
		ps, err := ParseCIDRs([]string{s})
		if err != nil || len(ps) != 1 {
			t.Fatalf("%q taken, ParseCIDRs: %v %v", s, ps, err)
		}
		if p, err := netip.ParsePrefix(s); err == nil && p != ps[0] {
			t.Fatalf("%q taken, reads as %s", s, ps[0])
		}
	})
}
