package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/jsonmembers"
)

// Call is the HTTP request a tool call stands for.
type Call struct {
	Method string
	Path   string // escaped path and query: /v1/tickets/tkt_1?page=2
	Body   []byte // JSON, nil without a body
	Header http.Header
	// Route is the operation ("METHOD /v1/path" pattern) the call runs.
	Route string
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

// args are a call's arguments as read: each name once, in no particular
// order (a tool takes a handful, so a slice searched in order serves where
// a map would cost an allocation per call).
type args []arg

type arg struct {
	name string
	val  json.RawMessage
}

// get is the value of argument name.
func (a args) get(name string) (json.RawMessage, bool) {
	for _, x := range a {
		if x.name == name {
			return x.val, true
		}
	}
	return nil, false
}

// decodeArgs reads a call's arguments: a JSON object (or nothing), every key
// one of the tool's arguments.
func (t *Tool) decodeArgs(raw []byte) (args, error) {
	return t.decodeArgsOf(nil, raw, utf8.Valid(raw) && jsonValid(raw))
}

// decodeArgsOf is decodeArgs once raw is known to be (valid) valid UTF-8
// and valid JSON or not, read in place into buf's memory when it has room
// (build's, on its stack).
func (t *Tool) decodeArgsOf(buf args, raw []byte, valid bool) (args, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	// An object of valid UTF-8 whose keys are the tool's arguments, each
	// once and written without escapes, is read in place (what
	// json.Unmarshal makes of it too), without copying a key: each is one of
	// the tool's names. Anything else goes through json.Unmarshal (its
	// errors, U+FFFD for bad bytes in a key, the last of a repeated key, an
	// unknown argument's error); so the in-place reading keeps at most as
	// many members as the tool has arguments.
	out := buf[:0]
	plain := valid && eachMember(raw, func(key, val []byte) bool {
		name := t.argName(key)
		if name == "" {
			return false
		}
		if _, dup := out.get(name); dup {
			return false
		}
		if out == nil {
			out = make(args, 0, len(t.names))
		}
		out = append(out, arg{name, val})
		return true
	})
	if plain {
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &ArgError{Msg: "arguments must be a JSON object: " + err.Error()}
	}
	if err := t.unknownArg(m); err != nil {
		return nil, err
	}
	// json.Unmarshal kept the last of a repeated argument (or member beneath
	// one): refused, as /v1 refuses a repeated field.
	if err := jsonmembers.Check(raw, reflect.TypeOf(&m)); err != nil {
		return nil, &ArgError{Msg: err.Error()}
	}
	out = make(args, 0, len(m))
	for k, v := range m {
		out = append(out, arg{k, v})
	}
	return out, nil
}

// argName is the tool's argument name spelled key ("" for none), without
// converting key.
func (t *Tool) argName(key []byte) string {
	for _, n := range t.names {
		if n == string(key) {
			return n
		}
	}
	return ""
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
	return slices.Clone(t.names)
}

// Build turns a call's arguments into the operation's HTTP request: path
// parameters escaped into the path (never "." or ".."), query and header
// parameters as strings, `body` as the JSON body. The body itself is left to
// the operation's own decoder (its 400 names the field).
func (t *Tool) Build(raw []byte) (*Call, error) {
	return t.build(raw, utf8.Valid(raw) && jsonValid(raw))
}

// build is Build once raw is known to be (valid) valid UTF-8 and valid JSON
// or not.
func (t *Tool) build(raw []byte, valid bool) (*Call, error) {
	var buf [8]arg // the arguments, read in place: no allocation for up to 8
	args, err := t.decodeArgsOf(buf[:0], raw, valid)
	if err != nil {
		return nil, err
	}
	c := &Call{Method: t.Op.Method, Header: make(http.Header, 3), Route: t.route}
	path := t.Op.Path
	var q url.Values
	for _, p := range t.params {
		v, ok := args.get(p.name)
		if !ok || string(v) == "null" {
			if p.req {
				return nil, &ArgError{Field: p.name, Msg: "required"}
			}
			continue
		}
		s, err := p.argText(v)
		if err != nil {
			return nil, &ArgError{Field: p.name, Msg: err.Error()}
		}
		switch p.in {
		case "path":
			if s == "" || s == "." || s == ".." {
				return nil, &ArgError{Field: p.name, Msg: "must be a non-empty path segment"}
			}
			path = strings.Replace(path, p.placeholder, url.PathEscape(s), 1)
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
		if b, ok := args.get(argBody); ok && string(b) != "null" {
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
