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
