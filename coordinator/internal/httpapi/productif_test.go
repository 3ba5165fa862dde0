package httpapi

import (
	"testing"
	"time"
)

// TestProductIfMatch: PUT /admin/products/{slug}'s If-Match is the
// product's updated_at as one quoted RFC 3339 tag; none or "*" is no
// precondition; anything else is a 400 naming the header.
func TestProductIfMatch(t *testing.T) {
	want := time.Date(2026, 12, 3, 8, 0, 0, 123456789, time.UTC)
	for _, vs := range [][]string{nil, {"*"}, {" * "}} {
		if at, err := productIfMatch(vs); at != nil || err != nil {
			t.Errorf("%q: %v %v, want no precondition", vs, at, err)
		}
	}
	for _, v := range []string{`"2026-12-03T08:00:00.123456789Z"`, ` "2026-12-03T11:00:00.123456789+03:00" `} {
		if at, err := productIfMatch([]string{v}); err != nil || at == nil || !at.Equal(want) {
			t.Errorf("%q: %v %v, want %v", v, at, err, want)
		}
	}
	for _, vs := range [][]string{{`2026-12-03T08:00:00Z`}, {`W/"2026-12-03T08:00:00Z"`}, {`"yesterday"`}, {`"`}, {`"2026-12-03T08:00:00Z", "2026-12-03T09:00:00Z"`},
		{`"2026-12-03T08:00:00Z"`, `"2026-12-03T09:00:00Z"`}} {
		if _, err := productIfMatch(vs); err == nil || err.(*httpError).status != 400 {
			t.Errorf("%q: %v, want a 400", vs, err)
		}
	}
}
