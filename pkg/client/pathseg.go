package client

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadPathValue is the error (errors.Is; the value is a
// *BadPathValueError) of a method given an id, a name, a slug or an address
// that cannot be one segment of its request's path: empty, "." or "..", or
// holding '/', '?', '#', '\' or a control character. Such a request would
// go to another route or resource than the caller meant
// ("/admin/hosting//suspend", "/v1/servers/../account"); it is refused
// before anything is sent.
var ErrBadPathValue = errors.New("not usable as a path segment")

// BadPathValueError says which argument of a client method could not be a
// path segment, and why.
type BadPathValueError struct {
	Method string // the request's method
	Path   string // its path, with {Param} where the value would have gone
	Param  string // the method's parameter: "id", "accountID", "name"
	Value  string
	Why    string // "is empty", "is not a name", "holds one of / ? # \"…
}

func (e *BadPathValueError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("client: %s %s: %s %s", e.Method, e.Path, e.Param, e.Why)
	}
	return fmt.Sprintf("client: %s %s: %s %q %s", e.Method, e.Path, e.Param, e.Value, e.Why)
}

// Is makes a BadPathValueError an ErrBadPathValue.
func (e *BadPathValueError) Is(target error) bool { return target == ErrBadPathValue }

// seg is v escaped as one segment of a request's path; name is the
// parameter it came from. A value no segment may hold (badSegment) comes
// out as a marker between NUL bytes naming the parameter and quoting the
// value: no escaped segment holds a NUL, and every request goes through
// checkPath, which refuses a path holding one. (Methods build paths as
// plain strings; the marker carries the refusal to the one place every
// request passes.)
func seg(name, v string) string {
	if badSegment(v) != "" {
		return "\x00" + name + " " + strconv.Quote(v) + "\x00"
	}
	return url.PathEscape(v)
}

// withQuery is path with v as its query string (v.Encode: keys sorted), or
// path alone when v holds nothing.
func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// nonEmpty is the values of q that are not "", for withQuery.
func nonEmpty(q map[string]string) url.Values {
	v := url.Values{}
	for k, s := range q {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// count is n as a query value, "" (left out) for 0.
func count(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// badSegment says why v cannot be a path segment ("" if it can).
func badSegment(v string) string {
	switch {
	case v == "":
		return "is empty"
	case v == "." || v == "..":
		return "is not a name"
	case strings.ContainsAny(v, `/?#\`):
		return `holds one of / ? # \`
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "holds a control character"
		}
	}
	return ""
}

// checkPath refuses a path seg marked, with the first marked argument.
func checkPath(method, path string) error {
	if strings.IndexByte(path, 0) < 0 {
		return nil
	}
	e := &BadPathValueError{Method: method}
	var shown strings.Builder
	for rest := path; ; {
		before, marked, ok := strings.Cut(rest, "\x00")
		shown.WriteString(before)
		if !ok {
			break
		}
		mark, after, _ := strings.Cut(marked, "\x00")
		name, quoted, _ := strings.Cut(mark, " ")
		shown.WriteString("{" + name + "}")
		if e.Param == "" {
			e.Param = name
			e.Value, _ = strconv.Unquote(quoted)
			e.Why = badSegment(e.Value)
		}
		rest = after
	}
	e.Path = shown.String()
	return e
}
