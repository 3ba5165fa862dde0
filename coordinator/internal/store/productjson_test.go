package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
)

// checkProductReading: readProduct reads what json.Unmarshal reads
// whenever it reads p as json.Marshal wrote it; it reports whether it read it.
func checkProductReading(t testing.TB, p api.AdminProduct) (fast bool) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		return false
	}
	return codectest.Reading(t, "readProduct", readProduct, b)
}

func TestProductReadingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	vps := api.AdminProduct{Slug: "vps-1", ProductRequest: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1", RetailMonthlyUsdCents: 1200,
		Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60, TrafficGB: 2000}, Locations: []string{"ist", "fra"}}, CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	domain := api.AdminProduct{Slug: "com", ProductRequest: api.ProductRequest{Category: api.ProductDomain, NameEn: ".com", Tld: "com", RetailYearlyUsdCents: 1500},
		Retired: true, CreatedAt: at.In(time.FixedZone("x", 3600))}
	named, hosting := vps, vps
	named.Names = map[string]string{"tr": "VPS 1"}
	hosting.Specs.Hosting = &api.HostingPlan{}
	// Plain products are read; one with names or hosting quotas is not.
	codectest.Paths(t, "product", func(p api.AdminProduct) bool { return checkProductReading(t, p) },
		[]api.AdminProduct{vps, domain, {}}, []api.AdminProduct{named, hosting})
	// What it reads on its own (no reordering by json.Marshal) too.
	codectest.Paths(t, "product record", func(raw string) bool { return codectest.Reading(t, "readProduct", readProduct, []byte(raw)) },
		[]string{`{}`, `{"slug":"a","locations":[]}`, `{"specs":{}}`, `{"specs":{"traffic_gb":0},"retired":false}`},
		[]string{`{"slug":"a","locations":null}`, `{"specs":{"vcpu":4294967296}}`, `{"slug":"a"} `, `{"category":"a","slug":"b"}`, ``})
}

func FuzzReadProduct(f *testing.F) {
	f.Add("vps-1", "vps", "VPS 1", int64(1200), uint32(2), uint64(4096), uint64(60), uint64(0), "ist", "", int64(0), true, int64(1764608645123456000), []byte(`{"slug":"a","specs":{"vcpu":1},"locations":["x"]}`))
	f.Add("<\"\\", "\xff\u2028", "Ça", int64(-1), uint32(0), uint64(1<<63), uint64(0), uint64(7), "", "com", int64(5), false, int64(-62135596800000000), []byte(`{"retail_monthly_usd_cents":-0,"created_at":"2026-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, slug, category, name string, monthly int64, vcpu uint32, ram, disk, traffic uint64, location, tld string, yearly int64, retired bool, nanos int64, raw []byte) {
		p := api.AdminProduct{Slug: slug, ProductRequest: api.ProductRequest{Category: category, NameEn: name, RetailMonthlyUsdCents: monthly,
			Specs: api.ProductSpecs{VCPU: vcpu, RAMMB: ram, DiskGB: disk, TrafficGB: traffic}, Tld: tld, RetailYearlyUsdCents: yearly},
			Retired: retired, CreatedAt: time.Unix(0, nanos).UTC(), UpdatedAt: time.Unix(0, nanos)}
		if location != "" {
			p.Locations = []string{location, tld}
		}
		checkProductReading(t, p)
		codectest.Reading(t, "readProduct", readProduct, raw)
	})
}

func TestAccountPricingReadingMatchesEncodingJSON(t *testing.T) {
	read := func(p api.AccountPricing) bool {
		b, _ := json.Marshal(p)
		return codectest.Reading(t, "readAccountPricing", readAccountPricing, b)
	}
	// Discounts alone are read; a price list is not.
	codectest.Paths(t, "pricing", read,
		[]api.AccountPricing{{DiscountPercent: 0}, {DiscountPercent: 25}, {DiscountPercent: 100}, {DiscountPercent: -7}, {DiscountPercent: 1 << 62}},
		[]api.AccountPricing{{DiscountPercent: 10, Prices: map[string]int64{"vps-t": 900}}})
	codectest.Paths(t, "pricing record", func(raw string) bool {
		return codectest.Reading(t, "readAccountPricing", readAccountPricing, []byte(raw))
	}, []string{`{}`, `{"discount_percent":-0}`},
		[]string{`{"discount_percent":25,"prices_usd_cents":{}}`, `{"discount_percent":2.5}`, `{"discount_percent":9223372036854775808}`,
			`{"discount_percent":null}`, `{"discount_percent":1,"discount_percent":2}`, `{"discount_percent":1} `, `{"x":1}`, `null`, ``})
}

func FuzzReadAccountPricing(f *testing.F) {
	f.Add(int64(25), "", int64(0), []byte(`{"discount_percent":25}`))
	f.Add(int64(-1), "vps-t", int64(900), []byte(`{"discount_percent":01}`))
	f.Fuzz(func(t *testing.T, discount int64, slug string, price int64, raw []byte) {
		p := api.AccountPricing{DiscountPercent: discount}
		if slug != "" {
			p.Prices = map[string]int64{slug: price}
		}
		b, _ := json.Marshal(p)
		codectest.Reading(t, "readAccountPricing", readAccountPricing, b)
		codectest.Reading(t, "readAccountPricing", readAccountPricing, raw)
	})
}
