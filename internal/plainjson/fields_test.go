package plainjson

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFields: Fields reads each key's value into its pointer by the
// pointer's type, with Object's rules (keys in order, each at most once, any
// of them left out); a value of another type, an unknown key or one out of
// order fails the read.
func TestFields(t *testing.T) {
	keys := []string{"s", "n", "b", "at", "list", "cents"}
	type rec struct {
		s     string
		n     int
		b     bool
		at    time.Time
		list  []string
		cents int64
	}
	read := func(in string) (rec, bool) {
		var r rec
		rd := NewReader([]byte(in))
		ok := rd.Fields(keys, &r.s, &r.n, &r.b, &r.at, &r.list, &r.cents)
		return r, ok && rd.End()
	}
	at := time.Date(2026, 12, 4, 5, 6, 7, 0, time.UTC)
	got, ok := read(`{"s":"x","n":-3,"b":true,"at":"2026-12-04T05:06:07Z","list":["a","b"],"cents":-9223372036854775808}`)
	if !ok || got.s != "x" || got.n != -3 || !got.b || !got.at.Equal(at) || !slices.Equal(got.list, []string{"a", "b"}) || got.cents != math.MinInt64 {
		t.Fatalf("every field: %+v %v", got, ok)
	}
	if got, ok := read(`{"n":2,"list":[]}`); !ok || got.s != "" || got.n != 2 || got.list == nil || len(got.list) != 0 {
		t.Fatalf("some fields: %+v %v", got, ok)
	}
	if _, ok := read(`{}`); !ok {
		t.Fatal("no fields: refused")
	}
	for _, bad := range []string{`{"n":"2"}`, `{"s":1}`, `{"b":"true"}`, `{"at":"yesterday"}`, `{"list":"a"}`, `{"n":1,"s":"x"}`, `{"x":1}`, `{"s":"a","s":"b"}`, `{"s":"x"`, `{"cents":9223372036854775808}`, `{"cents":1.5}`} {
		if got, ok := read(bad); ok {
			t.Errorf("%s read as %+v", bad, got)
		}
	}
}

// TestFieldsRefusesOtherPointers: a destination Fields has no read for is
// a programming error: it panics, naming the key.
func TestFieldsRefusesOtherPointers(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `"f"`) {
			t.Fatalf("a *float64 destination: recovered %v, want a panic naming the key \"f\"", r)
		}
	}()
	var f float64
	NewReader([]byte(`{"f":1}`)).Fields([]string{"f"}, &f)
}

// TestObjectKeysAllocateNothing: Object compares each key with its keys in
// place; reading an object of numbers allocates nothing (a string made per
// key was most of what the FSM's command decoding allocated). A key String
// would refuse (an escape, a control character, a byte above 0x7e) fails
// the read as before.
func TestObjectKeysAllocateNothing(t *testing.T) {
	keys := []string{"a", "bb", "ccc", "dddd"}
	in := []byte(`{"a":1,"bb":2,"ccc":3,"dddd":4}`)
	sum := 0
	read := func(in []byte) bool {
		r := Reader{b: in}
		return r.Object(keys, func(int) bool {
			n, ok := r.Int()
			sum += n
			return ok
		}) && r.End()
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if !read(in) {
			t.Fatal("refused")
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations reading %s, want 0", allocs, in)
	}
	for _, bad := range []string{`{"\u0061":1}`, `{"a\\":1}`, "{\"a\x01\":1}", "{\"a\x7f\":1}", `{"ä":1}`, `{"a`, `{"a":1,"a":2}`, `{"bb":1,"a":2}`} {
		if read([]byte(bad)) {
			t.Errorf("%q read", bad)
		}
	}
}
