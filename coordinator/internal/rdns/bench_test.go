package rdns

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// BenchmarkSyncZone measures a reconcile pass over a /16 zone with n PTRs
// against a real PowerDNS: b.N passes that each change one PTR (the read of
// the whole zone dominates). The first, full sync is reported as
// initial-sync-ms.
func BenchmarkSyncZone(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("ptrs=%d", n), func(b *testing.B) {
			p := framework.StartPowerDNS(b)
			c := &Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey}
			z, _ := ParseZone("51.198.in-addr.arpa")
			d := Desired{Zone: z, PTRs: map[netip.Addr]string{}}
			for i := 0; i < n; i++ {
				d.PTRs[netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})] = fmt.Sprintf("vm%d.example.test", i)
			}
			opt := Options{Nameservers: []string{"ns1.example.test"}}
			ctx := context.Background()
			b.ResetTimer()
			b.StopTimer()
			t0 := time.Now()
			if _, err := c.Sync(ctx, d, opt); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "initial-sync-ms")
			first := netip.AddrFrom4([4]byte{198, 51, 0, 0})
			b.StartTimer()
			for i := 0; i < b.N; i++ {
				d.PTRs[first] = fmt.Sprintf("renamed%d.example.test", i)
				st, err := c.Sync(ctx, d, opt)
				if err != nil || st.Replaced != 1 {
					b.Fatalf("%+v %v", st, err)
				}
			}
		})
	}
}
