// Package plainjson reads and writes the plain subset of JSON that
// encoding/json produces for records of ASCII strings and integers, without
// reflection: hot apply paths use it to write exactly the bytes json.Marshal
// writes and to read exactly the values json.Unmarshal reads, and fall back
// to encoding/json for anything outside the subset (a string needing an
// escape, whitespace, keys out of order, null, a float…). Each user holds its
// codec to encoding/json's bytes and values with a fuzz test.
package plainjson

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Plain reports whether json.Marshal writes s as '"' + s + '"': printable
// ASCII without '"', '\\' or the characters it escapes for HTML ('<', '>',
// '&').
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// AppendString appends s as a JSON string; s must be Plain.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// AppendKey appends "key": (key must be Plain).
func AppendKey(dst []byte, key string) []byte {
	dst = AppendString(dst, key)
	return append(dst, ':')
}

// Reader reads one JSON object in the plain subset: no whitespace, keys and
// strings of printable ASCII without escapes, integers without sign, fraction
// or exponent (except a minus for Int), arrays of strings. Any other input
// makes a read fail (ok false); the caller then decodes with encoding/json.
type Reader struct {
	b []byte
	i int
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Object reads an object whose keys are among keys, each at most once and
// in that order (as encoding/json writes a struct's fields), calling value(i)
// to read the value of keys[i]. Any other key, a repeated one or one out of
// order fails it.
func (r *Reader) Object(keys []string, value func(i int) bool) bool {
	if !r.byte('{') {
		return false
	}
	if r.byte('}') {
		return true
	}
	next := 0
	for {
		key, ok := r.key()
		if !ok || !r.byte(':') {
			return false
		}
		i := next
		for i < len(keys) && keys[i] != string(key) {
			i++
		}
		if i == len(keys) || !value(i) {
			return false
		}
		next = i + 1
		if r.byte('}') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// Fields reads an object of keys (Object's rules) into dst, a pointer per
// key in keys' order: a *string, *int, *int64, *bool, *time.Time or
// *[]string is read with String, Int (an int64 as an int: the same range
// on 64-bit machines), Bool, Time or Strings. Any other pointer is a
// programming error: it panics.
func (r *Reader) Fields(keys []string, dst ...any) bool {
	return r.Object(keys, func(i int) (ok bool) {
		switch p := dst[i].(type) {
		case *string:
			*p, ok = r.String()
		case *int:
			*p, ok = r.Int()
		case *int64:
			var n int
			n, ok = r.Int()
			*p = int64(n)
		case *bool:
			*p, ok = r.Bool()
		case *time.Time:
			*p, ok = r.Time()
		case *[]string:
			*p, ok = r.Strings()
		default:
			// (not %T of dst[i]: handing it to fmt would move every
			// caller's record to the heap)
			panic("plainjson: Fields: no read into the destination of " + strconv.Quote(keys[i]))
		}
		return ok
	})
}

// String reads a string of printable ASCII without escapes (ReadString,
// narrowed to ASCII: the records read this way hold nothing else, and
// anything else is left to encoding/json).
func (r *Reader) String() (string, bool) {
	s, i, ok := ReadString(r.b, r.i)
	if !ok {
		return "", false
	}
	for j := 0; j < len(s); j++ {
		if s[j] > 0x7e {
			return "", false
		}
	}
	r.i = i
	return s, true
}

// key is String's read of an object's key, as the bytes of b it reads (no
// copy: Object only compares them with its keys).
func (r *Reader) key() ([]byte, bool) {
	b, i := r.b, r.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			r.i = j + 1
			return b[i+1 : j], true
		case c < 0x20 || c == '\\' || c > 0x7e:
			return nil, false
		}
	}
	return nil, false
}

// ReadString reads the JSON string at b[i:] if it has no escape and no
// control character and is valid UTF-8 (json.Unmarshal then gives its bytes
// as they are); it returns the index after it.
func ReadString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	start, ascii := i+1, true
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[start:j]
			if !ascii && !utf8.Valid(s) {
				return "", i, false
			}
			return string(s), j + 1, true
		case c < 0x20 || c == '\\':
			return "", i, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", i, false
}

// Uint reads a non-negative integer that fits in bits bits.
func (r *Reader) Uint(bits int) (uint64, bool) {
	start := r.i
	if !r.digits() {
		return 0, false
	}
	n, err := strconv.ParseUint(string(r.b[start:r.i]), 10, bits)
	return n, err == nil
}

// Int reads an integer that fits in an int.
func (r *Reader) Int() (int, bool) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	if !r.digits() {
		return 0, false
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, strconv.IntSize)
	return int(n), err == nil
}

// digits consumes 0 or [1-9][0-9]*, not followed by a fraction or exponent.
func (r *Reader) digits() bool {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	n := r.i - start
	if n == 0 || n > 20 || (n > 1 && r.b[start] == '0') {
		return false
	}
	return r.i == len(r.b) || (r.b[r.i] != '.' && r.b[r.i] != 'e' && r.b[r.i] != 'E')
}

// Strings reads an array of strings ([] is an empty, non-nil slice, as
// encoding/json makes it).
func (r *Reader) Strings() ([]string, bool) {
	if !r.byte('[') {
		return nil, false
	}
	out := []string{}
	if r.byte(']') {
		return out, true
	}
	for {
		s, ok := r.String()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if r.byte(']') {
			return out, true
		}
		if !r.byte(',') {
			return nil, false
		}
	}
}

// Array reads an array, calling elem to read each element ([] calls it
// never).
func (r *Reader) Array(elem func() bool) bool {
	if !r.byte('[') {
		return false
	}
	if r.byte(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if r.byte(']') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// Bool reads true or false.
func (r *Reader) Bool() (v, ok bool) {
	switch {
	case r.literal("true"):
		return true, true
	case r.literal("false"):
		return false, true
	}
	return false, false
}

// maxDepth bounds the nesting Raw follows (deeper input is left to
// encoding/json).
const maxDepth = 32

// Raw reads one JSON value in the plain subset and returns its bytes (a
// slice of the input): objects and arrays without whitespace, strings of
// printable ASCII without escapes or the characters json.Marshal escapes for
// HTML ('<', '>', '&'), integers, true, false and null. json.Marshal writes
// such a value as a json.RawMessage unchanged (it is compact, valid and needs
// no escape; see PlainValue), and json.Unmarshal gives exactly these bytes
// for a json.RawMessage.
func (r *Reader) Raw() ([]byte, bool) {
	start := r.i
	if !r.value(0) {
		return nil, false
	}
	return r.b[start:r.i], true
}

// PlainValue reports whether b is one JSON value that Raw reads whole: then
// json.Marshal writes b as a json.RawMessage byte for byte.
func PlainValue(b []byte) bool {
	r := Reader{b: b}
	return r.value(0) && r.End()
}

func (r *Reader) value(depth int) bool {
	if r.i >= len(r.b) || depth > maxDepth {
		return false
	}
	switch c := r.b[r.i]; {
	case c == '"':
		return r.plainString()
	case c == '{':
		r.i++
		if r.byte('}') {
			return true
		}
		for {
			if !r.plainString() || !r.byte(':') || !r.value(depth+1) {
				return false
			}
			if r.byte('}') {
				return true
			}
			if !r.byte(',') {
				return false
			}
		}
	case c == '[':
		r.i++
		if r.byte(']') {
			return true
		}
		for {
			if !r.value(depth + 1) {
				return false
			}
			if r.byte(']') {
				return true
			}
			if !r.byte(',') {
				return false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := r.Int()
		return ok
	}
	return r.literal("true") || r.literal("false") || r.literal("null")
}

// plainString consumes a string whose content is Plain.
func (r *Reader) plainString() bool {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return false
	}
	for j := r.i + 1; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			r.i = j + 1
			return true
		case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return false
}

// Time reads a time.Time as json.Unmarshal reads it (through its
// UnmarshalJSON, from a string: null is not read).
func (r *Reader) Time() (time.Time, bool) {
	var t time.Time
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return t, false
	}
	raw, ok := r.Raw()
	ok = ok && t.UnmarshalJSON(raw) == nil
	return t, ok
}

// AppendTime appends t as json.Marshal writes a time.Time, when t is UTC
// within years 0-9999 (PlainTime; ok false otherwise: json.Marshal refuses
// other years, and other zones are left to it).
func AppendTime(dst []byte, t time.Time) ([]byte, bool) {
	if !PlainTime(t) {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// PlainTime reports whether AppendTime writes t: whether it is UTC within
// years 0-9999.
func PlainTime(t time.Time) bool {
	if t.Location() != time.UTC {
		return false
	}
	y := t.Year()
	return y >= 0 && y <= 9999
}

// End reports whether the whole input was read.
func (r *Reader) End() bool { return r.i == len(r.b) }

func (r *Reader) literal(word string) bool {
	if len(r.b)-r.i >= len(word) && string(r.b[r.i:r.i+len(word)]) == word {
		r.i += len(word)
		return true
	}
	return false
}

func (r *Reader) byte(c byte) bool {
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// AppendStringField appends key, a fragment of the object such as
// `,"name":`, then s as json.Marshal writes a string (AppendJSONString): one
// string field of a record written by hand.
func AppendStringField(dst []byte, key, s string) []byte {
	return AppendJSONString(append(dst, key...), s)
}

// AppendArray appends items as json.Marshal writes a slice: null for a nil
// one, else each item through elem, comma-separated in brackets.
func AppendArray[T any](dst []byte, items []T, elem func(dst []byte, item *T) []byte) []byte {
	if items == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = elem(dst, &items[i])
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as json.Marshal writes a string, for any s: with
// HTML escaping, \" \\ \b \f \n \r \t, other controls and < > & as \u00XX,
// U+2028 and U+2029 escaped, invalid UTF-8 as \ufffd.
func AppendJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start, i := 0, 0
	for {
		for i < len(s) && htmlSafe[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		var r [utf8.UTFMax]byte
		c, size := utf8.DecodeRune(r[:copy(r[:], s[i:])])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// htmlSafe[b]: b is an ASCII byte json.Marshal writes in a string as
// itself (not a control, " \ < > &). AppendJSONString skips runs of them
// one table look-up a byte.
var htmlSafe = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()
