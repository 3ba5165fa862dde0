package jsonmembers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
)

type inner struct {
	Vcpu  int    `json:"vcpu"`
	Label string `json:"label,omitempty"`
}

type Base struct {
	ID    string `json:"id"`
	Shade string `json:"shade"`
}

type body struct {
	Base                      // inlined: "id", "shade"
	Subject string            `json:"subject"`
	Amount  int64             `json:"amount_usd_cents"`
	Specs   inner             `json:"specs"`
	Keys    []string          `json:"ssh_keys"`
	Items   []inner           `json:"items"`
	Meta    map[string]string `json:"meta"`
	Raw     json.RawMessage   `json:"raw"`
	When    *time.Time        `json:"when"`
	Skip    string            `json:"-"`
	Plain   bool              // named "Plain"
	Shade   string            `json:"shade_outer"`
}

func check(s string) error { return Check([]byte(s), reflect.TypeFor[*body]()) }

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		body string
		want error
	}{
		{`{"subject":"a","amount_usd_cents":1,"specs":{"vcpu":1},"ssh_keys":["k"],"meta":{"a":"1","A":"2"},"id":"x","Plain":true}`, nil},
		{`{"raw":{"any":1,"ANY":2,"nested":[{"x":1}]},"when":"2026-01-02T03:04:05Z","shade":"in","shade_outer":"out"}`, nil},
		{`{"subject":"a","subject":"b"}`, &DuplicateError{Path: "subject"}},
		{`{"specs":{"vcpu":1,"vcpu":64}}`, &DuplicateError{Path: "specs.vcpu"}},
		{`{"items":[{"vcpu":1},{"label":"a","label":"b"}]}`, &DuplicateError{Path: "items[1].label"}},
		{`{"meta":{"a":"1","a":"2"}}`, &DuplicateError{Path: "meta.a"}},
		{`{"raw":{"x":1,"x":2}}`, &DuplicateError{Path: "raw.x"}},
		{`{"SUBJECT":"a"}`, &CaseError{Path: "SUBJECT", Want: "subject"}},
		{`{"subject":"a","Subject":"b"}`, &CaseError{Path: "Subject", Want: "subject"}},
		{`{"specs":{"VCPU":64}}`, &CaseError{Path: "specs.VCPU", Want: "vcpu"}},
		{"{\"\u017fubject\":\"long s\"}", &CaseError{Path: "\u017fubject", Want: "subject"}},
		{`{"ID":"x"}`, &CaseError{Path: "ID", Want: "id"}},
		{`{"plain":true}`, &CaseError{Path: "plain", Want: "Plain"}},
		{`{"nope":1}`, nil},  // unknown: DisallowUnknownFields' to refuse
		{`{"subject":`, nil}, // malformed: the decoder's to refuse
	} {
		err := check(tc.body)
		if !reflect.DeepEqual(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.body, err, tc.want)
		}
	}
}

// FuzzCheck holds Check against encoding/json/v2, which refuses duplicate
// names and matches names case-sensitively: of the bodies encoding/json
// decodes (unknown fields disallowed), Check refuses exactly those v2
// refuses (unknown members disallowed).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"subject":"a","amount_usd_cents":1}`, `{"subject":"a","subject":"b"}`, `{"Subject":"a"}`,
		`{"specs":{"vcpu":1,"label":"x"},"items":[{"vcpu":2}]}`, `{"meta":{"k":"v","K":"w"}}`, `{"id":"1","shade":"s"}`,
		`{"raw":[1,{"a":null}],"when":null}`, `[]`, `null`, `{"Plain":false,"shade_outer":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // the decoders refuse it before (v2 does too, v1 does not)
		}
		var v1 body
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&v1) != nil || dec.More() {
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			return // trailing data, as the request decoders refuse it
		}
		got := Check(b, reflect.TypeFor[*body]())
		var v2 body
		err2 := jsonv2.Unmarshal(b, &v2, jsonv2.RejectUnknownMembers(true))
		var de *DuplicateError
		var ce *CaseError
		if got != nil && !errors.As(got, &de) && !errors.As(got, &ce) {
			t.Fatalf("%s: unexpected error type %T", b, got)
		}
		if (got == nil) != (err2 == nil) {
			t.Fatalf("%s: Check %v, encoding/json/v2 %v", b, got, err2)
		}
	})
}

// TestDeepBody: a body nested past MaxDepth is a *DepthError, walked in
// memory proportional to its size (the path was built as text at every
// level: 300,000 nested arrays took tens of GB in a CI run), and a body at
// MaxDepth passes.
func TestDeepBody(t *testing.T) {
	deep := bytes.Repeat([]byte("["), 300000)
	deep = append(deep, bytes.Repeat([]byte("]"), 300000)...)
	var xe *DepthError
	if err := Check(deep, nil); !errors.As(err, &xe) {
		t.Fatalf("300,000 levels: %v, want a DepthError", err)
	}
	ok := append(bytes.Repeat([]byte("["), MaxDepth), bytes.Repeat([]byte("]"), MaxDepth)...)
	if err := Check(ok, nil); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
}
