package ids

import (
	"sort"
	"testing"
	"time"
)

func TestNewSortsByTimeAndValidates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []string
	for i := 0; i < 50; i++ {
		got = append(got, New("tkt", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("ids not sorted by time: %v", got)
	}
	for _, id := range got {
		if !Valid("tkt", id) {
			t.Fatalf("Valid(%q) = false", id)
		}
	}
	for _, bad := range []string{"", "tkt_", "acc_" + got[0][4:], got[0] + "x", "tkt_../../../etc/passwd0000", "tkt_ABCDEFGHJKMNPQRSTVWXYZ012"} {
		if Valid("tkt", bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	a, b, c := Derived("evt", t0, 7, 1), Derived("evt", t0, 7, 1), Derived("evt", t0, 7, 2)
	if a != b || a == c || !Valid("evt", a) {
		t.Fatal("Derived must be deterministic and distinct per seq")
	}
}
