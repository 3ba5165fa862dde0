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

// TestNewCountsUpWithinAMillisecond: ids made one after the other for one
// time sort in the order they were made (a deposit and the payment it funded
// in one millisecond were listed newest-first in a random order), are all
// different and valid, past the ids Successor derives from the one before;
// a later millisecond sorts after them.
func TestNewCountsUpWithinAMillisecond(t *testing.T) {
	at := time.UnixMilli(1_796_000_000_000)
	prev := New("wtx", at)
	seen := map[string]bool{prev: true}
	for i := 0; i < 10000; i++ {
		id := New("wtx", at)
		if id <= prev || seen[id] || !Valid("wtx", id) {
			t.Fatalf("id %d: %s after %s", i, id, prev)
		}
		// The FSM derives up to 2^16 ids after one (Successor): the next
		// New id is past them all.
		if last, _ := Successor("wtx", prev, 0xffff); id <= last {
			t.Fatalf("id %d: %s within Successor's range of %s (up to %s)", i, id, prev, last)
		}
		seen[id], prev = true, id
	}
	if later := New("wtx", at.Add(time.Millisecond)); later <= prev {
		t.Fatalf("a later millisecond's id %s sorts before %s", later, prev)
	}
}

// TestAdvanceOverflow: a random part too near its end is not wrapped round
// (the id would sort first); New draws a fresh one instead.
func TestAdvanceOverflow(t *testing.T) {
	var b [16]byte
	for i := 6; i < 16; i++ {
		b[i] = 0xff
	}
	b[15] = 0x00 // 2^8 short of the end
	if advance(&b, 1<<32) || b[15] != 0 {
		t.Fatalf("advanced past the end: %x", b)
	}
	b = [16]byte{}
	b[8], b[9] = 0xff, 0xff // the low 64 bits carry into the high 16
	for i := 10; i < 16; i++ {
		b[i] = 0xff
	}
	if !advance(&b, 1) || b[7] != 1 || b[15] != 0 {
		t.Fatalf("carry: %x", b)
	}
}
