// Package codectest holds the checks every hand-written JSON codec's tests
// make against encoding/json.
package codectest

import (
	"bytes"
	"encoding/json"
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
