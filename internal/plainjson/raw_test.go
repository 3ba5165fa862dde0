package plainjson

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzPlainValue: a value PlainValue accepts is written unchanged by
// json.Marshal as a json.RawMessage, and read unchanged by json.Unmarshal
// into one.
func FuzzPlainValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2,"b",{},[]],"c":null,"d":true,"e":false}`, `"x"`, `{"a": 1}`, `{"a":"<"}`, `1.5`, `[1,]`, `-0`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !PlainValue(b) {
			return
		}
		out, err := json.Marshal(json.RawMessage(b))
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s: json.Marshal wrote %s (%v)", b, out, err)
		}
		var raw json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || !bytes.Equal(raw, b) {
			t.Fatalf("%s: json.Unmarshal read %s (%v)", b, raw, err)
		}
	})
}
