package codectest

import (
	"fmt"
	"strconv"
	"testing"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func (r *recorder) Errorf(format string, args ...any) {
	r.failed += fmt.Sprintf(format, args...) + "\n"
}

type pair struct {
	A string `json:"a"`
	N int    `json:"n"`
}

func TestReading(t *testing.T) {
	right := func(b []byte) (pair, bool) { return pair{A: "x", N: 1}, string(b) == `{"a":"x","n":1}` }
	wrong := func(b []byte) (pair, bool) { return pair{A: "y", N: 1}, true }
	never := func(b []byte) (pair, bool) { return pair{}, false }
	for _, c := range []struct {
		name       string
		read       func([]byte) (pair, bool)
		in         string
		fast, fail bool
	}{
		{"right", right, `{"a":"x","n":1}`, true, false},
		{"right, not read", right, `{"a":"x","n":2}`, false, false},
		{"wrong", wrong, `{"a":"x","n":1}`, true, true},
		{"read what json.Unmarshal refuses", wrong, `{"a":1}`, true, true},
		{"never", never, `{"a":"x","n":1}`, false, false},
	} {
		r := &recorder{TB: t}
		if fast := Reading(r, "read", c.read, []byte(c.in)); fast != c.fast || (r.failed != "") != c.fail {
			t.Errorf("%s: fast %v, failed %q; want fast %v, a failure %v", c.name, fast, r.failed, c.fast, c.fail)
		}
	}
}

func TestEncoding(t *testing.T) {
	right := func(p *pair) ([]byte, bool) { return []byte(`{"a":"` + p.A + `","n":` + strconv.Itoa(p.N) + `}`), true }
	wrong := func(p *pair) ([]byte, bool) { return []byte(`{"n":1,"a":"x"}`), true }
	never := func(p *pair) ([]byte, bool) { return nil, false }
	for _, c := range []struct {
		name       string
		encode     func(*pair) ([]byte, bool)
		fast, fail bool
	}{
		{"right", right, true, false},
		{"wrong", wrong, true, true},
		{"never", never, false, false},
	} {
		r := &recorder{TB: t}
		if fast := Encoding(r, "encode", c.encode, pair{A: "x", N: 1}); fast != c.fast || (r.failed != "") != c.fail {
			t.Errorf("%s: fast %v, failed %q; want fast %v, a failure %v", c.name, fast, r.failed, c.fast, c.fail)
		}
	}
}

func TestPaths(t *testing.T) {
	short := func(s string) bool { return len(s) < 3 }
	for _, c := range []struct {
		name       string
		fast, slow []string
		fail       []string
	}{
		{"right", []string{"a", "bb"}, []string{"ccc"}, nil},
		{"none", nil, nil, nil},
		{"a fast one slow", []string{"a", "dddd"}, nil, []string{"s 1 of the fast list took the slow path: dddd"}},
		{"a slow one fast", nil, []string{"ccc", "e"}, []string{"s 1 of the slow list took the fast path: e"}},
		{"both", []string{"ccc"}, []string{"e"}, []string{"s 0 of the fast list took the slow path: ccc", "s 0 of the slow list took the fast path: e"}},
	} {
		r := &recorder{TB: t}
		Paths(r, "s", short, c.fast, c.slow)
		want := ""
		for _, f := range c.fail {
			want += f + "\n"
		}
		if r.failed != want {
			t.Errorf("%s: failed %q, want %q", c.name, r.failed, want)
		}
	}
}
