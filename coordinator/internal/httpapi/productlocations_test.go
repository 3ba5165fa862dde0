package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// TestProductLocationsAreNodeLocations: a product's locations follow the rule
// of node locations (fsm.CheckLocation), so every location a product can be
// offered in is one a node can be put in; others are a 400 naming locations.
func TestProductLocationsAreNodeLocations(t *testing.T) {
	body := func(loc string) []byte {
		return []byte(`{"category":"vps","name_en":"V","retail_monthly_usd_cents":100,"specs":{"vcpu":1,"ram_mb":256,"disk_gb":1},"locations":["` + loc + `"]}`)
	}
	for _, loc := range []string{"ist-1", "Frankfurt 1", "fra_2.a", "İstanbul", strings.Repeat("a", 64)} {
		if _, err := DecodeProduct("vps-2", body(loc)); err != nil || fsm.CheckLocation(loc) != nil {
			t.Errorf("location %q: product %v, node %v; want both taken", loc, err, fsm.CheckLocation(loc))
		}
	}
	for _, loc := range []string{"", " ist", "ist ", "ist/1", "ist\\t1", strings.Repeat("a", 65), "a\\u00a0b"} {
		if _, err := DecodeProduct("vps-2", body(loc)); err == nil || !strings.Contains(err.Error(), `"locations"`) {
			t.Errorf("product location %q: %v, want a 400 naming locations", loc, err)
		}
	}
}
