// Package jsonmembers refuses the object member names that encoding/json
// takes silently: a name given twice in one object (encoding/json keeps the
// last) and a name that matches a struct field only when case is ignored
// (encoding/json matches "SUBJECT" and "Subject" to the field "subject", and
// DisallowUnknownFields lets them through). Both make one body mean two
// things: a proxy, a log or a firewall in front of the API that reads the
// first "amount", or only the exact "amount", sees another request than the
// one the coordinator runs.
//
// encoding/json/v2 (github.com/go-json-experiment/json) has both checks
// built in, but moving every request decoder to it changes more than member
// names (errors, null handling, its options), so the request decoders keep
// encoding/json and run Check after it: a walk of the body's tokens against
// the member names of the type the body was decoded into.
package jsonmembers

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// DuplicateError is a member name given twice in one object.
type DuplicateError struct{ Path string }

func (e *DuplicateError) Error() string {
	return "field " + strconv.Quote(e.Path) + " is given more than once"
}

// CaseError is a member name that names a field only when case is ignored.
type CaseError struct {
	Path string // the path with the name as sent
	Want string // the field's name
}

func (e *CaseError) Error() string {
	return "unknown field " + strconv.Quote(e.Path) + " (field names are case-sensitive: did you mean " + strconv.Quote(e.Want) + "?)"
}

// DepthError is a body nested deeper than MaxDepth (encoding/json's own
// limit): refused before walking further, so a deep body costs no more than
// a shallow one of its size.
type DepthError struct{}

func (e *DepthError) Error() string { return "the JSON body is nested too deep" }

// MaxDepth is how deep Check walks.
const MaxDepth = 10000

// Check walks body, one JSON value that encoding/json decoded into a value of
// type t without error, and returns a *DuplicateError or a *CaseError for
// the first member name it refuses, a *DepthError for a body nested deeper
// than MaxDepth, or nil. Beneath a map, an interface or a type that decodes
// itself (json.Unmarshaler, encoding.TextUnmarshaler) only duplicates are
// refused. A body that is not valid JSON returns nil: the decoder's own
// error is the one to report.
func Check(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := walk(dec, t, nil, 0)
	var de *DuplicateError
	var ce *CaseError
	var xe *DepthError
	if errors.As(err, &de) || errors.As(err, &ce) || errors.As(err, &xe) {
		return err
	}
	return nil
}

// seg is one step of the path to a value, linked to its parent: the path is
// made text only for an error (building it at every level made a body of
// 300,000 nested arrays cost tens of GB).
type seg struct {
	parent *seg
	name   string
	idx    int
	isIdx  bool
}

func (p *seg) String() string {
	if p == nil {
		return ""
	}
	if p.isIdx {
		return p.parent.String() + "[" + strconv.Itoa(p.idx) + "]"
	}
	if p.parent == nil {
		return p.name
	}
	return p.parent.String() + "." + p.name
}

// walk reads one value from dec, which should decode into a t (nil: anything).
func walk(dec *json.Decoder, t reflect.Type, path *seg, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	if depth >= MaxDepth {
		return &DepthError{}
	}
	s := shapeOf(t)
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			at := &seg{parent: path, name: name}
			if seen[name] {
				return &DuplicateError{Path: at.String()}
			}
			seen[name] = true
			var sub reflect.Type
			switch {
			case s.fields != nil:
				ft, ok := s.fields[name]
				if !ok {
					// encoding/json matches names as bytes.EqualFold does
					// (so "ſubject", with a long s, is "subject" too).
					for want := range s.fields {
						if strings.EqualFold(name, want) {
							return &CaseError{Path: at.String(), Want: want}
						}
					}
					// Not a field at all: DisallowUnknownFields refused it
					// already where the decoder asked for that.
				}
				sub = ft
			case s.elem != nil:
				sub = s.elem
			}
			if err := walk(dec, sub, at, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walk(dec, s.elem, &seg{parent: path, idx: i, isIdx: true}, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// shape is what a type takes beneath it: a struct its fields by name, a map,
// slice or array its element type; nothing is known beneath anything else.
type shape struct {
	fields map[string]reflect.Type
	elem   reflect.Type
}

var shapes sync.Map // reflect.Type → shape

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func shapeOf(t reflect.Type) shape {
	if t == nil {
		return shape{}
	}
	if s, ok := shapes.Load(t); ok {
		return s.(shape)
	}
	var s shape
	u := t
	for u.Kind() == reflect.Pointer {
		u = u.Elem()
	}
	pt := reflect.PointerTo(u)
	switch {
	case pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler):
		// Decodes itself: nothing known beneath.
	case u.Kind() == reflect.Struct:
		s.fields = map[string]reflect.Type{}
		addFields(u, s.fields, map[reflect.Type]bool{})
	case u.Kind() == reflect.Map, u.Kind() == reflect.Slice, u.Kind() == reflect.Array:
		if u.Kind() == reflect.Slice && u.Elem().Kind() == reflect.Uint8 {
			break // []byte is a base64 string
		}
		s.elem = u.Elem()
	}
	shapes.Store(t, s)
	return s
}

// addFields adds the member names of struct type t, as encoding/json names
// them: the tag's name, else the field's; "-" left out; an embedded struct
// without a name in its tag inlined (its names under the outer ones).
func addFields(t reflect.Type, into map[string]reflect.Type, inlining map[reflect.Type]bool) {
	if inlining[t] {
		return
	}
	inlining[t] = true
	defer delete(inlining, t)
	var embedded []reflect.Type
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
	for _, et := range embedded {
		inner := map[string]reflect.Type{}
		addFields(et, inner, inlining)
		for name, ft := range inner {
			if _, ok := into[name]; !ok {
				into[name] = ft
			}
		}
	}
}
