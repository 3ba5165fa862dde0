package ipam

import "testing"

// fill reserves n units of a pool in a scattered (deterministic) pattern, so
// the used set is fragmented rather than one run.
func fill(b *testing.B, a *Allocator, n int) {
	size := int(a.l.size())
	seed := uint64(1)
	for placed := 0; placed < n; {
		seed = seed*6364136223846793005 + 1442695040888963407
		u := a.unit(uint64(int(seed>>33) % size))
		if a.Reserve(u.Addr(), t0) == nil {
			placed++
		}
	}
}

func benchAllocate(b *testing.B, p Pool, used int) {
	a, err := New(p, State{})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, a, used)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// One allocation, then its release with no quarantine, so every
		// iteration allocates against the same 60,000 scattered used units
		// (the release splits the run the allocation extended).
		u, err := a.Allocate(t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Release(u.Addr(), t0, -1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocateV4_60kUsed: a /16 with 60,000 addresses in use.
func BenchmarkAllocateV4_60kUsed(b *testing.B) {
	benchAllocate(b, Pool{Name: "v4", CIDR: "10.0.0.0/16", Gateway: "10.0.0.1"}, 60000)
}

// BenchmarkAllocateV6_48: /64s out of a /48 with 60,000 in use.
func BenchmarkAllocateV6_48(b *testing.B) {
	benchAllocate(b, Pool{Name: "v6", CIDR: "2001:db8::/48", Gateway: "fe80::1"}, 60000)
}
