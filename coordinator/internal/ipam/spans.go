package ipam

import (
	"slices"
	"sort"
)

// span is an inclusive run of unit offsets.
type span struct{ lo, hi uint64 }

// spanSet is a set of unit offsets kept as sorted, disjoint, non-adjacent
// runs. A pool that is mostly allocated is a handful of runs, so the lowest
// free offset is read off the first run instead of scanning the pool.
// Offsets are below 2^63, so hi+1 never overflows.
type spanSet struct{ s []span }

// search returns the index of the first run ending at or after x.
func (ss *spanSet) search(x uint64) int {
	return sort.Search(len(ss.s), func(i int) bool { return ss.s[i].hi >= x })
}

// add inserts x and reports whether it was absent.
func (ss *spanSet) add(x uint64) bool {
	i := ss.search(x)
	n := len(ss.s)
	if i < n && ss.s[i].lo <= x {
		return false
	}
	left := i > 0 && ss.s[i-1].hi+1 == x
	right := i < n && ss.s[i].lo == x+1
	switch {
	case left && right:
		ss.join(i)
	case left:
		ss.s[i-1].hi = x
	case right:
		ss.s[i].lo = x
	default:
		ss.s = slices.Insert(ss.s, i, span{x, x})
	}
	return true
}

// join merges runs i-1 and i (x filled the gap between them), moving the
// shorter side of the slice: allocations take the lowest free offset, so
// the runs they join are at the front and the join costs O(1) instead of
// moving every run after them.
func (ss *spanSet) join(i int) {
	if i-1 < len(ss.s)-i-1 {
		ss.s[i].lo = ss.s[i-1].lo
		copy(ss.s[1:i], ss.s[:i-1])
		ss.s = ss.s[1:]
		return
	}
	ss.s[i-1].hi = ss.s[i].hi
	ss.s = slices.Delete(ss.s, i, i+1)
}

// drop deletes run i, moving the shorter side of the slice.
func (ss *spanSet) drop(i int) {
	if i < len(ss.s)-i-1 {
		copy(ss.s[1:i+1], ss.s[:i])
		ss.s = ss.s[1:]
		return
	}
	ss.s = slices.Delete(ss.s, i, i+1)
}

// remove deletes x and reports whether it was present.
func (ss *spanSet) remove(x uint64) bool {
	i := ss.search(x)
	if i == len(ss.s) || ss.s[i].lo > x {
		return false
	}
	sp := ss.s[i]
	switch {
	case sp.lo == sp.hi:
		ss.drop(i)
	case x == sp.lo:
		ss.s[i].lo++
	case x == sp.hi:
		ss.s[i].hi--
	default:
		ss.s[i].hi = x - 1
		ss.s = slices.Insert(ss.s, i+1, span{x + 1, sp.hi})
	}
	return true
}

// lowestFree returns the lowest offset below size not in the set.
func (ss *spanSet) lowestFree(size uint64) (uint64, bool) {
	var x uint64
	if len(ss.s) > 0 && ss.s[0].lo == 0 {
		x = ss.s[0].hi + 1
	}
	return x, x < size
}

// fromRuns builds a set from possibly overlapping, unsorted runs.
func fromRuns(runs []span) spanSet {
	slices.SortFunc(runs, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var out []span
	for _, r := range runs {
		if k := len(out) - 1; k >= 0 && r.lo <= out[k].hi+1 {
			out[k].hi = max(out[k].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return spanSet{s: out}
}

// count is the number of offsets in the set.
func (ss *spanSet) count() uint64 {
	var n uint64
	for _, r := range ss.s {
		n += r.hi - r.lo + 1
	}
	return n
}
