package auth

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNewKeyShapeAndHash(t *testing.T) {
	plain, hash, display := NewKey("snc_")
	if !strings.HasPrefix(plain, "snc_") || len(plain) != len("snc_")+keyRandomChars || !WellFormed("snc_", plain) {
		t.Fatalf("key %q", plain)
	}
	if hash != Hash(plain) || len(hash) != 64 || strings.Contains(hash, plain[4:]) {
		t.Fatalf("hash %q", hash)
	}
	if display != plain[:12] {
		t.Fatalf("display %q", display)
	}
	other, _, _ := NewKey("snc_")
	if other == plain {
		t.Fatal("two keys alike")
	}
	for _, bad := range []string{"", "snc_", "h444_" + plain[4:], plain[:20], plain + "!", "snc_" + strings.Repeat("a", 200)} {
		if WellFormed("snc_", bad) {
			t.Errorf("WellFormed(%q)", bad)
		}
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer  snc_x ")
	if FromRequest(r) != "snc_x" {
		t.Fatal("bearer")
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", "snc_y")
	if FromRequest(r) != "snc_y" {
		t.Fatal("x-api-key")
	}
	r.Header.Set("Authorization", "Basic abc")
	if FromRequest(r) != "snc_y" {
		t.Fatal("basic auth must not count as a key")
	}
}

// TestPresented: the Bearer scheme in any case; one key sent two ways (or a
// header twice) with the same value is that key; two different keys
// conflict, and so does a key beside an Authorization line of another scheme.
func TestPresented(t *testing.T) {
	for _, tc := range []struct {
		auth, apiKey []string
		key          string
		conflicting  bool
	}{
		{auth: []string{"BEARER snc_a"}, key: "snc_a"},
		{auth: []string{"bEaReR snc_a"}, key: "snc_a"},
		{auth: []string{"Bearer snc_a"}, apiKey: []string{"snc_a"}, key: "snc_a"},
		{auth: []string{"Bearer snc_a"}, apiKey: []string{"snc_b"}, key: "snc_a", conflicting: true},
		{auth: []string{"Bearer snc_a", "Bearer snc_b"}, key: "snc_a", conflicting: true},
		{apiKey: []string{"snc_b", "snc_a"}, key: "snc_b", conflicting: true},
		// Another scheme beside a key is another credential (probe62's
		// P62-1; before, the key was served and the line ignored).
		{auth: []string{"Basic abc"}, apiKey: []string{"snc_b"}, key: "snc_b", conflicting: true},
		{auth: []string{"Bearer snc_a", "Basic abc"}, key: "snc_a", conflicting: true},
		{auth: []string{"Basic abc", "Bearer snc_a"}, key: "snc_a", conflicting: true},
		{auth: []string{"Bearer snc_a", "Token snc_b"}, key: "snc_a", conflicting: true},
		{auth: []string{"Bearer ", "Bearer snc_a"}, key: "snc_a", conflicting: true},
		{auth: []string{"Basic abc"}, key: ""},
		{auth: []string{" ", "Bearer snc_a"}, key: "snc_a"},
		{auth: []string{"Bearer "}, apiKey: []string{" "}, key: ""},
		{auth: []string{"Bearersnc_a"}, key: ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, v := range tc.auth {
			r.Header.Add("Authorization", v)
		}
		for _, v := range tc.apiKey {
			r.Header.Add("X-API-Key", v)
		}
		if key, c := Presented(r); key != tc.key || c != tc.conflicting {
			t.Errorf("%q %q: %q %v, want %q %v", tc.auth, tc.apiKey, key, c, tc.key, tc.conflicting)
		}
	}
}

func TestIPAllowed(t *testing.T) {
	cases := []struct {
		list []string
		ip   string
		want bool
	}{
		{nil, "203.0.113.9", true},
		{[]string{"10.0.0.0/8"}, "10.1.2.3", true},
		{[]string{"10.0.0.0/8"}, "127.0.0.1", false},
		{[]string{"192.0.2.7"}, "192.0.2.7", true},
		{[]string{"192.0.2.7"}, "192.0.2.8", false},
		{[]string{"2001:db8::/32"}, "2001:db8::1", true},
		{[]string{"127.0.0.0/8"}, "::ffff:127.0.0.1", true},
		{[]string{"10.0.0.0/8"}, "not-an-ip", false},
	}
	for _, c := range cases {
		if got := IPAllowed(c.list, c.ip); got != c.want {
			t.Errorf("IPAllowed(%v, %s) = %v", c.list, c.ip, got)
		}
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}
