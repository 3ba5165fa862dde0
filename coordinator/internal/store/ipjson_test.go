package store

import (
	"net/netip"
	"testing"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
)

// ipAllocMatches checks that encodeIPAlloc writes json.Marshal's bytes of
// the allocation, whichever path it takes.
func ipAllocMatches(t *testing.T, account string, units []netip.Prefix) {
	t.Helper()
	codectest.Encoding(t, "encodeIPAlloc", func(a *IPAlloc) ([]byte, bool) {
		b, err := encodeIPAlloc(*a)
		if err != nil {
			t.Fatal(err)
		}
		return b, true
	}, IPAlloc{AccountID: account, Units: units})
}

func TestIPAllocEncodesAsEncodingJSON(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8:0:5::/64")
	for _, c := range []struct {
		acc   string
		units []netip.Prefix
	}{
		{"acc_1", []netip.Prefix{v4}},
		{"acc_2", []netip.Prefix{v6, v4, netip.MustParsePrefix("::ffff:1.2.3.4/128")}},
		{"", []netip.Prefix{v4}},
		{"acc_3", nil},
		{"acc_3", []netip.Prefix{}},
		{"acc_4", []netip.Prefix{{}}},
		{"acc<&>\"\\", []netip.Prefix{v4}}, // escapes: encoding/json's own path
		{"a\x00\u2028é\xff", nil},
	} {
		ipAllocMatches(t, c.acc, c.units)
	}
}

func FuzzIPAllocEncodesAsEncodingJSON(f *testing.F) {
	f.Add("acc_1", "198.51.100.7/32", "2001:db8::/64", 2)
	f.Add("", "", "::ffff:1.2.3.4/128", 0)
	f.Add("a\"<", "10.0.0.0/8", "", -1)
	f.Fuzz(func(t *testing.T, acc, u1, u2 string, n int) {
		p1, _ := netip.ParsePrefix(u1)
		p2, _ := netip.ParsePrefix(u2)
		var units []netip.Prefix
		switch {
		case n < 0:
		case n == 0:
			units = []netip.Prefix{}
		case n == 1:
			units = []netip.Prefix{p1}
		default:
			units = []netip.Prefix{p1, p2}
		}
		ipAllocMatches(t, acc, units)
	})
}
