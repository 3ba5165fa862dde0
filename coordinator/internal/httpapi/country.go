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
// country now, in upper case: "TR", "DE", "GB"; not "XX" or "ZZ" (and the
// rest of AA, QM-QZ, XA-XZ: user-assigned, XK included), "EU", "UN" or "UK"
// (reserved), "ZR" or "YU" (withdrawn), "tr" or "TUR". 249 codes pass.
func isCountry(s string) bool {
	if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || withdrawnCountries[s] {
		return false
	}
	r, err := language.ParseRegion(s)
	// A user-assigned code is private use; a reserved one has no M49
	// number; a withdrawn one with a successor canonicalizes to it (ZR → CD).
	return err == nil && r.IsCountry() && !r.IsPrivateUse() && r.M49() != 0 && r.Canonicalize() == r
}
