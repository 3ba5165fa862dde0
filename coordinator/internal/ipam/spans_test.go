package ipam

import "testing"

// TestSpanSetMatchesAModel: random adds and removes (many at the front, as
// allocations make them) keep the runs sorted, disjoint and non-adjacent,
// with the same members and lowest free offset as a plain set.
func TestSpanSetMatchesAModel(t *testing.T) {
	const size = 300
	var ss spanSet
	model := map[uint64]bool{}
	seed := uint64(7)
	rnd := func(n int) uint64 {
		seed = seed*6364136223846793005 + 1442695040888963407
		return (seed >> 33) % uint64(n)
	}
	for step := 0; step < 50000; step++ {
		switch r := rnd(10); {
		case r < 3: // the lowest free, as Allocate takes it
			if x, ok := ss.lowestFree(size); ok {
				if !ss.add(x) || model[x] {
					t.Fatalf("step %d: lowest free %d was taken", step, x)
				}
				model[x] = true
			}
		case r < 7:
			x := rnd(size)
			if got := ss.add(x); got == model[x] {
				t.Fatalf("step %d: add(%d) = %v with the model holding it: %v", step, x, got, model[x])
			}
			model[x] = true
		default:
			x := rnd(size)
			if got := ss.remove(x); got != model[x] {
				t.Fatalf("step %d: remove(%d) = %v, the model held it: %v", step, x, got, model[x])
			}
			delete(model, x)
		}
		for i, r := range ss.s {
			if r.lo > r.hi || (i > 0 && ss.s[i-1].hi+1 >= r.lo) {
				t.Fatalf("step %d: runs not sorted, disjoint and apart: %v", step, ss.s)
			}
		}
		if ss.count() != uint64(len(model)) {
			t.Fatalf("step %d: %d members, the model %d", step, ss.count(), len(model))
		}
		low := uint64(0)
		for model[low] {
			low++
		}
		if x, ok := ss.lowestFree(size); ok != (low < size) || (ok && x != low) {
			t.Fatalf("step %d: lowest free %d %v, the model %d", step, x, ok, low)
		}
	}
}
