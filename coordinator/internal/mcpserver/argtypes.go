package mcpserver

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The one rule of an argument's JSON type, wherever the argument sits: it is
// the type its inputSchema names, as a /v1 body member must be the type of
// its field (the REST decoder refuses `"years": "2"`). An integer is a JSON
// number with no fractional part, 2.0 and 20e-1 too (JSON Schema's integer,
// draft 6 on, which MCP tool schemas follow), given to the operation as the
// integer it is; a boolean is true or false; a string is a string.
//
// A path, query or header parameter is checked here (argText): its wire form
// is text, which would carry `"5"` and `5` alike. A body is the operation's
// own decoder's to check (its 400 names the field, as for a REST client);
// here its integers written 2.0 are only written as the integers they are
// (normaliseBody), which that decoder would otherwise refuse.

// schemaKind is the one JSON type the (converted) schema s names, "null"
// aside; "" for none or several.
func schemaKind(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []string:
		kind := ""
		for _, x := range t {
			if x == "null" {
				continue
			}
			if kind != "" {
				return ""
			}
			kind = x
		}
		return kind
	}
	return ""
}

// jsonKind is the JSON type of the valid JSON value v written as a
// parameter (string, number or boolean; scalar refuses the others).
func jsonKind(v []byte) string {
	switch v[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// argText is the wire text of p's argument v (valid JSON, not null): v must
// be the JSON type p's schema names. The refusal words the type as /v1's
// body decoder does ("must be an integer, not string").
func (p *param) argText(v json.RawMessage) (string, error) {
	s, err := scalar(v)
	if err != nil {
		return "", err
	}
	got := jsonKind(v)
	switch {
	case p.kind == "" || p.kind == got:
		return s, nil
	case p.kind == "integer" && got == "number":
		if n, ok := integral(s); ok {
			return n, nil
		}
		return "", fmt.Errorf("must be an integer, not number %s", s)
	case p.kind == "number" && got == "number":
		return s, nil
	}
	return "", fmt.Errorf("must be %s, not %s", article(p.kind), got)
}

// article is a JSON type with its article (an integer, a string).
func article(kind string) string {
	if kind == "integer" {
		return "an integer"
	}
	return "a " + kind
}

// integral is the JSON number s written as an integer when it is one with a
// zero fractional part (2.0, 20e-1, -0.0), within the integers a float64
// holds exactly; false when s has a fractional part (2.5). A number that is
// beyond those integers (1e20, 1e400) is s as given, for the operation to
// refuse as it refuses that query value.
func integral(s string) (string, bool) {
	if !strings.ContainsAny(s, ".eE") {
		return s, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return s, true
	}
	if f != math.Trunc(f) {
		return s, false
	}
	if math.Abs(f) > 1<<53 {
		return s, true
	}
	return strconv.FormatInt(int64(f), 10), true
}

// intShape is where a body's schema puts integers: the value itself, an
// object's members, an array's items.
type intShape struct {
	integer bool
	members map[string]*intShape
	items   *intShape
}

// intShapeOf is where the converted schema s puts integers (allOf members'
// properties included; oneOf and anyOf, which could type one member two
// ways, are left to the operation); nil when nowhere.
func intShapeOf(s map[string]any, depth int) *intShape {
	if s == nil || depth > maxSchemaDepth {
		return nil
	}
	sh := &intShape{integer: schemaKind(s) == "integer"}
	props := func(s map[string]any) {
		m, _ := s["properties"].(map[string]any)
		for name, ps := range m {
			psm, _ := ps.(map[string]any)
			if x := intShapeOf(psm, depth+1); x != nil {
				if sh.members == nil {
					sh.members = map[string]*intShape{}
				}
				sh.members[name] = x
			}
		}
	}
	props(s)
	all, _ := s["allOf"].([]any)
	for _, a := range all {
		if am, _ := a.(map[string]any); am != nil {
			props(am)
		}
	}
	if items, _ := s["items"].(map[string]any); items != nil {
		sh.items = intShapeOf(items, depth+1)
	}
	if !sh.integer && sh.members == nil && sh.items == nil {
		return nil
	}
	return sh
}

// normaliseBody is the (valid JSON) body with each number at a place the
// schema types integer that is written with a fraction or an exponent and is
// an integer (2.0) written as that integer; body itself when there is none.
// Everything else is left as sent, for the operation's decoder.
func (sh *intShape) normaliseBody(body []byte) []byte {
	if sh == nil || !strings.ContainsAny(string(body), ".eE") {
		return body
	}
	var edits []numEdit
	sh.visit(body, body, &edits)
	if len(edits) == 0 {
		return body
	}
	out := make([]byte, 0, len(body))
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start]...)
		out = append(out, e.text...)
		at = e.end
	}
	return append(out, body[at:]...)
}

// numEdit replaces body[start:end] with text.
type numEdit struct {
	start, end int
	text       string
}

// visit collects the edits of v, a value inside body (a subslice of it, so
// its offset is cap(body)-cap(v)), in the order of the body.
func (sh *intShape) visit(body, v []byte, edits *[]numEdit) {
	i := skipSpace(v, 0)
	if i >= len(v) {
		return
	}
	switch c := v[i]; {
	case c == '{' && sh.members != nil:
		eachMember(v, func(key, val []byte) bool {
			if m := sh.members[string(key)]; m != nil {
				m.visit(body, val, edits)
			}
			return true
		})
	case c == '[' && sh.items != nil:
		eachElement(v, func(val []byte) { sh.items.visit(body, val, edits) })
	case sh.integer && (c == '-' || c >= '0' && c <= '9'):
		num := v[i:valueEnd(v, i)]
		if n, ok := integral(string(num)); ok && n != string(num) {
			start := cap(body) - cap(num)
			*edits = append(*edits, numEdit{start, start + len(num), n})
		}
	}
}

// eachElement calls fn with each raw element of the JSON array arr (valid
// JSON).
func eachElement(arr []byte, fn func(val []byte)) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	for i = skipSpace(arr, i+1); i < len(arr) && arr[i] != ']'; {
		end := valueEnd(arr, i)
		fn(arr[i:end])
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}
