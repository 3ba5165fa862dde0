// Package codectest holds the checks every hand-written JSON codec's tests
// make against encoding/json.
package codectest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// Encoding checks that whenever encode writes v (ok true), it writes
// json.Marshal's bytes of v; it reports whether encode wrote. name names
// encode in the failure.
func Encoding[T any](t testing.TB, name string, encode func(*T) ([]byte, bool), v T) (fast bool) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, ok := encode(&v)
	if !ok {
		return false
	}
	if wantErr != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s(%+v)\n got %s\nwant %s (%v)", name, v, got, want, wantErr)
	}
	return true
}

// Reading checks that whenever read reads b (ok true), it gives what
// json.Unmarshal gives for b; it reports whether read read b. name names read
// in the failure.
func Reading[T any](t testing.TB, name string, read func([]byte) (T, bool), b []byte) (fast bool) {
	t.Helper()
	got, ok := read(b)
	if !ok {
		return false
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s(%s) = %+v, json.Unmarshal %+v (%v)", name, b, got, want, err)
	}
	return true
}

// Paths checks that check (one of the checks above, bound to the codec
// under test) reports the fast path for every value of fast and for none of
// slow; what names the values in a failure.
func Paths[T any](t testing.TB, what string, check func(T) (fast bool), fast, slow []T) {
	t.Helper()
	for i, v := range fast {
		if !check(v) {
			t.Errorf("%s %d of the fast list took the slow path: %+v", what, i, v)
		}
	}
	for i, v := range slow {
		if check(v) {
			t.Errorf("%s %d of the slow list took the fast path: %+v", what, i, v)
		}
	}
}
