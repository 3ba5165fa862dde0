package httpapi

import "golang.org/x/text/language"

// withdrawnCountries are formerly assigned ISO 3166-1 alpha-2 codes that
// CLDR (golang.org/x/text/language) still reports as countries, with no
// single successor to canonicalize to: the Netherlands Antilles, Serbia and
// Montenegro, the Neutral Zone, the Soviet Union and Yugoslavia. Every other
// code that is not a country now (user-assigned, exceptionally reserved,
// withdrawn with a successor) the library tells apart.
var withdrawnCountries = map[string]bool{"AN": true, "CS": true, "NT": true, "SU": true, "YU": true}

// isCountry reports whether s is an ISO 3166-1 alpha-2 code assigned to a
// country now, in upper case, or XK: "TR", "DE", "GB", "XK"; not "XX" or "ZZ"
// (and the rest of AA, QM-QZ, XA-XZ: user-assigned), "EU", "UN" or "UK"
// (reserved), "ZR" or "YU" (withdrawn), "tr" or "TUR". 250 codes pass.
//
// XK is Kosovo's: user-assigned in ISO 3166-1, which has assigned Kosovo no
// code, and used for it by the EU, CLDR (golang.org/x/text names the region
// "Kosovo") and domain registries, so a customer in Kosovo has a country.
func isCountry(s string) bool {
	if s == "XK" {
		return true
	}
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || withdrawnCountries[s] {
		return false
	}
	r, err := language.ParseRegion(s)
	// A user-assigned code is private use; a reserved one has no M49
	// number; a withdrawn one with a successor canonicalizes to it (ZR → CD).
	return err == nil && r.IsCountry() && !r.IsPrivateUse() && r.M49() != 0 && r.Canonicalize() == r
}
