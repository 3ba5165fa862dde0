package plainjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendJSONString: AppendJSONString writes json.Marshal's bytes for any
// string, as a string and as bytes, and AppendStringField writes a key and
// those bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<b>\"q\" & \\ \b\f\n\r\t\x01\x7f", "ünï \u2028\u2029 \xff\xfe\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
		if got := AppendJSONString([]byte("x"), []byte(s)); !bytes.Equal(got[1:], want) {
			t.Fatalf("%q as bytes: got %s want %s", s, got[1:], want)
		}
		if got := AppendStringField([]byte("{"), `"k":`, s); !bytes.Equal(got, append([]byte(`{"k":`), want...)) {
			t.Fatalf("%q as a field: got %s want {\"k\":%s", s, got, want)
		}
	})
}
