package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIfUnchanged: a conditional admin write's precondition (PUT
// /admin/products/{slug}, PUT and DELETE /admin/os-templates/{name}).
// If-Match is the record's updated_at as one quoted RFC 3339 tag;
// If-None-Match: * is "there was none" (the zero time); neither header, or
// If-Match: *, is no precondition; anything else is a 400 naming the header.
func TestIfUnchanged(t *testing.T) {
	want := time.Date(2026, 12, 3, 8, 0, 0, 123456789, time.UTC)
	match := func(vs ...string) http.Header { return http.Header{"If-Match": vs} }
	for _, h := range []http.Header{{}, match("*"), match(" * ")} {
		if at, err := ifUnchanged(h); at != nil || err != nil {
			t.Errorf("%q: %v %v, want no precondition", h, at, err)
		}
	}
	for _, v := range []string{`"2026-12-03T08:00:00.123456789Z"`, ` "2026-12-03T11:00:00.123456789+03:00" `} {
		if at, err := ifUnchanged(match(v)); err != nil || at == nil || !at.Equal(want) {
			t.Errorf("%q: %v %v, want %v", v, at, err, want)
		}
	}
	for _, v := range []string{"*", " * "} {
		if at, err := ifUnchanged(http.Header{"If-None-Match": {v}}); err != nil || at == nil || !at.IsZero() {
			t.Errorf("If-None-Match %q: %v %v, want the zero time (there was none)", v, at, err)
		}
	}
	for _, h := range []http.Header{match(`2026-12-03T08:00:00Z`), match(`W/"2026-12-03T08:00:00Z"`), match(`"yesterday"`), match(`"`),
		match(`"2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z"`), match(`"2026-12-03T08:00:00Z"`, `"2026-12-03T09:00:00Z"`),
		{"If-None-Match": {`"2026-12-03T08:00:00Z"`}}, {"If-None-Match": {"*", "*"}},
		{"If-Match": {`"2026-12-03T08:00:00Z"`}, "If-None-Match": {"*"}}} {
		if _, err := ifUnchanged(h); err == nil || err.(*httpError).status != 400 {
			t.Errorf("%q: %v, want a 400", h, err)
		}
	}
}

// FuzzIfUnchanged: any If-Match / If-None-Match is a precondition, none, or
// a 400 naming the header; never a panic.
func FuzzIfUnchanged(f *testing.F) {
	f.Add(`"2026-12-03T08:00:00.123456789Z"`, "")
	f.Add("*", "")
	f.Add("", "*")
	f.Add(`W/"x"`, `"y"`)
	f.Fuzz(func(t *testing.T, match, none string) {
		h := http.Header{}
		if match != "" {
			h.Set("If-Match", match)
		}
		if none != "" {
			h.Set("If-None-Match", none)
		}
		at, err := ifUnchanged(h)
		if err != nil {
			if he, ok := err.(*httpError); !ok || he.status != 400 || !strings.Contains(he.msg, `"If-Match"`) {
				t.Fatalf("%q %q: %v, want a 400 naming the header", match, none, err)
			}
			if at != nil {
				t.Fatalf("%q %q: a precondition %v with the refusal", match, none, at)
			}
		}
	})
}
