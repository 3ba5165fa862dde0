package mcpserver

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The one rule of an argument's JSON type: it is the type its inputSchema
// names, as a /v1 body member must be the type of its field (the REST decoder
// refuses `"years": "2"`). A path, query or header parameter is checked here
// (argText), as its wire form is text, which would carry `"5"` and `5`
// alike: an integer is a JSON number with no fractional part, 2.0 and 20e-1
// too (JSON Schema's integer, draft 6 on, which MCP tool schemas follow: the
// query then carries the integer, as /v1's own query parameter takes it); a
// boolean is true or false; a string is a string. `body` is the JSON document
// a REST client sends, handed to the operation as it is: its decoder's rules,
// and its 400 naming the field, are the same on both paths.

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
