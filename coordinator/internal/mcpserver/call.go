package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Call is the HTTP request a tool call stands for.
type Call struct {
	Method string
	Path   string // escaped path and query: /v1/tickets/tkt_1?page=2
	Body   []byte // JSON, nil without a body
	Header http.Header
	// Route is the operation ("METHOD /v1/path" pattern) the call runs, and
	// PathValues its path parameters (wire name, value), unescaped.
	Route      string
	PathValues [][2]string
}

// ArgError is a tool argument the operation cannot take; Field names it.
type ArgError struct {
	Field string
	Msg   string
}

func (e *ArgError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return fmt.Sprintf("argument %q: %s", e.Field, e.Msg)
}

// decodeArgs reads a call's arguments: a JSON object (or nothing), every key
// one of the tool's arguments.
func (t *Tool) decodeArgs(raw []byte) (map[string]json.RawMessage, error) {
	args := make(map[string]json.RawMessage, len(t.argNames))
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return args, nil
	}
	// An object of valid UTF-8 with plain keys, each once, is read in place
	// (what json.Unmarshal makes of it too); anything else through
	// json.Unmarshal (its errors, U+FFFD for bad bytes in a key, and the
	// last of a repeated key).
	plain := utf8.Valid(raw) && json.Valid(raw) && eachMember(raw, func(key, val []byte) bool {
		if _, dup := args[string(key)]; dup {
			return false
		}
		args[string(key)] = val
		return true
	})
	if !plain {
		clear(args)
		if err := json.Unmarshal(raw, &args); err != nil {
			return nil, &ArgError{Msg: "arguments must be a JSON object: " + err.Error()}
		}
	}
	if err := t.unknownArg(args); err != nil {
		return nil, err
	}
	return args, nil
}

// unknownArg names the first argument (sorted) the tool does not take; the
// empty name is one too.
func (t *Tool) unknownArg(args map[string]json.RawMessage) error {
	unknown, found := "", false
	for k := range args {
		if !t.argNames[k] && (!found || k < unknown) {
			unknown, found = k, true
		}
	}
	if found {
		return &ArgError{Field: unknown, Msg: "unknown argument; this tool takes " + strings.Join(t.ArgNames(), ", ")}
	}
	return nil
}

// ArgNames lists the tool's arguments, sorted.
func (t *Tool) ArgNames() []string {
	out := make([]string, 0, len(t.argNames))
	for k := range t.argNames {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Build turns a call's arguments into the operation's HTTP request: path
// parameters escaped into the path (never "." or ".."), query and header
// parameters as strings, `body` as the JSON body. The body itself is left to
// the operation's own decoder (its 400 names the field).
func (t *Tool) Build(raw []byte) (*Call, error) {
	args, err := t.decodeArgs(raw)
	if err != nil {
		return nil, err
	}
	c := &Call{Method: t.Op.Method, Header: make(http.Header, 3), Route: t.route}
	path := t.Op.Path
	var q url.Values
	for _, p := range t.params {
		v, ok := args[p.name]
		if !ok || string(v) == "null" {
			if p.req {
				return nil, &ArgError{Field: p.name, Msg: "required"}
			}
			continue
		}
		s, err := scalar(v)
		if err != nil {
			return nil, &ArgError{Field: p.name, Msg: err.Error()}
		}
		switch p.in {
		case "path":
			if s == "" || s == "." || s == ".." {
				return nil, &ArgError{Field: p.name, Msg: "must be a non-empty path segment"}
			}
			path = strings.Replace(path, "{"+p.wire+"}", url.PathEscape(s), 1)
			c.PathValues = append(c.PathValues, [2]string{p.wire, s})
		case "query":
			if q == nil {
				q = url.Values{}
			}
			q.Set(p.wire, s)
		case "header":
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, &ArgError{Field: p.name, Msg: "must not contain control characters"}
			}
			c.Header.Set(p.wire, s)
		}
	}
	if qs := q.Encode(); qs != "" {
		path += "?" + qs
	}
	c.Path = path
	if t.hasBody {
		if b, ok := args[argBody]; ok && string(b) != "null" {
			c.Body = []byte(b)
		} else if t.bodyReq {
			return nil, &ArgError{Field: argBody, Msg: "required"}
		}
	}
	if c.Body != nil {
		c.Header["Content-Type"] = jsonOnly
	}
	c.Header["Accept"] = jsonOnly
	return c, nil
}

// jsonOnly is the header value application/json (shared: a header's values
// are replaced, never written in place).
var jsonOnly = []string{"application/json"}

// scalar renders a JSON string, number or boolean as the parameter's text.
func scalar(v json.RawMessage) (string, error) {
	if s, ok := plainString(v); ok {
		return s, nil
	}
	var x any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("must be a string, number or boolean")
}

// plainString is the JSON string v when it is written without escapes: the
// bytes between the quotes, all printable or beyond ASCII, valid UTF-8 (what
// the decoder makes of it too).
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}
