package plainjson

import (
	"encoding/json"
	"strconv"
	"testing"
)

// TestAppendArrayMatchesEncodingJSON: AppendArray writes a slice as
// json.Marshal does: null for a nil slice, [] for an empty one, the items
// comma-separated in their order otherwise, each written by elem.
func TestAppendArrayMatchesEncodingJSON(t *testing.T) {
	type pair struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	pairElem := func(b []byte, p *pair) []byte {
		b = strconv.AppendInt(append(b, `{"n":`...), int64(p.N), 10)
		return append(AppendStringField(b, `,"s":`, p.S), '}')
	}
	for _, items := range [][]pair{nil, {}, {{1, "a"}}, {{1, "a"}, {-2, "<\"b\">"}, {3, "\u2028\xff"}}} {
		want, err := json.Marshal(items)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendArray([]byte("x"), items, pairElem); string(got) != "x"+string(want) {
			t.Errorf("AppendArray(%#v) wrote %s, json.Marshal writes %s", items, got[1:], want)
		}
	}
	strElem := func(b []byte, s *string) []byte { return AppendJSONString(b, *s) }
	for _, items := range [][]string{nil, {}, {""}, {"fra-1", "ams-2"}} {
		want, _ := json.Marshal(items)
		if got := AppendArray(nil, items, strElem); string(got) != string(want) {
			t.Errorf("AppendArray(%q) wrote %s, json.Marshal writes %s", items, got, want)
		}
	}
}
