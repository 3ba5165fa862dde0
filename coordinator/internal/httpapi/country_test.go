package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestCountryCodes: an account's country and a domain contact's cc are the
// ISO 3166-1 alpha-2 codes assigned to countries now, 249 of them; a code
// of the right shape that is not one (user-assigned, reserved, withdrawn)
// is a 400 naming the field, but XK, Kosovo's (TestKosovo). Before, any two
// capitals passed ("XX").
func TestCountryCodes(t *testing.T) {
	for _, c := range []string{"TR", "DE", "GB", "US", "AQ", "AX", "SS", "CW", "BQ", "UM", "HM", "BV", "EH", "PS", "TW", "XK"} {
		if !isCountry(c) {
			t.Errorf("isCountry(%q) = false, want true", c)
		}
	}
	for _, c := range []string{"XX", "AA", "QM", "QZ", "XA", "XJ", "XL", "XZ", "ZZ", // user-assigned
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
	if n != 250 {
		t.Errorf("%d two-letter codes are countries, want ISO 3166-1's 249 and XK", n)
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

// TestKosovo: XK, the code Kosovo is known by (user-assigned in ISO 3166-1,
// used by the EU, CLDR and most registries for want of an assigned one), is
// a country: an account and a domain contact can have it, and a quote for a
// domain with such a contact is answered. The other user-assigned codes are
// still refused. Before, XK was refused as user-assigned: a 400 "country".
func TestKosovo(t *testing.T) {
	if !isCountry("XK") {
		t.Errorf("isCountry(XK) = false")
	}
	req, err := DecodeAccountCreate([]byte(`{"email":"a@example.com","country":"XK"}`))
	if err != nil || req.Country != "XK" {
		t.Errorf("DecodeAccountCreate with country XK = %+v, %v; want XK", req, err)
	}
	if err := domainContact(api.DomainContact{Name: "Ada", Street: []string{"1 Main"}, City: "Prishtina", CC: "XK", Email: "ada@example.com"}); err != nil {
		t.Errorf("a domain contact in XK: %v", err)
	}
	s, _ := domainAPI(t)
	_, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	for cc, want := range map[string]int{"XK": http.StatusOK, "XX": http.StatusBadRequest} {
		r := s.call(key, "POST", "/v1/domains/quote", `{"name":"ada.test","years":1,"contact":{"name":"Ada","street":["1 Main"],"city":"Prishtina","cc":"`+cc+`","email":"ada@example.com"}}`)
		if r.status != want {
			t.Errorf("quote with contact.cc %s: %d %s, want %d", cc, r.status, r.body, want)
		}
	}
}
