package httpapi

import (
	"net/netip"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func FuzzDecodeIPPoolCreate(f *testing.F) {
	seeds := []string{
		`{"name":"pub4","cidr":"198.51.100.0/24","gateway":"198.51.100.1","exclude":["198.51.100.10","198.51.100.128/25"],"nodes":["hv-01"],"bridge":"br0","resolvers":["198.51.100.53"],"quarantine_seconds":3600}`,
		`{"name":"pub6","cidr":"2001:db8::/48","gateway":"fe80::1","prefix_len":56}`,
		`{"name":"x","cidr":"198.51.100.0/33","gateway":"198.51.100.1"}`, `{"name":"x","cidr":"198.51.100.7/24","gateway":"198.51.100.1"}`,
		`{"name":"x","cidr":"198.51.100.0/24","gateway":"203.0.113.1"}`, `{"name":"x","cidr":"::/0","gateway":"::1","prefix_len":64}`,
		`{"name":"x","cidr":"198.51.100.0/24","gateway":"198.51.100.1","bridge":"br0;rm -rf"}`,
		`{"name":"x","cidr":"198.51.100.0/24","gateway":"198.51.100.1","quarantine_seconds":-1}`,
		`{`, ``, `null`, `[]`,
	}
	fuzzDecoder(f, seeds, DecodeIPPoolCreate, func(t *testing.T, p store.IPPool) {
		// What passes is a pool the allocator takes and the agent can be
		// handed: a canonical network, a gateway that may be used.
		pfx, err := netip.ParsePrefix(p.CIDR)
		if err != nil || pfx.Masked() != pfx || p.Validate() != nil {
			t.Fatalf("accepted pool %+v", p)
		}
		if p.Bridge != "" && !networkRE.MatchString("bridge:"+p.Bridge) {
			t.Fatalf("accepted bridge %q", p.Bridge)
		}
		if p.QuarantineSeconds < 0 || p.QuarantineSeconds > maxPoolQuarantine {
			t.Fatalf("accepted quarantine %d", p.QuarantineSeconds)
		}
	})
}

func FuzzDecodeIPReserve(f *testing.F) {
	seeds := []string{`{"ip":"198.51.100.7","note":"router"}`, `{"ip":""}`, `{"ip":"x","note":"\u0000"}`, `{`, ``, `null`}
	fuzzDecoder(f, seeds, DecodeIPReserve, func(t *testing.T, req api.IPReserveRequest) {
		if req.IP == "" || text("note", req.Note, 0, 200) != nil {
			t.Fatalf("accepted %+v", req)
		}
	})
}
