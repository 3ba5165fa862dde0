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
)

// Call is the HTTP request a tool call stands for.
type Call struct {
	Method string
	Path   string // escaped path and query: /v1/tickets/tkt_1?page=2
	Body   []byte // JSON, nil without a body
	Header http.Header
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
	args := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return args, nil
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, &ArgError{Msg: "arguments must be a JSON object: " + err.Error()}
	}
	names := make([]string, 0, len(args))
	for k := range args {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !t.argNames[k] {
			return nil, &ArgError{Field: k, Msg: "unknown argument; this tool takes " + strings.Join(t.ArgNames(), ", ")}
		}
	}
	return args, nil
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
	c := &Call{Method: t.Op.Method, Header: http.Header{}}
	path := t.Op.Path
	q := url.Values{}
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
		case "query":
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
		c.Header.Set("Content-Type", "application/json")
	}
	c.Header.Set("Accept", "application/json")
	return c, nil
}

// scalar renders a JSON string, number or boolean as the parameter's text.
func scalar(v json.RawMessage) (string, error) {
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
