package httpapi

import (
	"strings"
	"testing"
)

// TestCountryCodes: an account's country and a domain contact's cc are the
// ISO 3166-1 alpha-2 codes assigned to countries now, 249 of them; a code
// of the right shape that is not one (user-assigned, reserved, withdrawn)
// is a 400 naming the field. Before, any two capitals passed ("XX").
func TestCountryCodes(t *testing.T) {
	for _, c := range []string{"TR", "DE", "GB", "US", "AQ", "AX", "SS", "CW", "BQ", "UM", "HM", "BV", "EH", "PS", "TW"} {
		if !isCountry(c) {
			t.Errorf("isCountry(%q) = false, want true", c)
		}
	}
	for _, c := range []string{"XX", "AA", "QM", "QZ", "XA", "XK", "XZ", "ZZ", // user-assigned
		"EU", "UN", "UK", "EZ", "AC", "CP", "DG", "EA", "IC", "TA", "FX", // reserved
		"ZR", "YU", "SU", "CS", "AN", "NT", "DD", "TP", "BU", // withdrawn
		"tr", "Tr", "TUR", "T", "", "001", "T1", "\u0130T"} {
		if isCountry(c) {
			t.Errorf("isCountry(%q) = true, want false", c)
		}
	}
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if isCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("%d two-letter codes are countries, want ISO 3166-1's 249", n)
	}

	for _, tc := range []struct{ body, want string }{
		{`{"email":"a@example.com","country":"XX"}`, "country"},
		{`{"email":"a@example.com","country":"ZZ"}`, "country"},
		{`{"email":"a@example.com","country":"UK"}`, "country"},
		{`{"email":"a@example.com","country":"tr"}`, "country"},
	} {
		_, err := DecodeAccountCreate([]byte(tc.body))
		he, ok := err.(*httpError)
		if !ok || he.status != 400 || !strings.Contains(he.msg, `"`+tc.want+`"`) {
			t.Errorf("DecodeAccountCreate(%s) = %v, want a 400 naming %q", tc.body, err, tc.want)
		}
	}
	for body, want := range map[string]string{`{"email":"a@example.com"}`: "TR", `{"email":"a@example.com","country":"GB"}`: "GB"} {
		req, err := DecodeAccountCreate([]byte(body))
		if err != nil || req.Country != want {
			t.Errorf("DecodeAccountCreate(%s) = %+v, %v; want country %s", body, req, err, want)
		}
	}
}
