package store

import (
	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
)

// productKeys are api.AdminProduct's JSON keys in field order (the
// embedded ProductRequest's in its place), productSpecKeys
// api.ProductSpecs'.
var (
	productKeys = []string{"slug", "category", "name_en", "names", "retail_monthly_usd_cents", "specs", "locations", "tld",
		"retail_yearly_usd_cents", "retired", "created_at", "updated_at"}
	productSpecKeys = []string{"vcpu", "ram_mb", "disk_gb", "traffic_gb", "hosting"}
)

// readProduct reads a product record as json.Marshal writes it (keys in
// field order) in plainjson's subset, without localized names or hosting
// quotas, giving what json.Unmarshal gives; anything else fails it (ok
// false: use encoding/json). Every order reads its product on every
// replica (TestProductReadingMatchesEncodingJSON, FuzzReadProduct).
func readProduct(b []byte) (p api.AdminProduct, ok bool) {
	rd := plainjson.NewReader(b)
	strings := [...]*string{0: &p.Slug, 1: &p.Category, 2: &p.NameEn, 7: &p.Tld}
	ints := [...]*int64{4: &p.RetailMonthlyUsdCents, 8: &p.RetailYearlyUsdCents}
	ok = rd.Object(productKeys, func(i int) (ok bool) {
		switch {
		case i < len(strings) && strings[i] != nil:
			*strings[i], ok = rd.String()
		case i < len(ints) && ints[i] != nil:
			var n int
			n, ok = rd.Int()
			*ints[i] = int64(n)
		case i == 5:
			s := &p.Specs
			ok = rd.Object(productSpecKeys, func(i int) (ok bool) {
				switch i {
				case 0:
					var n uint64
					n, ok = rd.Uint(32)
					s.VCPU = uint32(n)
				case 1:
					s.RAMMB, ok = rd.Uint(64)
				case 2:
					s.DiskGB, ok = rd.Uint(64)
				case 3:
					s.TrafficGB, ok = rd.Uint(64)
				}
				return ok // hosting: left to encoding/json
			})
		case i == 6:
			p.Locations, ok = rd.Strings()
		case i == 9:
			p.Retired, ok = rd.Bool()
		case i == 10:
			p.CreatedAt, ok = rd.Time()
		case i == 11:
			p.UpdatedAt, ok = rd.Time()
		}
		return ok // names: left to encoding/json
	})
	return p, ok && rd.End()
}

var accountPricingKeys = []string{"discount_percent", "prices_usd_cents"}

// readAccountPricing reads an account's pricing record as json.Marshal
// writes it in plainjson's subset, a discount without a price list, giving
// what json.Unmarshal gives; anything else fails it (ok false: use
// encoding/json). Every order reads its account's pricing on every replica
// (TestAccountPricingReadingMatchesEncodingJSON, FuzzReadAccountPricing).
func readAccountPricing(b []byte) (p api.AccountPricing, ok bool) {
	rd := plainjson.NewReader(b)
	ok = rd.Object(accountPricingKeys, func(i int) (ok bool) {
		if i != 0 {
			return false // a price list: left to encoding/json
		}
		var n int
		n, ok = rd.Int()
		p.DiscountPercent = int64(n)
		return ok
	})
	return p, ok && rd.End()
}
