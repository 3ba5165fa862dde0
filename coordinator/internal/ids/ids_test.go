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

func TestSuccessorSortsRightAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 200; i++ {
		id := New("wtx", t0)
		next, ok := Successor("wtx", id, 1)
		far, _ := Successor("wtx", id, 40)
		later := New("wtx", t0.Add(time.Millisecond))
		if !ok || !Valid("wtx", next) || !(id < next && next < far && far < later) {
			t.Fatalf("Successor of %s: %s, %s; a later id %s", id, next, far, later)
		}
	}
	// A carry into the high half.
	max := "wtx_" + "0000000000000" + "zzzzzzzzzzzzz"
	if next, ok := Successor("wtx", max, 1); !ok || next != "wtx_"+"0000000000001"+"0000000000000" {
		t.Fatalf("carry: %s", next)
	}
	if _, ok := Successor("wtx", "tkt_"+max[4:], 1); ok {
		t.Fatal("an id of another prefix was accepted")
	}
}
