package ipam

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// big128 is u as a math/big number; fromBig is the low 128 bits of b.
func big128(u u128) *big.Int {
	b := new(big.Int).SetUint64(u.hi)
	return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(u.lo))
}

func fromBig(b *big.Int) u128 {
	mask := new(big.Int).SetUint64(^uint64(0))
	lo := new(big.Int).And(b, mask).Uint64()
	hi := new(big.Int).And(new(big.Int).Rsh(b, 64), mask).Uint64()
	return u128{hi, lo}
}

// TestU128Shifts: shr and shl agree with math/big's shifts cut to 128 bits for
// every shift count from 0 to 130, on edge values and random ones.
func TestU128Shifts(t *testing.T) {
	vals := []u128{{}, {0, 1}, {1, 0}, {^uint64(0), ^uint64(0)}, {1 << 63, 0}, {0, 1 << 63}, {0x0123456789abcdef, 0xfedcba9876543210}}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		vals = append(vals, u128{r.Uint64(), r.Uint64()})
	}
	for _, v := range vals {
		for n := uint(0); n <= 130; n++ {
			if got, want := v.shr(n), fromBig(new(big.Int).Rsh(big128(v), n)); got != want {
				t.Fatalf("%#x shr %d = %#x, want %#x", v, n, got, want)
			}
			if got, want := v.shl(n), fromBig(new(big.Int).Lsh(big128(v), n)); got != want {
				t.Fatalf("%#x shl %d = %#x, want %#x", v, n, got, want)
			}
		}
	}
}
