package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/pkg/api"
)

var reverseZoneSeeds = []string{
	`{"zone":"100.51.198.in-addr.arpa"}`, `{"zone":"100.51.198.IN-ADDR.arpa.","pool":"v4-main"}`,
	`{"zone":"1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"}`, `{"zone":"in-addr.arpa"}`, `{"zone":"0/25.1.in-addr.arpa"}`,
	`{"zone":"example.com"}`, `{"zone":""}`, `{"zone":"1.in-addr.arpa","pool":"Bad Pool"}`, `{"zone":1}`,
	`{"zone":"1.in-addr.arpa","extra":1}`, `{"pool":"x"}`, `[]`,
}

func FuzzDecodeReverseZone(f *testing.F) {
	fuzzDecoder(f, append(reverseZoneSeeds, decoderSeeds...), DecodeReverseZone, func(t *testing.T, req api.ReverseZoneRequest) {
		z, err := rdns.ParseZone(req.Zone)
		if err != nil || z.Name != req.Zone {
			t.Fatalf("accepted zone %q that is not canonical (%v)", req.Zone, err)
		}
		if req.Pool != "" && !fsm.ValidPoolName(req.Pool) {
			t.Fatalf("accepted pool %q", req.Pool)
		}
	})
}

func TestDecodeReverseZoneNamesTheField(t *testing.T) {
	for body, field := range map[string]string{
		`{"zone":"example.com"}`:                     `"zone"`,
		`{"zone":""}`:                                `"zone"`,
		`{"zone":"1.2.3.4.in-addr.arpa"}`:            `"zone"`,
		`{"zone":"1.in-addr.arpa","pool":"A B"}`:     `"pool"`,
		`{"zone":"1.in-addr.arpa","pool":"-x-pool"}`: `"pool"`,
	} {
		_, err := DecodeReverseZone([]byte(body))
		he, ok := err.(*httpError)
		if !ok || he.status != 400 || !strings.Contains(he.msg, field) {
			t.Errorf("%s: %v, want a 400 naming %s", body, err, field)
		}
	}
	req, err := DecodeReverseZone([]byte(`{"zone":"100.51.198.IN-ADDR.ARPA.","pool":"v4"}`))
	if err != nil || req.Zone != "100.51.198.in-addr.arpa" || req.Pool != "v4" {
		t.Errorf("canonical form: %+v %v", req, err)
	}
}
