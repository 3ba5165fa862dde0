package plainjson

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAppendTime: AppendTime writes json.Marshal's bytes for a time UTC
// within years 0-9999 and gives up (ok false, dst as it was) on any other,
// exactly when PlainTime says so.
func TestAppendTime(t *testing.T) {
	for _, c := range []struct {
		at    time.Time
		plain bool
	}{
		{time.Date(2026, 12, 6, 2, 50, 1, 123456789, time.UTC), true},
		{time.Date(2026, 12, 6, 2, 50, 1, 0, time.UTC), true},
		{time.Time{}.UTC(), true},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 6, 2, 50, 1, 0, time.FixedZone("x", 3600)), false},
		{time.Date(2026, 12, 6, 2, 50, 1, 0, time.FixedZone("UTC", 0)), false}, // not time.UTC: left to encoding/json
		{time.Time{}, true},
	} {
		if got := PlainTime(c.at); got != c.plain {
			t.Errorf("PlainTime(%v) = %v, want %v", c.at, got, c.plain)
		}
		got, ok := AppendTime([]byte("x"), c.at)
		if ok != c.plain {
			t.Errorf("AppendTime(%v): ok %v, want %v", c.at, ok, c.plain)
			continue
		}
		if !ok {
			if string(got) != "x" {
				t.Errorf("AppendTime(%v) gave up but wrote %q", c.at, got)
			}
			continue
		}
		want, err := json.Marshal(c.at)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("AppendTime(%v) = %q, json.Marshal %q (%v)", c.at, got, want, err)
		}
	}
}
